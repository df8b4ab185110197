"""A Podman API service that hpcbox starts and owns, for machines without an engine socket.

``podman system service`` serves the Docker Engine API on a unix socket. hpcbox
runs one under its state directory (``<state_dir>/podman/``: socket, pid file,
log, lock, and a containers.conf of its own), detached in its own session so
that it outlives the command that started it and is reused by the next one.

The containers.conf is hpcbox's, passed through ``CONTAINERS_CONF``; the
system's files are never changed. It selects the ``runc`` OCI runtime where
runc is installed (crun fails on cgroup-v1/hybrid hosts), the ``netavark``
network backend where netavark is installed (Podman otherwise keeps the CNI
backend it chose on a machine that had containers before netavark came, and
CNI's bridge networks give containers no DNS: cluster nodes could not resolve
each other by name), and sets default
ulimits that an unprivileged container may hold (inheriting the host's
larger limits fails with "setrlimit ... Operation not permitted" on some
hosts). The podman CLI used for image builds must get the same environment:
see :func:`podman_env`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hpcbox.core.errors import InvalidInputError, TransientError, UnavailableError
from hpcbox.infra.runtimes.probe import MAX_SOCKET_PATH, pid_alive, ping_unix, process_cmdline

__all__ = [
    "PodmanService",
    "ServicePaths",
    "containers_conf_text",
    "podman_env",
    "service_argv",
]

#: Limits every container gets unless its spec says otherwise.
DEFAULT_ULIMITS = ("nofile=1024:1024", "nproc=4096:4096")


def containers_conf_text(*, oci_runtime: str | None, network_backend: str | None = None) -> str:
    """The content of hpcbox's containers.conf; ``oci_runtime`` or ``network_backend``
    ``None`` leaves Podman's default."""
    ulimits = ", ".join(f'"{limit}"' for limit in DEFAULT_ULIMITS)
    lines = ["# Written by hpcbox; passed to podman through CONTAINERS_CONF.", ""]
    lines += ["[containers]", f"default_ulimits = [{ulimits}]", ""]
    lines += ["[engine]"]
    if oci_runtime is not None:
        lines.append(f'runtime = "{oci_runtime}"')
    if network_backend is not None:
        lines += ["", "[network]", f'network_backend = "{network_backend}"']
    return "\n".join(lines) + "\n"


def service_argv(podman: str, socket: Path) -> list[str]:
    """The command that serves the API on ``socket`` until it is killed (no idle exit)."""
    return [podman, "system", "service", "--time=0", f"unix://{socket}"]


