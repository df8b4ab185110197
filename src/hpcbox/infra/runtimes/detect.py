"""Find the container engine to use, starting a Podman service when that is the only way.

The order, for ``preference`` ``"auto"``:

1. ``DOCKER_HOST`` when set (it is the user's explicit choice: if it does not
   answer, that is an error, not a reason to try something else);
2. ``/var/run/docker.sock`` when it answers;
3. hpcbox's own Podman service under the state dir, when it runs;
4. a running Podman socket (``/run/podman/podman.sock`` for root,
   ``$XDG_RUNTIME_DIR/podman/podman.sock`` otherwise);
5. a Podman service that hpcbox starts, when ``podman`` is installed.

``"docker"`` stops after step 2, ``"podman"`` skips steps 1-2. Gathering the
facts (which sockets answer, what is installed) is kept apart from the
decision, which is a pure function.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hpcbox.core.errors import InvalidInputError, TransientError, UnavailableError
from hpcbox.infra.runtimes.base import Runtime
from hpcbox.infra.runtimes.engine import EngineRuntime
from hpcbox.infra.runtimes.podman_service import PodmanService
from hpcbox.infra.runtimes.probe import ping_unix

__all__ = ["Choice", "Facts", "choose", "connect_runtime", "gather_facts"]

Preference = Literal["docker", "podman", "auto"]

DOCKER_SOCKET = Path("/var/run/docker.sock")
ROOT_PODMAN_SOCKET = Path("/run/podman/podman.sock")

_INSTALL_DOCKER = "install Docker Engine (https://docs.docker.com/engine/install/) and start it"
_INSTALL_PODMAN = (
    "install Podman (Debian/Ubuntu: apt-get install podman runc; Fedora: dnf install podman)"
)


@dataclass(frozen=True)
class Facts:
    """What the decision needs to know about this machine."""

    docker_host: str | None
    #: Unix socket paths (of the well-known ones) whose engine answers a ping.
    answering: frozenset[Path]
    own_service_running: bool
    podman_installed: bool
    #: Where a user's own Podman socket lives (root's is ROOT_PODMAN_SOCKET).
    user_podman_socket: Path | None


@dataclass(frozen=True)
class Choice:
    """The engine to connect to. ``url`` ``None`` means "from the DOCKER_* environment";
    ``own_service`` means hpcbox's own Podman service (started if needed)."""

    url: str | None
    source: str
    own_service: bool = False


def choose(preference: Preference, facts: Facts) -> Choice:
    """Pick the engine per the module's order; raise UnavailableError saying what to install."""
    if preference not in ("docker", "podman", "auto"):
        raise InvalidInputError(
            f"unknown runtime {preference!r} (docker, podman or auto)", field="runtime"
        )
    if preference != "podman":
        if facts.docker_host:
            return Choice(None, f"DOCKER_HOST={facts.docker_host}")
        if DOCKER_SOCKET in facts.answering:
            return Choice(f"unix://{DOCKER_SOCKET}", str(DOCKER_SOCKET))
        if preference == "docker":
            raise UnavailableError(
                f"no Docker engine: DOCKER_HOST is unset and {DOCKER_SOCKET} does not answer; "
                f"{_INSTALL_DOCKER}, or use the podman runtime"
            )
    if facts.own_service_running:
        return Choice(None, "hpcbox's podman service", own_service=True)
    for path in (ROOT_PODMAN_SOCKET, facts.user_podman_socket):
        if path is not None and path in facts.answering:
            return Choice(f"unix://{path}", str(path))
    if facts.podman_installed:
        return Choice(None, "hpcbox's podman service (started now)", own_service=True)
    if preference == "podman":
        raise UnavailableError(f"podman is not installed: {_INSTALL_PODMAN}")
    raise UnavailableError(
        "no container engine: no Docker socket answers and podman is not installed; "
        f"{_INSTALL_DOCKER}, or {_INSTALL_PODMAN}"
    )


def gather_facts(
    service: PodmanService,
    *,
    environ: Mapping[str, str],
    uid: int,
    which: Callable[[str], str | None],
    answers: Callable[[Path], bool],
) -> Facts:
    """Look at this machine: environment, well-known sockets, our service, PATH."""
    runtime_dir = environ.get("XDG_RUNTIME_DIR") or (f"/run/user/{uid}" if uid else None)
    user_socket = Path(runtime_dir) / "podman" / "podman.sock" if runtime_dir else None
    sockets = [DOCKER_SOCKET, ROOT_PODMAN_SOCKET if uid == 0 else None, user_socket]
    return Facts(
        docker_host=environ.get("DOCKER_HOST") or None,
        answering=frozenset(path for path in sockets if path is not None and answers(path)),
        own_service_running=service.running_pid() is not None and service.answering(),
        podman_installed=which("podman") is not None,
        user_podman_socket=user_socket if uid else None,
    )


def connect_runtime(preference: Preference, *, state_dir: Path) -> Runtime:
    """Connect to the preferred engine, starting hpcbox's Podman service if needed.

    ``state_dir`` holds that service's socket, pid, log and containers.conf
    (under ``state_dir/podman``). Raises UnavailableError (saying what to
    install) when no engine can be had, TransientError when the chosen one
    does not answer, InvalidInputError for an unknown preference.
    """
    service = PodmanService(state_dir)
    facts = gather_facts(
        service,
        environ=os.environ,
        uid=os.geteuid(),
        which=shutil.which,
        answers=ping_unix,
    )
    choice = choose(preference, facts)
    if not choice.own_service:
        try:
            return EngineRuntime.connect(choice.url)
        except TransientError as exc:
            raise TransientError(f"the engine at {choice.source} does not answer: {exc}") from exc
    url = service.ensure_running()
    return EngineRuntime.connect(url, containers_conf=service.paths.conf)
