"""How an image gets built: the podman CLI, or the Engine API's build (Docker).

Podman's import endpoint drops the tag it is given, so with a local Podman the
CLI is used, under the same
``CONTAINERS_CONF`` as hpcbox's API service. With Docker (or a remote Podman)
the SDK's API calls do everything. Both build the same context, handed in as
files (the role's Containerfile and files, plus the host CA directory), and
send every line of the engine's output to a Reporter.
"""

from __future__ import annotations

import collections
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from hpcbox.clusters.images.commands import (
    IMPORT_CHANGES,
    podman_build_argv,
    podman_import_argv,
    podman_pull_argv,
    podman_tag_argv,
)
from hpcbox.clusters.images.context import CONTAINERFILE, context_dir, context_tar
from hpcbox.clusters.images.process import TAIL_LINES, output_sink, run_streamed
from hpcbox.core.errors import PermanentError
from hpcbox.core.progress import Reporter
from hpcbox.infra.runtimes import Runtime

__all__ = ["BuildBackend", "DockerApiBackend", "PodmanCliBackend"]

#: Seconds one image build may take (the worker image, with compilers and
#: two MPI stacks, takes under a minute on a good mirror).
BUILD_TIMEOUT = 3600.0
PULL_TIMEOUT = 900.0


class BuildBackend(Protocol):
    """The four things an image build needs from an engine."""

    def image_exists(self, reference: str) -> bool:
        """True when the image is present locally."""

    def pull(self, reference: str) -> bool:
        """Pull from a registry; False (with the reason in the output) when none serves it."""

    def import_rootfs(self, tarball: Path, reference: str) -> None:
        """Import a root filesystem tarball as image ``reference``."""

    def tag(self, source: str, targets: Sequence[str]) -> None:
        """Give the present image ``source`` the names ``targets`` (moved if they exist)."""

    def build(
        self, context: Mapping[str, bytes], *, tags: Sequence[str], build_args: Mapping[str, str]
    ) -> None:
        """Build ``context`` (path -> contents, a Containerfile among them) into ``tags``.

        PermanentError on failure.
        """


