"""EngineRuntime against a real Podman API service that connect_runtime started itself."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from hpcbox.core.errors import ConflictError, NotFoundError, TransientError
from hpcbox.infra.runtimes import (
    ContainerSpec,
    EngineRuntime,
    FileEntry,
    Mount,
    PodmanService,
    PortBinding,
    connect_runtime,
)

pytestmark = pytest.mark.integration

Make = Callable[..., str]


def test_connects_to_its_own_podman_service(runtime: EngineRuntime) -> None:
    assert runtime.name == "podman"
    runtime.ping()
    if runtime.containers_conf is not None:
        state_dir = runtime.containers_conf.parent.parent
        pid = PodmanService(state_dir).running_pid()
        again = connect_runtime("auto", state_dir=state_dir)
        try:
            again.ping()
            assert PodmanService(state_dir).running_pid() == pid  # reused, not restarted
        finally:
            assert isinstance(again, EngineRuntime)
            again.close()


def test_containers_resolve_each_other_by_name_alias_and_hostname(
    runtime: EngineRuntime, make_container: Make, prefix: str
) -> None:
    make_container("alpha", aliases=("head",))
    beta = make_container("beta")
    for name in (f"{prefix}-alpha", "head", "alpha"):
        result = runtime.exec(beta, ["getent", "hosts", name])
        assert result.exit_code == 0, (name, result)
        assert result.stdout.split()[0].count(b".") == 3


def test_files_put_before_start_are_there_with_owner_and_mode(
    runtime: EngineRuntime, make_container: Make
) -> None:
    name = make_container("files", start=False)
    assert runtime.inspect(name).status == "created"  # type: ignore[union-attr]
    runtime.put_files(
        name,
        [
            FileEntry("/etc/munge/munge.key", b"\x00secret\xff", mode=0o400, uid=100, gid=101),
            FileEntry("/etc/hpcbox/new/deep/file.txt", b"hello\n"),
            FileEntry("/tmp/note", b"x"),
        ],
    )
    runtime.start(name)
    shown = runtime.exec(
        name,
        [
            "stat",
            "-c",
            "%n %a %u %g",
            "/etc/munge/munge.key",
            "/etc/hpcbox/new/deep/file.txt",
            "/etc/hpcbox/new/deep",
            "/tmp",
        ],
    )
    assert shown.exit_code == 0, shown
    assert shown.stdout.decode().splitlines() == [
        "/etc/munge/munge.key 400 100 101",
        "/etc/hpcbox/new/deep/file.txt 644 0 0",
        "/etc/hpcbox/new/deep 755 0 0",
        "/tmp 1777 0 0",  # an existing directory keeps its mode
    ]
    assert runtime.exec(name, ["cat", "/etc/munge/munge.key"]).stdout == b"\x00secret\xff"


def test_put_files_into_a_running_container_replaces(
    runtime: EngineRuntime, make_container: Make
) -> None:
    name = make_container("replace")
    runtime.put_files(name, [FileEntry("/etc/slurm/slurm.conf", b"one\n")])
    runtime.put_files(name, [FileEntry("/etc/slurm/slurm.conf", b"two\n")])
    assert runtime.exec(name, ["cat", "/etc/slurm/slurm.conf"]).stdout == b"two\n"


def test_exec_separates_output_and_reports_exit_code(
    runtime: EngineRuntime, make_container: Make
) -> None:
    name = make_container("exec")
    result = runtime.exec(name, ["sh", "-c", "echo out; echo err >&2; echo out2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\nout2\n", b"err\n")


def test_exec_with_stdin(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("stdin")
    data = bytes(range(256)) * 20_000  # 5 MB, binary
    result = runtime.exec(name, ["sha256sum"], stdin=data)
    import hashlib

    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    echoed = runtime.exec(name, ["cat"], stdin=b"line1\nline2\n")
    assert echoed.stdout == b"line1\nline2\n"
    # Empty stdin is end-of-file at once, as is no stdin at all.
    assert runtime.exec(name, ["cat"], stdin=b"").stdout == b""
    assert runtime.exec(name, ["cat"]).stdout == b""


def test_exec_argv_is_not_a_shell_line(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("argv")
    hostile = "$(touch /tmp/pwned); `id` 'q' \"d\"\nline2"
    result = runtime.exec(name, ["printf", "%s", hostile])
    assert result.stdout.decode() == hostile
    assert runtime.exec(name, ["test", "-e", "/tmp/pwned"]).exit_code == 1


def test_exec_user_env_workdir(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("opts")
    result = runtime.exec(
        name,
        ["sh", "-c", 'echo "$(id -un) $GREETING $(pwd)"'],
        user="nobody",
        env={"GREETING": "hi there"},
        workdir="/var",
    )
    assert result.stdout == b"nobody hi there /var\n"


def test_exec_timeout(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("timeout")
    started = time.monotonic()
    with pytest.raises(TransientError, match="no end after"):
        runtime.exec(name, ["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 10


def test_exec_missing_command_is_an_exit_code(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("nocmd")
    assert runtime.exec(name, ["/no/such/program"]).exit_code in (126, 127)


def test_published_port_on_loopback(runtime: EngineRuntime, make_container: Make) -> None:
    server = (
        "use IO::Socket::INET;"
        "my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die;"
        'while (my $c = $s->accept) { print $c "hello from the container\\n"; close $c }'
    )
    name = make_container("port", command=("perl", "-e", server), ports=(PortBinding(8080),))
    info = runtime.inspect(name)
    assert info is not None
    host_port = info.ports[8080]
    assert host_port > 0
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", host_port), timeout=2) as conn:
                reply = conn.makefile("rb").readline()
            if reply:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "published port never answered"
        time.sleep(0.2)
    assert reply == b"hello from the container\n"


def test_labels_list_inspect_remove(
    runtime: EngineRuntime, make_container: Make, prefix: str
) -> None:
    one = make_container("one", labels={"io.hpcbox.test": prefix, "role": "worker"})
    two = make_container(
        "two", start=False, labels={"io.hpcbox.test": prefix, "role": "controller"}
    )
    workers = runtime.list(labels={"io.hpcbox.test": prefix, "role": "worker"})
    assert [(c.name, c.status) for c in workers] == [(one, "running")]
    both = {c.name: c for c in runtime.list(labels={"io.hpcbox.test": prefix})}
    assert set(both) == {one, two}
    assert both[two].status == "created"
    assert both[two].labels["role"] == "controller"
    runtime.remove(one)
    assert runtime.inspect(one) is None
    runtime.remove(one)  # already gone: fine
    assert [c.name for c in runtime.list(labels={"io.hpcbox.test": prefix})] == [two]


def test_stop_is_fast_with_an_init(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("stop")
    started = time.monotonic()
    runtime.stop(name)
    assert time.monotonic() - started < 3
    info = runtime.inspect(name)
    assert info is not None and info.status in ("exited", "stopped")
    runtime.stop(name)  # already stopped: fine
    runtime.stop("hbt-no-such-container")


def test_logs(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container(
        "logs",
        command=("sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo e >&2; sleep 60"),
    )
    deadline = time.monotonic() + 10
    while "e" not in runtime.logs(name).split() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runtime.logs(name, tail=2).split("\n")[:2] in (["line 5", "e"], ["e", "line 5"])
    assert "line 1" in runtime.logs(name)


def test_volume_outlives_containers(
    runtime: EngineRuntime, make_container: Make, prefix: str
) -> None:
    volume = f"{prefix}-home"
    runtime.ensure_volume(volume, labels={"io.hpcbox.test": prefix})
    runtime.ensure_volume(volume, labels={"io.hpcbox.test": prefix})
    try:
        first = make_container("v1", mounts=(Mount(volume, "/home"),))
        assert runtime.exec(first, ["sh", "-c", "echo kept > /home/f"]).exit_code == 0
        runtime.remove(first)
        second = make_container("v2", mounts=(Mount(volume, "/home", read_only=True),))
        assert runtime.exec(second, ["cat", "/home/f"]).stdout == b"kept\n"
        assert runtime.exec(second, ["touch", "/home/g"]).exit_code != 0  # read-only
        scratch = make_container("v3", mounts=(Mount("", "/scratch", "tmpfs"),))
        assert (
            b"tmpfs" in runtime.exec(scratch, ["sh", "-c", "grep ' /scratch ' /proc/mounts"]).stdout
        )
        runtime.remove(second)
        runtime.remove(scratch)
        assert runtime.volume_exists(volume)
    finally:
        runtime.remove_volume(volume)
    assert not runtime.volume_exists(volume)
    runtime.remove_volume(volume)  # already gone: fine


def test_limits(runtime: EngineRuntime, make_container: Make) -> None:
    name = make_container("limits", cpus=0.5, memory_bytes=128 * 1024**2)
    script = (
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
    )
    lines = runtime.exec(name, ["sh", "-c", script]).stdout.decode().split("\n")
    assert lines[0] == str(128 * 1024**2)
    assert lines[1].split()[0] == "50000"


def test_errors(runtime: EngineRuntime, make_container: Make, image: str, network: str) -> None:
    name = make_container("errors")
    with pytest.raises(ConflictError):
        runtime.create(ContainerSpec(name=name, image=image, hostname="x", network=network))
    with pytest.raises(NotFoundError):
        runtime.create(
            ContainerSpec(
                name=f"{name}-2", image="hpcbox/no-such-image:0", hostname="x", network=network
            )
        )
    with pytest.raises(NotFoundError):
        runtime.start("hbt-no-such-container")
    with pytest.raises(NotFoundError):
        runtime.exec("hbt-no-such-container", ["true"])
    runtime.stop(name)
    with pytest.raises(ConflictError):
        runtime.exec(name, ["true"])
    assert runtime.inspect("hbt-no-such-container") is None
    assert runtime.image_exists(image)
    assert not runtime.image_exists("hpcbox/no-such-image:0")


def test_network_in_use_cannot_be_removed(
    runtime: EngineRuntime, make_container: Make, network: str
) -> None:
    make_container("pin")
    with pytest.raises(ConflictError):
        runtime.remove_network(network)
    runtime.ensure_network(network, labels={})  # exists: kept as it is
