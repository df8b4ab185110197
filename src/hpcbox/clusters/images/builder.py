"""Build the node images that are missing, base first, reporting progress as it goes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from hpcbox.clusters.images.backends import BuildBackend, DockerApiBackend, PodmanCliBackend
from hpcbox.clusters.images.buildlog import BuildLog
from hpcbox.clusters.images.context import context_files
from hpcbox.clusters.images.debian import BOOTSTRAPPED_IMAGE, UPSTREAM_IMAGE, bootstrap_rootfs
from hpcbox.clusters.images.hostca import ENV_VAR, HostCa, host_ca_context, resolve_host_ca
from hpcbox.clusters.images.roles import (
    ROLES,
    build_plan,
    check_roles,
    image_tag,
    latest_tag,
    parent_role,
    version_tag,
)
from hpcbox.core.errors import HpcboxError, UnavailableError
from hpcbox.core.progress import Reporter, as_reporter
from hpcbox.core.version import __version__
from hpcbox.infra.runtimes import EngineRuntime, Runtime, podman_env

__all__ = ["ImageBuilder", "select_backend"]


def select_backend(runtime: Runtime, *, reporter: Reporter, network_host: bool) -> BuildBackend:
    """The podman CLI for a local Podman, the Engine API's build otherwise.

    Raises UnavailableError for a runtime that is not an engine hpcbox can build on.
    """
    podman = shutil.which("podman")
    # The CLI builds into this machine's store: only right for a local engine.
    local = not isinstance(runtime, EngineRuntime) or runtime.url.startswith(
        ("unix://", "http+docker://localhost")
    )
    if runtime.name == "podman" and podman is not None and local:
        conf = runtime.containers_conf if isinstance(runtime, EngineRuntime) else None
        env = podman_env(conf, os.environ) if conf is not None else dict(os.environ)
        return PodmanCliBackend(
            runtime, podman=podman, env=env, reporter=reporter, network_host=network_host
        )
    if isinstance(runtime, EngineRuntime):
        return DockerApiBackend(
            runtime, runtime.client, reporter=reporter, network_host=network_host
        )
    raise UnavailableError(f"cannot build images on the {runtime.name!r} runtime")


class ImageBuilder:
    """Builds hpcbox's node images on ``runtime``.

    ``state_dir`` caches the bootstrapped Debian root filesystem and holds a
    lock, so that two hpcbox processes do not build the same images at once.

    ``progress`` is a :class:`~hpcbox.core.progress.Reporter` (steps with what
    they wait for, the tools' raw output) or a plain ``progress(line)``
    callable, which gets the steps and notes as lines but not the raw output.
    Every build also writes a log, ``images-<time>.log`` under ``log_dir``
    (default ``state_dir/logs``), with all of the tools' output; an error
    raised by a build names it.

    ``network_host`` runs build steps in the host's network namespace (needed
    where the engine's own build network has no route out).

    ``host_ca`` is the CA bundle build steps trust (pip and npm behind a
    TLS-intercepting proxy): None for ``HPCBOX_IMAGES_HOST_CA``, else the
    system's bundle (``auto``); ``none`` for no bundle; or a path. See
    :mod:`hpcbox.clusters.images.hostca`. ``environ`` stands in for ``os.environ``.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        state_dir: Path,
        progress: Reporter | Callable[[str], None] | None = None,
        network_host: bool = True,
        host_ca: str | Path | None = None,
        log_dir: Path | None = None,
        backend: BuildBackend | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._runtime = runtime
        self._state_dir = state_dir
        self._log = BuildLog(as_reporter(progress), log_dir or state_dir / "logs")
        self._network_host = network_host
        self._host_ca = None if host_ca is None else str(host_ca)
        self._environ = environ
        self._backend = backend

    @property
    def log_path(self) -> Path | None:
        """The log file of the latest build that had something to do (None before one)."""
        return self._log.path

    def host_ca(self) -> HostCa | None:
        """The CA bundle builds will trust, or None (InvalidInputError for a bad choice)."""
        return resolve_host_ca(self._host_ca, self._environ)

    def missing(self, roles: Sequence[str] = ROLES) -> list[str]:
        """The roles (of ``roles``, in that order) whose image for this hpcbox version is absent."""
        check_roles(roles)
        return [role for role in dict.fromkeys(roles) if not self._exists(role)]

    def build(self, roles: Sequence[str] = ROLES, *, force: bool = False) -> list[str]:
        """Build the missing images of ``roles`` (all of them with ``force``); return their tags.

        The base is built first whenever it is needed and absent. Each image
        is tagged ``hpcbox/<role>:<version>-<digest>``, ``:<version>`` (what the
        Helm charts name) and ``:latest``; the digest tags are returned in build
        order. Raises UnavailableError when no
        Debian base can be had (no registry and no debootstrap), PermanentError
        when a build fails (with its last output lines and the log's path),
        InvalidInputError for an unknown role or an unusable ``host_ca``.
        """
        check_roles(roles)
        host_ca = self.host_ca()  # a bad choice is refused even with nothing to build
        with self._locked():
            present = [role for role in ROLES if self._exists(role)]
            plan = build_plan(roles, present, force=force)
            # A present image keeps its digest tag, but may lack the version tag the
            # charts name (built before it existed, or moved by a build of other content).
            self._tag_present([role for role in dict.fromkeys(roles) if role not in plan])
            if not plan:
                self._log("all images are present")
                return []
            with self._logged():
                return self._build(plan, host_ca)

    def _tag_present(self, roles: Sequence[str]) -> None:
        """Give each present image the version and latest tags it lacks (an image built
        before hpcbox gave them keeps only its digest tag, and the charts name the
        version tag)."""
        for role in roles:
            targets = [t for t in (version_tag(role), latest_tag(role)) if not self._has(t)]
            if targets:
                self._get_backend().tag(image_tag(role), targets)
                self._log(f"tagged {image_tag(role)} as {', '.join(targets)}")

    def debian_image(self) -> str:
        """A local Debian bookworm image's reference: present, pulled or bootstrapped now.

        Raises UnavailableError when there is no registry and no way to
        bootstrap (debootstrap missing, or not root).
        """
        with self._locked():
            backend = self._get_backend()
            present = _first_present(backend, (UPSTREAM_IMAGE, BOOTSTRAPPED_IMAGE))
            if present is not None:
                return present
            with self._logged():
                return self._debian_image(backend)

    def _build(self, plan: Sequence[str], host_ca: HostCa | None) -> list[str]:
        if host_ca is not None:
            self._log(
                f"build steps trust {host_ca.path} ({host_ca.origin}; "
                f"--no-host-ca or {ENV_VAR}=none turns this off)"
            )
        extra = host_ca_context(host_ca)
        backend = self._get_backend()
        base_args: dict[str, str] = {"HPCBOX_VERSION": __version__}
        built: list[str] = []
        for index, role in enumerate(plan, start=1):
            args = dict(base_args)
            parent = parent_role(role)
            if parent is None:
                args["DEBIAN_IMAGE"] = self._debian_image(backend)
            else:
                args["BASE_IMAGE"] = image_tag(parent)
            tag = image_tag(role)
            with self._log.step(
                f"building {tag} ({index} of {len(plan)})",
                waiting_for=f"{self._runtime.name} build",
            ):
                backend.build(
                    {**context_files(role), **extra},
                    tags=[tag, version_tag(role), latest_tag(role)],
                    build_args=args,
                )
            built.append(tag)
        return built

    def _exists(self, role: str) -> bool:
        return self._has(image_tag(role))

    def _has(self, tag: str) -> bool:
        return self._runtime.image_exists(tag)

    def _get_backend(self) -> BuildBackend:
        if self._backend is None:
            self._backend = select_backend(
                self._runtime, reporter=self._log, network_host=self._network_host
            )
        return self._backend

    def _debian_image(self, backend: BuildBackend) -> str:
        """A local Debian bookworm image: present, pulled, or bootstrapped and imported."""
        present = _first_present(backend, (UPSTREAM_IMAGE, BOOTSTRAPPED_IMAGE))
        if present is not None:
            self._log(f"using {present}")
            return present
        with self._log.step(f"looking for {UPSTREAM_IMAGE}", waiting_for="a registry"):
            pulled = backend.pull(UPSTREAM_IMAGE)
        if pulled:
            return UPSTREAM_IMAGE
        self._log(f"no registry serves {UPSTREAM_IMAGE}: bootstrapping {BOOTSTRAPPED_IMAGE}")
        tarball = bootstrap_rootfs(self._state_dir, reporter=self._log)
        with self._log.step(
            f"importing the root filesystem as {BOOTSTRAPPED_IMAGE}",
            waiting_for=f"{self._runtime.name} import",
        ):
            backend.import_rootfs(tarball, BOOTSTRAPPED_IMAGE)
        return BOOTSTRAPPED_IMAGE

    @contextlib.contextmanager
    def _logged(self) -> Iterator[None]:
        """A log file for the block; an hpcbox error leaving it names the file."""
        with self._log.session() as path:
            try:
                yield
            except HpcboxError as exc:
                _mention_log(exc, path)
                raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        lock = self._state_dir / "build.lock"
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with self._log.step(
                    "waiting for another hpcbox image build to finish",
                    waiting_for=f"the lock {lock}",
                ):
                    fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _first_present(backend: BuildBackend, references: Sequence[str]) -> str | None:
    return next((ref for ref in references if backend.image_exists(ref)), None)


def _mention_log(exc: HpcboxError, path: Path) -> None:
    """Put the log's path at the end of the error's first line (the rest is output)."""
    note = f" (full log: {path})"
    if note in exc.message:
        return
    first, sep, rest = exc.message.partition("\n")
    exc.message = f"{first}{note}{sep}{rest}"
