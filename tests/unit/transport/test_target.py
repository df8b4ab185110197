"""SshTarget validation, secret-free reprs, and the asyncssh options a target becomes."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import asyncssh
import pytest

from hpcbox.core.errors import (
    InvalidInputError,
    PermanentError,
    TransientError,
)
from hpcbox.infra.transport import SshTarget, SshTransport
from hpcbox.infra.transport._ssh_options import connect_error, connect_options, is_retryable
from tests.conftest import require

PASSWORD = "hunter2-password"
PASSPHRASE = "correct-horse-passphrase"


@pytest.fixture(scope="module")
def key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def known_hosts(tmp_path: Path, key: asyncssh.SSHKey) -> str:
    path = tmp_path / "known_hosts"
    path.write_text(f"example.org {key.export_public_key().decode()}")
    return str(path)


def test_reprs_hide_secrets(key: asyncssh.SSHKey) -> None:
    key_text = key.export_private_key().decode()
    target = SshTarget(
        host="h", user="u", key_data=key_text, password=PASSWORD, passphrase=PASSPHRASE
    )
    for text in (repr(target), str(target), repr(SshTransport(target)), target.address):
        assert PASSWORD not in text
        assert PASSPHRASE not in text
        assert "PRIVATE KEY" not in text
        assert key_text.splitlines()[1] not in text
    assert "host='h'" in repr(target)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": "a b"}, "host"),
        ({"user": ""}, "user"),
        ({"user": "a@b"}, "user"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"key_path": "/k", "key_data": "k"}, "key_data"),
        ({"keepalive_s": 0}, "keepalive_s"),
        ({"connect_timeout_s": -1}, "connect_timeout_s"),
    ],
)
def test_invalid_targets(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"host": "h", "user": "u", **kwargs}
    with pytest.raises(InvalidInputError) as caught:
        SshTarget(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_address_for_messages() -> None:
    assert (
        SshTarget(host="login.example", user="ana", port=2222).address == "ana@login.example:2222"
    )
    assert SshTarget(host="::1", user="ana").address == "ana@[::1]:22"


def test_host_key_pins_exactly_one_key(key: asyncssh.SSHKey) -> None:
    line = key.export_public_key().decode().strip()
    options = connect_options(SshTarget(host="h", user="u", host_key=line))
    trusted, cas, revoked = options["known_hosts"]
    assert [k.public_data for k in trusted] == [key.public_data]
    assert (cas, revoked) == ([], [])


def test_known_hosts_file_is_used_when_no_host_key(known_hosts: str) -> None:
    options = connect_options(SshTarget(host="h", user="u", known_hosts=known_hosts))
    assert options["known_hosts"] == known_hosts


def test_missing_known_hosts_is_refused_never_accept_any(tmp_path: Path) -> None:
    target = SshTarget(host="h", user="u", known_hosts=str(tmp_path / "absent"))
    with pytest.raises(PermanentError, match="known_hosts"):
        connect_options(target)


def test_default_known_hosts_is_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(PermanentError, match=str(tmp_path / ".ssh" / "known_hosts")):
        connect_options(SshTarget(host="h", user="u"))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text("")
    assert connect_options(SshTarget(host="h", user="u"))["known_hosts"].startswith(str(tmp_path))


def test_bad_host_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError) as caught:
        connect_options(SshTarget(host="h", user="u", host_key="ssh-ed25519 not-base64!"))
    assert caught.value.field == "host_key"


def test_credentials_are_offered_only_as_given(known_hosts: str, key: asyncssh.SSHKey) -> None:
    plain = connect_options(SshTarget(host="h", user="u", known_hosts=known_hosts, use_agent=False))
    assert plain["password"] is None
    assert plain["agent_path"] is None
    assert "client_keys" not in plain  # asyncssh's default keys, like ssh(1)
    assert plain["config"] is None  # ~/.ssh/config cannot redirect the target
    with_all = connect_options(
        SshTarget(
            host="h",
            user="u",
            known_hosts=known_hosts,
            key_data=key.export_private_key().decode(),
            password=PASSWORD,
        )
    )
    assert with_all["password"] == PASSWORD
    assert with_all["agent_path"] == ()
    [loaded] = with_all["client_keys"]
    assert loaded.public_data == key.public_data


def test_encrypted_key_needs_its_passphrase(
    tmp_path: Path, known_hosts: str, key: asyncssh.SSHKey
) -> None:
    path = tmp_path / "id"
    path.write_bytes(key.export_private_key("pkcs8-pem", passphrase=PASSPHRASE))
    good = SshTarget(
        host="h", user="u", known_hosts=known_hosts, key_path=str(path), passphrase=PASSPHRASE
    )
    assert connect_options(good)["client_keys"]
    with pytest.raises(InvalidInputError) as caught:
        connect_options(SshTarget(host="h", user="u", known_hosts=known_hosts, key_path=str(path)))
    assert caught.value.field == "key_path"


def test_openssh_encrypted_key_decrypts_with_its_passphrase(
    tmp_path: Path, known_hosts: str
) -> None:
    # hpcbox depends on asyncssh[bcrypt], which ssh-keygen's default format needs.
    assert importlib.util.find_spec("bcrypt") is not None
    require(shutil.which("ssh-keygen") is not None, "openssh-client is not installed")
    # ssh-keygen's default format for a passphrase-protected key.
    path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(path)], check=True
    )
    target = SshTarget(
        host="h", user="u", known_hosts=known_hosts, key_path=str(path), passphrase=PASSPHRASE
    )
    assert connect_options(target)["client_keys"]


def test_unreadable_key_data_is_invalid_and_not_echoed(known_hosts: str) -> None:
    junk = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(InvalidInputError) as caught:
        connect_options(SshTarget(host="h", user="u", known_hosts=known_hosts, key_data=junk))
    assert "c2VjcmV0LW1hdGVyaWFs" not in str(caught.value)
    with pytest.raises(InvalidInputError, match="cannot read"):
        connect_options(SshTarget(host="h", user="u", known_hosts=known_hosts, key_path="/nope"))


def test_error_classification() -> None:
    target = SshTarget(host="h", user="u")
    refused = ConnectionRefusedError(111, "Connection refused")
    assert is_retryable(refused)
    assert is_retryable(TimeoutError())
    assert is_retryable(asyncssh.ConnectionLost("gone"))
    assert not is_retryable(asyncssh.HostKeyNotVerifiable("bad key"))
    assert not is_retryable(asyncssh.PermissionDenied("no"))
    assert not is_retryable(ValueError("bug"))
    unreachable = connect_error(target, refused)
    assert isinstance(unreachable, TransientError)
    assert str(unreachable).startswith("target unreachable: u@h:22")
    assert isinstance(connect_error(target, asyncssh.HostKeyNotVerifiable("x")), PermanentError)
    assert isinstance(connect_error(target, asyncssh.PermissionDenied("x")), PermanentError)