def podman_env(conf: Path, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (an environment) with ``CONTAINERS_CONF`` pointing at ``conf`` and
    ``TMPDIR`` at the service's own ``tmp`` directory beside it, when that exists.

    Podman 4.3's API leaves the upload of every image import behind in TMPDIR
    (``api_load.tar*``, the size of the image; /var/tmp by default): in a
    directory of hpcbox's own, they are removed whenever the service starts.
    """
    env = {**base, "CONTAINERS_CONF": str(conf)}
    tmp = conf.parent / "tmp"
    if tmp.is_dir():
        env["TMPDIR"] = str(tmp)
    return env


@dataclass(frozen=True)
class ServicePaths:
    """Where the service's files live: everything under one private directory."""

    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> ServicePaths:
        return cls(state_dir / "podman")

    @property
    def socket(self) -> Path:
        return self.root / "podman.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "podman.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "podman.log"

    @property
    def conf(self) -> Path:
        return self.root / "containers.conf"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


class PodmanService:
    """Start, find and stop hpcbox's own Podman API service under ``state_dir``.

    ``podman`` is the podman executable and ``oci_runtime`` the runtime written
    into containers.conf (``None``: Podman's default); both are looked up on
    PATH when not given. ``network_backend`` likewise (``"netavark"`` where it is
    installed, else Podman's choice).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        podman: str | None = None,
        oci_runtime: str | None = None,
        environ: Mapping[str, str] | None = None,
        network_backend: str | None = None,
    ) -> None:
        self.paths = ServicePaths.under(state_dir)
        self._podman = podman
        self._oci_runtime = oci_runtime if oci_runtime is not None else _default_oci_runtime()
        self._network_backend = (
            network_backend if network_backend is not None else _default_network_backend()
        )
        self._environ = dict(os.environ if environ is None else environ)

    @property
    def url(self) -> str:
        return f"unix://{self.paths.socket}"

    @property
    def env(self) -> dict[str, str]:
        """The environment for any podman command that must match the service."""
        return podman_env(self.paths.conf, self._environ)

    def running_pid(self) -> int | None:
        """The pid of this state dir's service when one is alive (per pid file and
        command line, so a recycled pid is not mistaken for it)."""
        try:
            pid = int(self.paths.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        argv = process_cmdline(pid)
        if argv is None or "service" not in argv or self.url not in argv:
            return None
        return pid

    def answering(self) -> bool:
        """True when the service's socket answers the API's ping."""
        return ping_unix(self.paths.socket)

    def ensure_running(self, *, timeout: float = 30.0) -> str:
        """Reuse the running service or start one; return its ``unix://`` URL.

        Raises UnavailableError when podman is missing or the service exits at
        start (the message carries its log's tail), TransientError when it does
        not answer within ``timeout`` seconds, InvalidInputError when the state
        dir's path is too long for a unix socket.
        """
        if len(str(self.paths.socket).encode()) > MAX_SOCKET_PATH:
            raise InvalidInputError(
                f"{self.paths.socket} is too long for a unix socket "
                f"(at most {MAX_SOCKET_PATH} bytes); use a shorter HPCBOX_HOME"
            )
        with self._locked():
            pid = self.running_pid()
            if pid is not None:
                if self._wait_answering(pid, timeout=min(timeout, 10.0)):
                    return self.url
                # Alive but deaf (hung, or a socket removed under it): replace it.
                self._terminate(pid, timeout=5.0)
            self._start(timeout=timeout)
            return self.url

    def stop(self, *, timeout: float = 10.0) -> bool:
        """Stop the service if it runs (SIGTERM, then SIGKILL); True when one was stopped."""
        with self._locked():
            pid = self.running_pid()
            if pid is None:
                return False
            self._terminate(pid, timeout=timeout)
            return True

    def _start(self, *, timeout: float) -> None:
        podman = self._podman or shutil.which("podman", path=self._environ.get("PATH"))
        if podman is None:
            raise UnavailableError("podman is not installed (Debian: apt-get install podman runc)")
        self._write_conf()
        with contextlib.suppress(FileNotFoundError):
            self.paths.socket.unlink()
        # No service runs on this state dir now: whatever a previous one left in
        # its temporary directory is garbage (see podman_env).
        shutil.rmtree(self.paths.tmp, ignore_errors=True)
        self.paths.tmp.mkdir(mode=0o700)
        with self.paths.log_file.open("wb") as log:
            try:
                proc = subprocess.Popen(
                    service_argv(podman, self.paths.socket),
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    # Own session: the service must survive the end of this
                    # process and not get the terminal's Ctrl-C.
                    start_new_session=True,
                )
            except OSError as exc:
                raise UnavailableError(f"cannot run {podman}: {exc}") from exc
        # Reap the child if it dies while we live; holding the Popen also keeps
        # it from warning about a process left running when collected.
        threading.Thread(target=proc.wait, name="hpcbox-podman-reaper", daemon=True).start()
        _write_atomic(self.paths.pid_file, f"{proc.pid}\n")
        if self._wait_answering(proc.pid, timeout=timeout):
            return
        if proc.poll() is not None or not pid_alive(proc.pid):
            raise UnavailableError(
                f"podman system service exited at start; {self.paths.log_file} ends with:\n"
                + _tail(self.paths.log_file)
            )
        self._terminate(proc.pid, timeout=5.0)
        raise TransientError(
            f"podman system service did not answer within {timeout:.0f}s; "
            f"see {self.paths.log_file}",
            retry_after=5.0,
        )

    def _wait_answering(self, pid: int, *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.answering():
                return True
            if not pid_alive(pid) or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _terminate(self, pid: int, *, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                while pid_alive(pid):
                    time.sleep(0.05)
        for path in (self.paths.pid_file, self.paths.socket):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _write_conf(self) -> None:
        text = containers_conf_text(
            oci_runtime=self._oci_runtime, network_backend=self._network_backend
        )
        try:
            current = self.paths.conf.read_text()
        except OSError:
            current = None
        if current != text:
            _write_atomic(self.paths.conf, text)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Private directory: whoever can reach the socket controls the engine.
        self.paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.paths.lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _default_oci_runtime() -> str | None:
    return "runc" if shutil.which("runc") or Path("/usr/sbin/runc").exists() else None


#: Where distributions install netavark (Podman looks in these helper directories).
NETAVARK_PATHS = (
    Path("/usr/lib/podman/netavark"),
    Path("/usr/libexec/podman/netavark"),
    Path("/usr/local/libexec/podman/netavark"),
    Path("/usr/local/lib/podman/netavark"),
)


def _default_network_backend() -> str | None:
    return "netavark" if any(path.exists() for path in NETAVARK_PATHS) else None


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    temp.replace(path)


def _tail(path: Path, *, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