class PodmanCliBackend:
    """Builds with the podman CLI; ``env`` must carry the service's CONTAINERS_CONF."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        podman: str,
        env: Mapping[str, str],
        reporter: Reporter,
        network_host: bool,
    ) -> None:
        self._runtime = runtime
        self._podman = podman
        self._env = dict(env)
        self._reporter = reporter
        self._network_host = network_host

    def image_exists(self, reference: str) -> bool:
        return self._runtime.image_exists(reference)

    def pull(self, reference: str) -> bool:
        try:
            run_streamed(
                podman_pull_argv(self._podman, reference),
                output=output_sink(self._reporter),
                what=f"pull {reference}",
                env=self._env,
                timeout=PULL_TIMEOUT,
            )
        except PermanentError:
            # podman's reason is in the output already.
            return False
        return True

    def import_rootfs(self, tarball: Path, reference: str) -> None:
        run_streamed(
            podman_import_argv(self._podman, tarball, reference),
            output=output_sink(self._reporter),
            what=f"import {reference}",
            env=self._env,
            timeout=BUILD_TIMEOUT,
        )

    def tag(self, source: str, targets: Sequence[str]) -> None:
        run_streamed(
            podman_tag_argv(self._podman, source, targets),
            output=output_sink(self._reporter),
            what=f"tag {source}",
            env=self._env,
            timeout=PULL_TIMEOUT,
        )

    def build(
        self, context: Mapping[str, bytes], *, tags: Sequence[str], build_args: Mapping[str, str]
    ) -> None:
        with context_dir(context) as directory:
            argv = podman_build_argv(
                self._podman,
                directory,
                tags=tags,
                build_args=build_args,
                network_host=self._network_host,
            )
            run_streamed(
                argv,
                output=output_sink(self._reporter),
                what=f"build {tags[0]}",
                env=self._env,
                timeout=BUILD_TIMEOUT,
            )


class DockerApiBackend:
    """Builds through the Engine API (Docker's, or Podman's copy of it)."""

    def __init__(
        self,
        runtime: Runtime,
        client: docker.DockerClient,
        *,
        reporter: Reporter,
        network_host: bool,
    ) -> None:
        self._runtime = runtime
        # Any: the SDK's stubs leave these calls untyped.
        self._api: Any = client.api
        self._reporter = reporter
        self._network_host = network_host

    def image_exists(self, reference: str) -> bool:
        return self._runtime.image_exists(reference)

    def pull(self, reference: str) -> bool:
        repo, tag = _split(reference)
        output = output_sink(self._reporter)
        failed = False
        try:
            # Read to the end even after an error: a stream left half-read leaks its socket.
            for message in self._api.pull(repo, tag=tag, stream=True, decode=True):
                error = _error_of(message)
                if error:
                    # Podman's API reports a failed pull inside a 200 stream.
                    output(f"pull {reference}: {error}")
                    failed = True
                elif message.get("status"):
                    output(str(message["status"]))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            output(f"pull {reference}: {exc}")
            return False
        return not failed and self._runtime.image_exists(reference)

    def import_rootfs(self, tarball: Path, reference: str) -> None:
        repo, tag = _split(reference)
        try:
            reply = self._api.import_image(
                src=str(tarball), repository=repo, tag=tag, changes=list(IMPORT_CHANGES)
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise PermanentError(f"import {reference}: {exc}") from exc
        image_id = None
        for message in _json_lines(reply):
            self._reporter.output(json.dumps(message))
            error = _error_of(message)
            if error:
                raise PermanentError(f"import {reference}: {error}")
            image_id = message.get("id") or message.get("status") or image_id
        if not self._runtime.image_exists(reference) and image_id:
            # Podman's import endpoint ignores the tag: set it explicitly.
            self._api.tag(image_id, repo, tag)

    def tag(self, source: str, targets: Sequence[str]) -> None:
        try:
            for target in targets:
                repo, tag = _split(target)
                self._api.tag(source, repo, tag)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise PermanentError(f"tag {source}: {exc}") from exc

    def build(
        self, context: Mapping[str, bytes], *, tags: Sequence[str], build_args: Mapping[str, str]
    ) -> None:
        sink = output_sink(self._reporter)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

        def output(line: str) -> None:
            tail.append(line)
            sink(line)

        try:
            stream = self._api.build(
                fileobj=io.BytesIO(context_tar(context)),
                custom_context=True,
                dockerfile=CONTAINERFILE,
                tag=tags[0],
                buildargs=dict(build_args),
                network_mode="host" if self._network_host else None,
                pull=False,
                rm=True,
                forcerm=True,
                decode=True,
            )
            failure: str | None = None
            # Read to the end even after an error: a stream left half-read leaks its socket.
            for message in stream:
                error = _error_of(message)
                if error:
                    failure = failure or error
                    output(f"error: {error}")
                for line in str(message.get("stream", "")).splitlines():
                    if line.strip():
                        output(line)
            if failure is not None:
                last = "\n".join(tail)
                raise PermanentError(f"build {tags[0]} failed: {failure}\nlast output:\n{last}")
            for extra in tags[1:]:
                repo, tag = _split(extra)
                self._api.tag(tags[0], repo, tag)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise PermanentError(f"build {tags[0]}: {exc}") from exc


def _split(reference: str) -> tuple[str, str]:
    """``repo:tag`` into its parts; a registry port (``host:5000/x``) is not a tag."""
    repo, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, "latest"
    return repo, tag


def _error_of(message: Mapping[str, Any]) -> str | None:
    if message.get("error"):
        return str(message["error"])
    detail = message.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"])
    return None


def _json_lines(reply: Any) -> Iterable[Mapping[str, Any]]:
    """The JSON messages in an import reply (one string, or an iterable of chunks)."""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    for raw in text.splitlines():
        line = raw.strip()
        if line:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield value
