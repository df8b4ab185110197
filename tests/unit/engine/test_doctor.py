"""``hpcbox doctor``: the container checks against a fake Runtime (hpcbox's own seam), the
pure parts (fixes, exit status, cgroups) on given facts, the local checks for real."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpcbox.cli import doctor
from hpcbox.cli.doctor import cgroup_check, exit_status, run_checks, userns_fix
from hpcbox.clusters import preflight
from hpcbox.clusters.images import image_tag
from hpcbox.clusters.preflight import (
    DNS_CHECK,
    INIT_CHECK,
    PROBE_LABEL,
    Check,
    PodmanFacts,
    dns_fix,
    init_fix,
    podman_facts,
    preflight_checks,
    preflight_message,
    probe_containers,
    start_fix,
    static_checks,
    static_problems,
)
from hpcbox.core.settings import JudgeSettings, Settings
from hpcbox.infra.runtimes import ContainerInfo, ContainerSpec, ExecResult
from tests.unit.engine.fake_runtime import FakeRuntime, ok

IMAGE = "hpcbox/debian:bookworm"


def facts(**changes: object) -> PodmanFacts:
    values: dict[str, object] = {
        "network_backend": "netavark",
        "aardvark_dns": True,
        "dnsname_plugin": False,
        "init_binary": True,
        "iptables": True,
        "own_service_pid_file": Path("/state/runtime/podman/podman.pid"),
    }
    values.update(changes)
    return PodmanFacts(**values)  # type: ignore[arg-type]


def assert_cleaned_up(rt: FakeRuntime) -> None:
    assert rt.containers == {}
    assert rt.networks == {}


# -- the container probe ------------------------------------------------------------


def test_a_working_engine_passes_both_checks_and_leaves_nothing_behind() -> None:
    rt = FakeRuntime()
    init, dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert (init.name, init.ok) == (INIT_CHECK, True), init
    assert (dns.name, dns.ok) == (DNS_CHECK, True), dns
    assert init.pillars == dns.pillars == ("clusters",)
    assert init.main_job and not init.required
    assert "10.88.0.2" in dns.detail
    assert_cleaned_up(rt)
    # It really ran: two containers with an init, PID 1 read, a name looked up, a stop.
    creates = [name for op, name in rt.calls if op == "create"]
    assert len(creates) == 2
    client, peer = creates
    assert (client, ("cat", "/proc/1/cmdline")) in rt.execs
    lookups = [argv for name, argv in rt.execs if name == client and "getent" in argv]
    assert lookups and lookups[0][-1] == peer
    assert ("stop", peer) in rt.calls
    assert rt.calls[-1] == ("remove-network", rt.calls[0][1])


def test_a_missing_init_is_reported_with_its_fix_and_dns_still_checked() -> None:
    rt = FakeRuntime()
    rt.init_missing = True
    init, dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert not init.ok
    assert "catatonit" in init.detail
    assert (
        init.fix == "apt-get install catatonit (Podman's --init runs /usr/libexec/podman/catatonit)"
    )
    assert dns.ok, dns
    assert_cleaned_up(rt)


def test_no_name_resolution_is_reported_with_the_netavark_fix() -> None:
    rt = FakeRuntime()
    rt.dns = False
    init, dns = probe_containers(
        rt, IMAGE, facts=lambda: facts(network_backend="cni"), dns_timeout=0.5
    )
    assert init.ok
    assert not dns.ok
    assert "do not resolve each other by name" in dns.detail
    assert dns.fix.startswith("Podman uses its CNI network backend")
    assert "apt-get install netavark aardvark-dns" in dns.fix
    assert "kill $(cat /state/runtime/podman/podman.pid)" in dns.fix
    assert_cleaned_up(rt)


def test_an_empty_first_read_of_pid_1_is_read_again_not_a_failure() -> None:
    # On a loaded machine an exec right after the start can come back empty.
    rt = FakeRuntime()
    empty = iter([ExecResult(0, b"", b""), ExecResult(1, b"", b"exec failed")])
    rt.handlers.append(lambda _c, argv: next(empty, None) if list(argv)[:1] == ["cat"] else None)
    init, dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert init.ok, init
    assert dns.ok, dns
    assert_cleaned_up(rt)


def test_pid_1_that_never_reads_is_reported_with_what_the_read_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = FakeRuntime()
    rt.handlers.append(
        lambda _c, argv: (
            ExecResult(126, b"", b"OCI runtime exec failed") if list(argv)[:1] == ["cat"] else None
        )
    )
    monkeypatch.setattr(preflight, "_init_error", _quick(preflight._init_error))
    init, _dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert not init.ok
    assert "could not be read" in init.detail and "OCI runtime exec failed" in init.detail
    assert_cleaned_up(rt)


def _quick(check: Callable[..., str | None]) -> Callable[..., str | None]:
    return lambda runtime, name: check(runtime, name, timeout=0.3)


def test_a_pid_1_that_is_not_an_init_fails_the_init_check() -> None:
    rt = FakeRuntime()
    rt.handlers.append(
        lambda _c, argv: ok(b"sleep\0infinity\0") if list(argv)[:1] == ["cat"] else None
    )
    init, dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert not init.ok
    assert "'sleep'" in init.detail
    assert dns.ok
    assert_cleaned_up(rt)


def test_a_slow_stop_means_the_init_does_not_pass_signals_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(preflight, "_PROMPT_STOP", 0.05)
    rt = FakeRuntime()
    rt.slow_stop = 0.2
    init, _dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert not init.ok
    assert "SIGTERM" in init.detail
    assert_cleaned_up(rt)


def test_an_engine_that_starts_nothing_fails_both_with_the_engines_error() -> None:
    rt = FakeRuntime()
    rt.start_error = "netavark: No such file or directory (os error 2)"
    init, dns = probe_containers(rt, IMAGE, facts=lambda: facts(iptables=False))
    assert not init.ok and not dns.ok
    assert "netavark: No such file" in init.detail
    assert (
        init.fix
        == dns.fix
        == "apt-get install iptables (netavark runs it to set up bridge networks)"
    )
    assert_cleaned_up(rt)


def test_containers_of_a_doctor_that_died_are_removed_and_live_ones_kept() -> None:
    rt = FakeRuntime()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    for name, pid in (("stale", dead.stdout.strip()), ("live", str(os.getpid()))):
        net = f"hpcbox-doctor-{name}"
        rt.ensure_network(net, labels={})
        rt.create(
            ContainerSpec(
                name=f"{net}-a",
                image=IMAGE,
                hostname="a",
                network=net,
                labels={
                    PROBE_LABEL: "1",
                    "io.hpcbox.doctor.pid": pid,
                    "io.hpcbox.doctor.host": host,
                    "io.hpcbox.doctor.network": net,
                },
            )
        )
    init, dns = probe_containers(rt, IMAGE, dns_timeout=1)
    assert init.ok and dns.ok
    assert list(rt.containers) == ["hpcbox-doctor-live-a"]
    assert list(rt.networks) == ["hpcbox-doctor-live"]


def test_without_any_image_the_checks_say_how_to_get_one() -> None:
    rt = FakeRuntime()
    rt.images = set()
    checks = preflight_checks(rt)
    assert [c.name for c in checks] == [INIT_CHECK, DNS_CHECK]
    for check in checks:
        assert not check.ok
        assert check.detail.startswith("not run: no local image")
        assert check.fix.startswith("hpcbox images build --role base")
    assert rt.calls == []  # nothing was created


def test_the_checks_use_the_first_local_image() -> None:
    rt = FakeRuntime()
    rt.images = {IMAGE, image_tag("base")}
    checks = preflight_checks(rt, dns_timeout=1)
    assert all(c.ok for c in checks), checks
    assert all(c.seconds is not None for c in checks)


def test_the_probe_image_order(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = FakeRuntime()
    used: list[str] = []
    original = rt.create

    def create(spec: ContainerSpec) -> ContainerInfo:
        used.append(spec.image)
        return original(spec)

    monkeypatch.setattr(rt, "create", create)
    rt.images = {IMAGE, "docker.io/library/debian:bookworm"}
    preflight_checks(rt, dns_timeout=1)
    assert set(used) == {"docker.io/library/debian:bookworm"}
    used.clear()
    rt.images = {IMAGE, image_tag("base")}
    preflight_checks(rt, dns_timeout=1)
    assert set(used) == {image_tag("base")}


def test_podman_facts_are_only_for_a_local_podman_engine() -> None:
    assert podman_facts(FakeRuntime()) is None
    assert podman_facts(FakeRuntime(name="docker")) is None


# -- fixes from facts ----------------------------------------------------------------


def test_static_problems_are_only_the_conclusive_ones() -> None:
    assert static_problems("podman", facts()) == {}
    assert static_problems("docker", facts(network_backend="cni")) == {}
    assert static_problems("podman", None) == {}
    assert set(static_problems("podman", facts(network_backend="cni"))) == {DNS_CHECK}
    # CNI with the dnsname plugin has DNS: not certain to fail.
    assert static_problems("podman", facts(network_backend="cni", dnsname_plugin=True)) == {}
    assert set(static_problems("podman", facts(aardvark_dns=False))) == {DNS_CHECK}
    assert set(static_problems("podman", facts(iptables=False))) == {DNS_CHECK}
    assert set(static_problems("podman", facts(init_binary=False))) == {INIT_CHECK}
    # podman info did not answer: nothing is known about the backend.
    assert static_problems("podman", facts(network_backend=None, aardvark_dns=False)) == {}


def test_static_checks_carry_their_fixes() -> None:
    checks = static_checks("podman", facts(network_backend="cni", init_binary=False))
    by_name = {c.name: c for c in checks}
    assert set(by_name) == {INIT_CHECK, DNS_CHECK}
    assert "apt-get install catatonit" in by_name[INIT_CHECK].fix
    assert "apt-get install netavark aardvark-dns" in by_name[DNS_CHECK].fix
    assert all(not c.ok and c.main_job for c in checks)


def test_dns_fixes_name_the_exact_step() -> None:
    system = facts(network_backend="cni", own_service_pid_file=None)
    text = dns_fix("podman", system)
    assert "/etc/containers/containers.conf" in text
    assert "systemctl restart podman.socket" in text
    assert dns_fix("podman", facts(aardvark_dns=False)).startswith("apt-get install aardvark-dns")
    assert dns_fix("podman", facts(iptables=False)).startswith("apt-get install iptables")
    assert "apt-get install netavark aardvark-dns" in dns_fix("podman", None)
    assert "Docker" in dns_fix("docker", None)


def test_start_and_init_fixes() -> None:
    assert start_fix("podman", facts(iptables=False), "anything").startswith(
        "apt-get install iptables"
    )
    assert "catatonit" in start_fix("podman", None, "container-init binary not found")
    assert start_fix("podman", None, "OCI runtime not found").startswith("apt-get install runc")
    assert "engine's error" in start_fix("podman", None, "something else")
    assert (
        init_fix("docker", None)
        == "install Docker's init (docker-init, from tini): apt-get install tini"
    )
    assert "--reinstall catatonit" in init_fix("podman", facts())


def test_userns_fix_follows_the_sysctl_that_blocks() -> None:
    debian = userns_fix({"kernel/unprivileged_userns_clone": "0"})
    assert debian.startswith("sysctl -w kernel.unprivileged_userns_clone=1")
    assert "/etc/sysctl.d/90-hpcbox.conf" in debian
    assert userns_fix({"user/max_user_namespaces": "0"}).startswith(
        "sysctl -w user.max_user_namespaces=15000"
    )
    ubuntu = {"kernel/apparmor_restrict_unprivileged_userns": "1", "user/max_user_namespaces": "9"}
    assert userns_fix(ubuntu).startswith("sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
    assert userns_fix({}).startswith("allow unprivileged user namespaces")


# -- cgroups ----------------------------------------------------------------------

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2 = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_cgroup_v1_hybrid_with_every_controller() -> None:
    check = cgroup_check(HYBRID, lambda _path: None)
    assert check.ok
    assert check.detail == "cgroup v1 (hybrid): memory, cpu, pids"
    assert check.pillars == ("clusters", "jobs", "judge")


def test_cgroup_v1_without_pids_matters_to_jobs_and_the_judge_only() -> None:
    text = "".join(line + "\n" for line in HYBRID.splitlines() if "pids" not in line)
    check = cgroup_check(text, lambda _path: None)
    assert not check.ok
    assert check.pillars == ("jobs", "judge")
    assert not check.main_job and check.required
    assert check.fix == (
        "mkdir -p /sys/fs/cgroup/pids && mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids"
    )


def test_cgroup_v2_reads_the_root_controllers() -> None:
    full = cgroup_check(V2, lambda path: "cpuset cpu io memory pids\n")
    assert full.ok and full.detail.startswith("cgroup v2")
    seen: list[str] = []

    def read(path: str) -> str:
        seen.append(path)
        return "cpuset cpu io pids\n"

    partial = cgroup_check(V2, read)
    assert seen == ["/sys/fs/cgroup/cgroup.controllers"]
    assert not partial.ok and partial.main_job
    assert "cgroup_enable=memory" in partial.fix


# -- results, exit status, the command ---------------------------------------------


def test_exit_status_required_and_strict() -> None:
    jobs = Check("bubblewrap", False, "", pillars=("jobs", "judge"))
    cluster = Check(DNS_CHECK, False, "", pillars=("clusters",))
    judge = Check("judge root filesystem", False, "", pillars=("judge",))
    optional = Check("sbatch", False, "", pillars=("jobs",), optional=True)
    fine = Check("state store", True, "", pillars=("clusters", "jobs", "judge"))
    assert exit_status([fine, judge, optional], strict=True) == 0
    assert exit_status([fine, cluster], strict=False) == 0
    assert exit_status([fine, cluster], strict=True) == 1
    assert exit_status([jobs], strict=False) == 1


def test_to_json_has_the_pillars_and_verdicts() -> None:
    check = Check(
        DNS_CHECK, False, "no", "apt-get install x", pillars=("clusters",), seconds=1.23456
    )
    assert check.to_json() == {
        "name": DNS_CHECK,
        "ok": False,
        "detail": "no",
        "fix": "apt-get install x",
        "pillars": ["clusters"],
        "required": False,
        "main_job": True,
        "optional": False,
        "seconds": 1.235,
    }


def test_preflight_message_is_one_line_with_each_fix() -> None:
    message = preflight_message(
        [
            Check(INIT_CHECK, False, "no init", "apt-get install catatonit"),
            Check(DNS_CHECK, False, "no dns", "apt-get install aardvark-dns"),
        ]
    )
    assert "\n" not in message
    assert "container init: no init; fix: apt-get install catatonit" in message
    assert "container DNS: no dns; fix: apt-get install aardvark-dns" in message
    assert "hpcbox doctor" in message


def test_the_local_checks_run_for_real_and_report(settings: Settings) -> None:
    checks = run_checks(settings, containers=False)
    names = [c.name for c in checks]
    assert names[:6] == [
        "state store",
        "bubblewrap",
        "sandbox (cgroups)",
        "user namespaces",
        "cgroup controllers",
        "judge root filesystem",
    ]
    assert all(c.pillars for c in checks)
    assert all(c.seconds is not None and c.seconds < 30 for c in checks)
    assert all(c.ok or c.fix for c in checks), [c for c in checks if not c.ok and not c.fix]
    assert next(c for c in checks if c.name == "state store").ok


def test_the_command_prints_json_and_exits_by_strictness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpcbox.cli.main import app

    results = [
        Check("state store", True, "sqlite", pillars=("clusters", "jobs", "judge")),
        Check(DNS_CHECK, False, "no [network] dns", "set [network] x", pillars=("clusters",)),
    ]
    monkeypatch.setattr(doctor, "run_checks", lambda _settings, containers=True: results)
    runner = CliRunner()
    plain = runner.invoke(app, ["doctor"])
    assert plain.exit_code == 0, plain.output
    assert "fix: set [network] x" in plain.output  # printed as text, not markup
    assert "not ready (container DNS)" in plain.output
    strict = runner.invoke(app, ["doctor", "--strict", "--json"])
    assert strict.exit_code == 1
    data = json.loads(strict.output)
    assert [c["name"] for c in data] == ["state store", DNS_CHECK]
    assert data[1]["main_job"] is True


def _judge_check(settings: Settings) -> Check:
    # As `hpcbox doctor` does: the judge's settings from the environment.
    settings = settings.model_copy(update={"judge": JudgeSettings.from_env()})
    return next(c for c in run_checks(settings, containers=False) if c.name.startswith("judge"))


def _fake_rootfs(cache: Path) -> Path:
    from hpcbox.judge.languages import load_registry
    from hpcbox.judge.rootfs import rootfs_path

    packages = [lang.package for lang in load_registry().values() if lang.package]
    path = rootfs_path(cache, packages)
    (path / "usr" / "bin").mkdir(parents=True)
    python = path / "usr" / "bin" / "python3"
    python.write_text("")
    python.chmod(0o755)
    (path / ".hpcbox-rootfs").write_text("python3\n")
    return path


def test_the_judge_check_says_how_to_build_the_runtime(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPCBOX_JUDGE_CACHE", str(tmp_path / "judge"))
    check = _judge_check(settings)
    assert not check.ok and check.pillars == ("judge",)
    assert check.detail.startswith("not built (")
    assert check.fix.startswith("hpcbox judge setup")
    assert not check.required and not check.main_job


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can check as the sandbox's uid")
def test_the_judge_check_catches_a_runtime_the_sandbox_uid_cannot_reach(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    hidden.chmod(0o700)
    cache = hidden / "judge"
    cache.mkdir(mode=0o755)
    _fake_rootfs(cache)
    monkeypatch.setenv("HPCBOX_JUDGE_CACHE", str(cache))
    check = _judge_check(settings)
    assert not check.ok
    assert "cannot reach" in check.detail
    assert "HPCBOX_JUDGE_CACHE" in check.fix
    # The same runtime where every user can search the way to it is ready.
    shared = Path(tempfile.mkdtemp(prefix="hb-doctor-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        path = _fake_rootfs(shared / "judge")
        (shared / "judge").chmod(0o755)
        monkeypatch.setenv("HPCBOX_JUDGE_CACHE", str(shared / "judge"))
        ready = _judge_check(settings)
        assert ready.ok, ready
        assert ready.detail == f"ready at {path}"
    finally:
        shutil.rmtree(shared)
