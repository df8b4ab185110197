"""FileEntry values packed into the tar that put_archive takes."""

from __future__ import annotations

import io
import tarfile

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.runtimes import FileEntry
from hpcbox.infra.runtimes.tarball import build_tar, checked_path


def members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        found = {}
        for info in archive.getmembers():
            handle = archive.extractfile(info)
            assert handle is not None
            found[info.name] = (info, handle.read())
        return found


def test_files_keep_content_mode_and_owner() -> None:
    data = build_tar(
        [
            FileEntry("/etc/munge/munge.key", b"\x00\x01secret", mode=0o400, uid=100, gid=101),
            FileEntry("/etc/slurm/slurm.conf", b"ClusterName=x\n"),
        ],
        mtime=1_700_000_000,
    )
    found = members(data)
    info, content = found["etc/munge/munge.key"]
    assert content == b"\x00\x01secret"
    assert (info.mode, info.uid, info.gid, info.mtime) == (0o400, 100, 101, 1_700_000_000)
    info, content = found["etc/slurm/slurm.conf"]
    assert (info.mode, info.uid, info.gid) == (0o644, 0, 0)
    assert content == b"ClusterName=x\n"


def test_no_directory_entries_so_existing_directories_keep_owner_and_mode() -> None:
    data = build_tar([FileEntry("/home/alice/.ssh/authorized_keys", b"ssh-ed25519 AAAA x\n")])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert [(m.name, m.isfile()) for m in archive.getmembers()] == [
            ("home/alice/.ssh/authorized_keys", True)
        ]


def test_empty_file_and_binary_data() -> None:
    blob = bytes(range(256)) * 1000
    found = members(build_tar([FileEntry("/a/empty", b""), FileEntry("/a/blob", blob)]))
    assert found["a/empty"][1] == b""
    assert found["a/blob"][1] == blob


def test_odd_but_valid_names_are_kept_verbatim() -> None:
    odd = "/tmp/a b/'q'/\"d\"/$(id)/;x/ünï☃"
    found = members(build_tar([FileEntry(odd, b"x")]))
    assert list(found) == [odd[1:]]


@pytest.mark.parametrize(
    "path",
    ["relative/file", "", "/", "/etc/", "/etc/../root/x", "/./etc/x", "/etc//x", "/a\0b", "../x"],
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidInputError):
        checked_path(path)
    with pytest.raises(InvalidInputError):
        build_tar([FileEntry(path, b"x")])


@pytest.mark.parametrize(
    "entry",
    [
        FileEntry("/x", b"", mode=-1),
        FileEntry("/x", b"", mode=0o10000),
        FileEntry("/x", b"", uid=-1),
        FileEntry("/x", b"", gid=-5),
    ],
)
def test_bad_modes_and_owners_are_refused(entry: FileEntry) -> None:
    with pytest.raises(InvalidInputError):
        build_tar([entry])


def test_setuid_and_sticky_bits_are_allowed() -> None:
    found = members(build_tar([FileEntry("/usr/local/bin/t", b"", mode=0o4755)]))
    assert found["usr/local/bin/t"][0].mode == 0o4755
