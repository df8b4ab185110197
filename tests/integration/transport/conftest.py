"""A real OpenSSH server for transport tests: 127.0.0.1, a random port, throwaway keys.

Each test gets its own sshd (it starts in well under a second) so that tests
which kill or restart it cannot disturb others. sshd logs to a file with
``LogLevel VERBOSE``; :meth:`Sshd.logins` counts the logins it accepted, which
is how tests prove that many calls shared one connection.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hpcbox.infra.transport import Backoff, SshTarget, SshTransport
from tests.conftest import require

SSHD = "/usr/sbin/sshd"
#: Fast reconnects, so the restart test does not wait long.
FAST_BACKOFF = Backoff(attempts=6, first_delay_s=0.2, factor=2.0, max_delay_s=2.0, jitter=0.0)

CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
AuthorizedKeysFile {authorized_keys}
PidFile none
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
LogLevel VERBOSE
MaxSessions 10
Subsystem sftp internal-sftp
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hpcbox-test", "-f", str(path)],
        check=True,
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    result, queue = [], [pid]
    while queue:
        kids = _children(queue.pop())
        result.extend(kids)
        queue.extend(kids)
    return result


class Sshd:
    """One sshd process with its keys, config and log under a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.port = _free_port()
        self.host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        _keygen(self.host_key)
        _keygen(self.client_key)
        self.host_public_key = self.host_key.with_suffix(".pub").read_text().strip()
        authorized = root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_public_key}\n")
        self.config = root / "sshd_config"
        self.config.write_text(
            CONFIG.format(port=self.port, host_key=self.host_key, authorized_keys=authorized)
        )
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # sshd insists on its privilege-separation directory existing.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the listener and every per-connection process it forked."""
        if self.proc is None:
            return
        victims = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def logins(self) -> int:
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def target(self, **changes: object) -> SshTarget:
        base = SshTarget(
            host="127.0.0.1",
            user=getpass.getuser(),
            port=self.port,
            key_path=str(self.client_key),
            known_hosts=str(self.known_hosts),
            use_agent=False,
            connect_timeout_s=5,
        )
        return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    require(os.path.exists(SSHD), "openssh-server is not installed")
    server = Sshd(tmp_path / "sshd")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def transport(sshd: Sshd) -> Iterator[SshTransport]:
    with SshTransport(sshd.target(), backoff=FAST_BACKOFF) as ssh:
        yield ssh
