"""The batched submission command: built and parsed purely, and its shell loop run
for real (LocalTransport, with a stand-in ``sbatch`` on PATH) on hostile paths."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from hpcbox.infra.transport import LocalTransport
from hpcbox.jobs.backends.slurm.batch_submit import (
    UNPACK_FAILED,
    BatchFile,
    pack_files,
    parse_submit_output,
    submit_many_argv,
)


def test_argv_carries_each_path_as_its_own_argument() -> None:
    argv = submit_many_argv(
        "/h/up.tar", "/h", [("/h/a", "/h/a/batch.sh"), ("/h/b c", "/h/b c/batch.sh")]
    )
    assert argv[:2] == ["sh", "-c"]
    assert argv[3:] == [
        "hpcbox-submit",
        "/h/up.tar",
        "/h",
        "/h/a",
        "/h/a/batch.sh",
        "/h/b c",
        "/h/b c/batch.sh",
    ]


@pytest.mark.parametrize("bad", [[], [("rel", "/x")], [("/x", "y")], [("/x\x00", "/y")]])
def test_argv_refuses_bad_input(bad: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        submit_many_argv("/h/up.tar", "/h", bad)


def test_pack_files_relative_to_the_root_with_modes() -> None:
    data = pack_files(
        [BatchFile("/h/.hpcbox/jobs/1/1/script", b"echo '$(x)'\n"), BatchFile("/h/b", b"", 0o600)],
        root="/h/",
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert set(members) == {".hpcbox/jobs/1/1/script", "b"}
        assert members["b"].mode == 0o600
        script = archive.extractfile(members[".hpcbox/jobs/1/1/script"])
        assert script is not None and script.read() == b"echo '$(x)'\n"


@pytest.mark.parametrize("path", ["/elsewhere/x", "/h/../etc/passwd", "/h", "relative"])
def test_pack_files_refuses_paths_outside_the_root(path: str) -> None:
    with pytest.raises(ValueError):
        pack_files([BatchFile(path, b"")], root="/h")


def test_parse_ids_errors_and_missing_blocks() -> None:
    out = (
        "welcome to the cluster\n"  # a chatty start-up file
        "@@hpcbox-sbatch 0\n101\n"
        "@@hpcbox-sbatch 1\nsbatch: error: Batch job submission failed: Invalid account\n"
        "@@hpcbox-sbatch 0\n102;cluster\n"
        "@@hpcbox-sbatch 0\nno id here\n"
    )
    outcomes = parse_submit_output(out, 5)
    assert outcomes[0].native_id == "101"
    assert outcomes[1].error is not None and "Invalid account" in str(outcomes[1].error)
    assert outcomes[2].native_id == "102"
    assert outcomes[3].error is not None  # exit 0 without an id
    assert outcomes[4].unknown  # the command ended before this job's turn


def test_the_loop_runs_sbatch_once_per_job_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "sbatch"
    # Records its argv one per line (NUL-free), fails for scripts named "refuse".
    fake.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do printf "%s\\n" "$a" >> "{log}"; done\n'
        'case "$3" in *refuse*) echo "sbatch: error: refused" >&2; exit 1;; esac\n'
        'echo "$$"\n'
    )
    fake.chmod(0o755)
    hostile = ["/a b", "/q'uote", "/$(touch pwned)", "/`id`;x", "/ünï\ncode"]
    root = str(tmp_path / "root")
    os.mkdir(root)  # the home directory, which always exists
    pairs = [(root + d, f"{root}{d}/batch.sh") for d in hostile]
    pairs.append((f"{root}/r", f"{root}/r/refuse.sh"))
    files = [BatchFile(script, f"#!/bin/sh\n# {script}\n".encode()) for _, script in pairs]
    archive = tmp_path / "up.tar"
    archive.write_bytes(pack_files(files, root=root))
    transport = LocalTransport(home=str(tmp_path))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    result = transport.run(submit_many_argv(str(archive), root, pairs), cwd=str(tmp_path))
    outcomes = parse_submit_output(result.stdout.decode(), len(pairs))
    assert result.exit_code == 0, result
    assert all(o.native_id and o.native_id.isdigit() for o in outcomes[:-1]), outcomes
    assert outcomes[-1].error is not None and "refused" in str(outcomes[-1].error)
    calls = log.read_text()
    for chdir, script in pairs:
        assert f"--chdir={chdir}\n{script}\n" in calls
        # Unpacked verbatim, with the mode asked for.
        assert Path(script).read_bytes() == f"#!/bin/sh\n# {script}\n".encode()
        assert Path(script).stat().st_mode & 0o777 == 0o700
    assert not archive.exists()  # removed once unpacked
    assert not (tmp_path / "pwned").exists()


def test_an_archive_that_does_not_unpack_submits_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "up.tar"
    archive.write_bytes(b"not a tar")
    transport = LocalTransport(home=str(tmp_path))
    argv = submit_many_argv(str(archive), str(tmp_path), [("/x", "/x/batch.sh")])
    result = transport.run(argv, cwd=str(tmp_path))
    assert result.exit_code == UNPACK_FAILED
    assert "@@hpcbox-sbatch" not in result.stdout.decode()
