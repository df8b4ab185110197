"""A fake runtime, a fake build backend and a recording reporter, at hpcbox's own seams."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FakeImages:
    """Images by tag, shared by the fake runtime and the fake backend."""

    tags: set[str] = field(default_factory=set)


class FakeRuntime:
    """Only what the builder asks of a runtime: its name and image_exists."""

    def __init__(self, images: FakeImages, name: str = "podman") -> None:
        self.name = name
        self.images = images

    def image_exists(self, tag: str) -> bool:
        return tag in self.images.tags


@dataclass
class FakeBackend:
    images: FakeImages
    pullable: bool = False
    fail_role: str | None = None
    calls: list[tuple[str, ...]] = field(default_factory=list)
    build_args: dict[str, Mapping[str, str]] = field(default_factory=dict)
    contexts: dict[str, Mapping[str, bytes]] = field(default_factory=dict)
    #: Called with each build's role before it "builds" (to emit output, say).
    on_build: Callable[[str], None] | None = None

    def image_exists(self, reference: str) -> bool:
        return reference in self.images.tags

    def pull(self, reference: str) -> bool:
        self.calls.append(("pull", reference))
        if self.pullable:
            self.images.tags.add(reference)
        return self.pullable

    def import_rootfs(self, tarball: Path, reference: str) -> None:
        self.calls.append(("import", tarball.name, reference))
        self.images.tags.add(reference)

    def tag(self, source: str, targets: Sequence[str]) -> None:
        self.calls.append(("tag", source, *targets))
        assert source in self.images.tags
        self.images.tags.update(targets)

    def build(
        self, context: Mapping[str, bytes], *, tags: Sequence[str], build_args: Mapping[str, str]
    ) -> None:
        from hpcbox.core.errors import PermanentError

        # hpcbox/<role>:<version>-<digest>
        role = tags[0].split("/", 1)[1].split(":", 1)[0]
        self.calls.append(("build", role))
        self.contexts[role] = dict(context)
        if self.on_build is not None:
            self.on_build(role)
        if role == self.fail_role:
            raise PermanentError(f"build {tags[0]} failed (exit 1)\nlast output:\nE: broken")
        self.build_args[role] = dict(build_args)
        self.images.tags.update(tags)


@dataclass
class RecordingReporter:
    """A Reporter that records what it is told, as (kind, text) events."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.events.append(("info", message))

    @contextlib.contextmanager
    def step(self, title: str, *, waiting_for: str = "") -> Iterator[None]:
        self.events.append(("step", f"{title} | {waiting_for}"))
        try:
            yield
        except BaseException:
            self.events.append(("failed", title))
            raise
        self.events.append(("done", title))

    def waiting(self, what: str) -> None:
        self.events.append(("waiting", what))

    def output(self, line: str) -> None:
        self.events.append(("output", line))

    def of(self, kind: str) -> list[str]:
        return [text for k, text in self.events if k == kind]
