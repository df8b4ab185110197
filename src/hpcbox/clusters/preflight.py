"""The container checks of ``hpcbox doctor`` and ``cluster up``'s preflight.

The container checks run real containers through hpcbox's runtime adapter
(:class:`~hpcbox.infra.runtimes.Runtime`), the way a cluster's nodes run: two
containers started with an init (``ContainerSpec.init``) on a network of their
own; PID 1 must be the init, one must resolve the other by name through the
engine's DNS, and a stop must be prompt (the init passes SIGTERM on). They take
a few seconds, and remove their containers and network whatever happens
(containers left by a doctor that was killed are removed by the next one).

Which image: no registry may be reachable, so nothing is pulled. The checks use
the first local image of hpcbox's node base image (this version's, then
``:latest``) and the Debian image it is built from (pulled
``debian:bookworm`` or the bootstrapped ``hpcbox/debian:bookworm``); each has
``sleep``, ``cat`` and ``getent``. A throw-away image made from host binaries
was not chosen: what a host has (busybox, static binaries, their libraries)
differs between machines, and DNS lookups need the C library's resolver. When
no image is present the checks do not pass: they say ``hpcbox images build
--role base`` (a Debian bootstrap, about a minute), after reporting what can be
known without a container (Podman's network backend and DNS helper, its init
binary). ``hpcbox cluster up`` builds the base image first, so its preflight
(:func:`preflight_checks`) always runs for real.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from hpcbox.core.errors import HpcboxError
from hpcbox.core.settings import Settings
from hpcbox.infra.runtimes import ContainerSpec, EngineRuntime, PodmanService, Runtime, podman_env

__all__ = [
    "DNS_CHECK",
    "INIT_CHECK",
    "Check",
    "PodmanFacts",
    "clusters_check",
    "container_checks",
    "dns_fix",
    "find_probe_image",
    "init_fix",
    "podman_facts",
    "preflight_checks",
    "preflight_message",
    "probe_containers",
    "start_fix",
    "static_checks",
    "static_problems",
]

Pillar = Literal["clusters", "jobs", "judge"]
ALL_PILLARS: tuple[Pillar, ...] = ("clusters", "jobs", "judge")

ENGINE_CHECK = "container engine"
INIT_CHECK = "container init"
DNS_CHECK = "container DNS"

#: Where Podman looks for its helpers (netavark, aardvark-dns, catatonit).
PODMAN_HELPER_DIRS = (
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
)
#: Podman's init for ``--init`` (containers.conf ``init_path``, default).
PODMAN_INIT = "/usr/libexec/podman/catatonit"
CNI_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni", "/usr/local/lib/cni")
BUILD_BASE_FIX = "hpcbox images build --role base"

#: Labels of the doctor's containers: stale ones (their process gone) are removed.
PROBE_LABEL = "io.hpcbox.doctor"
_PROBE_PID = "io.hpcbox.doctor.pid"
_PROBE_HOST = "io.hpcbox.doctor.host"
_PROBE_NETWORK = "io.hpcbox.doctor.network"
#: A stop slower than this means the init did not pass SIGTERM on.
_PROMPT_STOP = 4.0


@dataclass(frozen=True)
class Check:
    """One thing checked: ``ok``, what was found (``detail``) and, if not ok, ``fix``."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: The pillars that need what this checks.
    pillars: tuple[Pillar, ...] = ()
    #: It only limits optional features of those pillars.
    optional: bool = False
    #: How long the check took.
    seconds: float | None = None

    @property
    def required(self) -> bool:
        """Local jobs cannot run without it: ``hpcbox doctor`` exits 1 when it fails."""
        return "jobs" in self.pillars and not self.optional

    @property
    def main_job(self) -> bool:
        """A SLURM cluster on containers needs it: ``--strict`` exits 1 when it fails."""
        return "clusters" in self.pillars and not self.optional

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "pillars": list(self.pillars),
            "required": self.required,
            "main_job": self.main_job,
            "optional": self.optional,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
        }


# -- what can be known about Podman without a container --------------------------


@dataclass(frozen=True)
class PodmanFacts:
    """A local Podman's set-up, as far as it matters to the container checks."""

    #: ``netavark`` or ``cni`` (``podman info``), None when podman did not say.
    network_backend: str | None
    aardvark_dns: bool
    #: CNI's dnsname plugin, which gives CNI networks DNS.
    dnsname_plugin: bool
    init_binary: bool
    #: netavark runs iptables to set up bridge networks (Debian's netavark does not
    #: depend on it): without it no container starts on a network.
    iptables: bool = True
    #: hpcbox's own Podman service's pid file, when that service is the engine.
    own_service_pid_file: Path | None = None


def _helper_exists(name: str, dirs: Sequence[str]) -> bool:
    return shutil.which(name) is not None or any(os.path.exists(f"{d}/{name}") for d in dirs)


def podman_facts(runtime: Runtime) -> PodmanFacts | None:
    """The facts for a local Podman engine (None for Docker, a remote or a fake engine).

    Asks ``podman info`` with the environment the engine was started with
    (hpcbox's own service has a containers.conf of its own); under a second.
    """
    if runtime.name != "podman" or not isinstance(runtime, EngineRuntime):
        return None
    if not runtime.url.startswith("unix://"):
        return None
    podman = shutil.which("podman")
    if podman is None:
        return None
    conf = runtime.containers_conf
    env = podman_env(conf, os.environ) if conf is not None else dict(os.environ)
    backend: str | None = None
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(
            [podman, "info", "--format", "{{.Host.NetworkBackend}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0:
            backend = done.stdout.strip() or None
    return PodmanFacts(
        network_backend=backend,
        aardvark_dns=_helper_exists("aardvark-dns", PODMAN_HELPER_DIRS),
        dnsname_plugin=any(os.path.exists(f"{d}/dnsname") for d in CNI_PLUGIN_DIRS),
        init_binary=os.path.exists(PODMAN_INIT) or _helper_exists("catatonit", PODMAN_HELPER_DIRS),
        iptables=_helper_exists("iptables", ("/usr/sbin", "/sbin")),
        own_service_pid_file=conf.parent / "podman.pid" if conf is not None else None,
    )


def _restart_podman(facts: PodmanFacts) -> str:
    if facts.own_service_pid_file is not None:
        return (
            f"stop hpcbox's Podman service so that the next command starts it afresh: "
            f"kill $(cat {facts.own_service_pid_file})"
        )
    return "restart the Podman service (systemctl restart podman.socket podman.service)"


def dns_fix(engine: str, facts: PodmanFacts | None) -> str:
    """The fix for containers that do not resolve each other by name."""
    if engine != "podman":
        return (
            "Docker's embedded DNS serves user-defined bridge networks: check the daemon's "
            "network settings (daemon.json dns, iptables) and restart it (systemctl restart docker)"
        )
    if facts is None:
        return (
            "install netavark and aardvark-dns (apt-get install netavark aardvark-dns) and make "
            'Podman use them: network_backend = "netavark" in the [network] table of '
            "containers.conf, then restart the Podman service"
        )
    if facts.network_backend == "cni":
        conf = (
            ""
            if facts.own_service_pid_file is not None
            else 'set network_backend = "netavark" in the [network] table of '
            "/etc/containers/containers.conf (Podman keeps the backend it first chose); "
        )
        return (
            "Podman uses its CNI network backend, whose networks have no DNS: "
            f"apt-get install netavark aardvark-dns; {conf}{_restart_podman(facts)}"
        )
    if facts.network_backend == "netavark" and not facts.iptables:
        return _IPTABLES_FIX
    if not facts.aardvark_dns:
        return f"apt-get install aardvark-dns (netavark's DNS server); {_restart_podman(facts)}"
    return (
        "aardvark-dns is installed but did not answer: look for aardvark-dns errors in the "
        f"Podman service's log, and {_restart_podman(facts)}"
    )


_IPTABLES_FIX = "apt-get install iptables (netavark runs it to set up bridge networks)"


def start_fix(engine: str, facts: PodmanFacts | None, error: str) -> str:
    """The fix when no container starts at all (with or without an init), from the
    engine's ``error`` and what is known about the engine."""
    if (
        engine == "podman"
        and facts is not None
        and facts.network_backend == "netavark"
        and not facts.iptables
    ):
        return _IPTABLES_FIX
    lowered = error.lower()
    if "catatonit" in lowered or "container-init" in lowered:
        return init_fix(engine, facts)
    if "oci runtime" in lowered or "runc" in lowered or "crun" in lowered:
        return "apt-get install runc (the OCI runtime hpcbox's Podman service selects)"
    return "the engine's error above says what is missing; then hpcbox doctor again"


def init_fix(engine: str, facts: PodmanFacts | None) -> str:
    """The fix for containers that cannot start with an init."""
    if engine != "podman":
        return "install Docker's init (docker-init, from tini): apt-get install tini"
    if facts is not None and facts.init_binary:
        return (
            f"Podman has {PODMAN_INIT} but the container did not start with it: check "
            "init_path in containers.conf, or reinstall it: apt-get install --reinstall catatonit"
        )
    return f"apt-get install catatonit (Podman's --init runs {PODMAN_INIT})"


def static_problems(engine: str, facts: PodmanFacts | None) -> dict[str, str]:
    """What is certainly broken, known without running a container: check name -> detail.

    Only conclusive findings: a CNI backend without the dnsname plugin, netavark
    without iptables or aardvark-dns, no init binary at Podman's default path.
    """
    if engine != "podman" or facts is None:
        return {}
    problems: dict[str, str] = {}
    if facts.network_backend == "cni" and not facts.dnsname_plugin:
        problems[DNS_CHECK] = (
            "Podman uses its CNI network backend without the dnsname plugin: containers "
            "cannot resolve each other by name"
        )
    elif facts.network_backend == "netavark" and not facts.iptables:
        problems[DNS_CHECK] = (
            "Podman's network backend netavark needs iptables, which is not installed: "
            "no container can join a network"
        )
    elif facts.network_backend == "netavark" and not facts.aardvark_dns:
        problems[DNS_CHECK] = "Podman uses netavark but aardvark-dns (its DNS) is not installed"
    if not facts.init_binary:
        problems[INIT_CHECK] = f"{PODMAN_INIT} (catatonit) is missing: containers cannot use --init"
    return problems


def static_checks(engine: str, facts: PodmanFacts | None) -> list[Check]:
    """The failed checks known without running a container (:func:`static_problems`),
    each with its fix; empty when nothing is certainly wrong."""
    problems = static_problems(engine, facts)
    fixes = {INIT_CHECK: init_fix, DNS_CHECK: dns_fix}
    return [
        clusters_check(name, False, problems[name], fix(engine, facts))
        for name, fix in fixes.items()
        if name in problems
    ]


# -- the container checks ---------------------------------------------------------


def find_probe_image(runtime: Runtime) -> str | None:
    """The first local image to run the container checks with, or None."""
    from hpcbox.clusters.images import image_tag, latest_tag
    from hpcbox.clusters.images.debian import BOOTSTRAPPED_IMAGE, UPSTREAM_IMAGE

    for tag in (image_tag("base"), latest_tag("base"), UPSTREAM_IMAGE, BOOTSTRAPPED_IMAGE):
        if runtime.image_exists(tag):
            return tag
    return None


def clusters_check(name: str, ok: bool, detail: str, fix: str = "") -> Check:
    return Check(name, ok, detail, "" if ok else fix, pillars=("clusters",))


class _Probe:
    """Two containers on a network of their own, removed again in :meth:`close`."""

    def __init__(self, runtime: Runtime, image: str) -> None:
        self.rt = runtime
        self.image = image
        token = secrets.token_hex(4)
        self.network = f"hpcbox-doctor-{token}"
        self.names = (f"{self.network}-a", f"{self.network}-b")
        self.labels = {
            PROBE_LABEL: "1",
            _PROBE_PID: str(os.getpid()),
            _PROBE_HOST: socket.gethostname(),
            _PROBE_NETWORK: self.network,
        }
        self.cleanup_errors: list[str] = []

    def start(self, name: str, *, init: bool) -> None:
        self.rt.create(
            ContainerSpec(
                name=name,
                image=self.image,
                hostname=name,
                network=self.network,
                command=("sleep", "infinity"),
                labels=self.labels,
                init=init,
            )
        )
        self.rt.start(name)

    def close(self) -> None:
        for name in self.names:
            try:
                self.rt.remove(name, force=True)
            except HpcboxError as exc:
                self.cleanup_errors.append(str(exc))
        try:
            self.rt.remove_network(self.network)
        except HpcboxError as exc:
            self.cleanup_errors.append(str(exc))


def _reap_stale_probes(runtime: Runtime) -> None:
    """Remove containers (and networks) of doctors on this machine whose process is gone."""
    from hpcbox.infra.runtimes.probe import pid_alive

    host = socket.gethostname()
    networks: set[str] = set()
    for info in runtime.list(labels={PROBE_LABEL: "1"}):
        pid = info.labels.get(_PROBE_PID, "")
        if info.labels.get(_PROBE_HOST) != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        runtime.remove(info.name, force=True)
        networks.add(info.labels.get(_PROBE_NETWORK, ""))
    for network in sorted(networks - {""}):
        with contextlib.suppress(HpcboxError):
            runtime.remove_network(network)


def _resolves(runtime: Runtime, client: str, name: str, *, timeout: float) -> tuple[bool, str]:
    """Whether ``client`` resolves ``name`` within ``timeout`` seconds (the engine's DNS
    may answer for a container only a moment after it started), and the last answer."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        left = max(1, min(3, int(deadline - time.monotonic())))
        argv = ["timeout", str(left), "getent", "hosts", name]
        try:
            result = runtime.exec(client, argv, timeout=left + 5)
        except HpcboxError as exc:
            said = str(exc)
        else:
            if result.exit_code == 0 and result.stdout.strip():
                return True, result.stdout.decode(errors="replace").split()[0]
            said = f"getent hosts {name} exited {result.exit_code}"
            if result.stderr.strip():
                said += f": {result.stderr.decode(errors='replace').strip()[-300:]}"
        if time.monotonic() >= deadline:
            return False, said
        time.sleep(0.25)


def _init_error(runtime: Runtime, name: str, *, timeout: float = 15.0) -> str | None:
    """None when PID 1 of ``name`` (started with an init) is not the command itself.

    Read again until it answers: on a loaded machine an exec right after the start
    can fail or come back empty, and that says nothing about the init. Only a
    definite answer (PID 1 is the command) or a read that never succeeds is an error.
    """
    deadline = time.monotonic() + timeout
    while True:
        pid1 = runtime.exec(name, ["cat", "/proc/1/cmdline"], timeout=20)
        argv0 = pid1.stdout.split(b"\0")[0].decode(errors="replace")
        if pid1.exit_code == 0 and argv0:
            if os.path.basename(argv0) == "sleep":
                return f"PID 1 of a container started with an init is {argv0!r}"
            return None
        if time.monotonic() >= deadline:
            said = pid1.stderr.decode(errors="replace").strip()[-200:]
            return (
                f"PID 1 of a container started with an init could not be read "
                f"(cat /proc/1/cmdline: exit {pid1.exit_code}{': ' + said if said else ''})"
            )
        time.sleep(0.25)


def probe_containers(
    runtime: Runtime,
    image: str,
    *,
    facts: Callable[[], PodmanFacts | None] = lambda: None,
    dns_timeout: float = 10.0,
) -> tuple[Check, Check]:
    """Run the init and DNS checks for real with ``image``; return (init, dns).

    Never raises for what the engine does: a failure is a check that is not ok.
    ``facts`` is asked only when something fails, to choose the fix.
    """
    engine = runtime.name
    probe = _Probe(runtime, image)
    a, b = probe.names
    init_error: str | None = None
    try:
        with contextlib.suppress(HpcboxError):
            _reap_stale_probes(runtime)
        runtime.ensure_network(probe.network, labels=probe.labels)
        try:
            probe.start(a, init=True)
        except HpcboxError as exc:
            runtime.remove(a, force=True)
            # Only an init failure if the same container starts without one.
            probe.start(a, init=False)
            init_error = f"a container does not start with an init: {exc}"
        else:
            init_error = _init_error(runtime, a)
        probe.start(b, init=init_error is None)
        resolved, answer = _resolves(runtime, a, b, timeout=dns_timeout)
        if init_error is None:
            started = time.monotonic()
            # A command that ignores SIGTERM waits the whole timeout: far above the
            # threshold, so a loaded machine is not mistaken for a missing init.
            runtime.stop(b, timeout=_PROMPT_STOP * 2.5)
            took = time.monotonic() - started
            if took > _PROMPT_STOP:
                init_error = (
                    f"a stop took {took:.1f} s: the init did not pass SIGTERM on to the command"
                )
    except HpcboxError as exc:
        # The engine cannot run a container at all (or lost one mid-way).
        detail = f"no container runs from {image}: {exc}"
        fix = start_fix(engine, facts(), str(exc))
        return (
            clusters_check(INIT_CHECK, False, detail, fix),
            clusters_check(DNS_CHECK, False, detail, fix),
        )
    finally:
        probe.close()
    cleanup = (
        f" (cleanup failed: {'; '.join(probe.cleanup_errors)})" if probe.cleanup_errors else ""
    )
    init = (
        clusters_check(INIT_CHECK, False, init_error + cleanup, init_fix(engine, facts()))
        if init_error is not None
        else clusters_check(
            INIT_CHECK, True, f"PID 1 is {engine}'s init, and a stop is prompt{cleanup}"
        )
    )
    dns = (
        clusters_check(DNS_CHECK, True, f"one container resolved another by name ({answer})")
        if resolved
        else clusters_check(
            DNS_CHECK,
            False,
            f"containers on one network do not resolve each other by name ({answer}){cleanup}",
            dns_fix(engine, facts()),
        )
    )
    return init, dns


def preflight_checks(
    runtime: Runtime, *, image: str | None = None, dns_timeout: float = 10.0
) -> list[Check]:
    """The container checks (init, DNS) on ``runtime``: for real with ``image`` (default:
    :func:`find_probe_image`); without any image, what is known without a container
    and the command that gets one."""
    known: list[PodmanFacts | None] = []

    def facts() -> PodmanFacts | None:
        if not known:
            known.append(podman_facts(runtime))
        return known[0]

    started = time.monotonic()
    try:
        image = image or find_probe_image(runtime)
    except HpcboxError as exc:
        return [
            clusters_check(name, False, f"cannot list images: {exc}", "check the engine")
            for name in (INIT_CHECK, DNS_CHECK)
        ]
    if image is None:
        known_bad = {check.name: check for check in static_checks(runtime.name, facts())}
        checks = [
            known_bad.get(name)
            or clusters_check(
                name,
                False,
                "not run: no local image to start a container from (none is pulled)",
                f"{BUILD_BASE_FIX} (bootstraps Debian, about a minute), then hpcbox doctor again",
            )
            for name in (INIT_CHECK, DNS_CHECK)
        ]
        return [replace(check, seconds=time.monotonic() - started) for check in checks]
    init, dns = probe_containers(runtime, image, facts=facts, dns_timeout=dns_timeout)
    took = time.monotonic() - started
    return [replace(init, seconds=took), replace(dns, seconds=took)]


def preflight_message(failed: Sequence[Check]) -> str:
    """One line naming each failed check with its fix (for ``cluster up``)."""
    parts = [f"{check.name}: {check.detail}; fix: {check.fix}" for check in failed]
    return (
        "this machine cannot run a cluster yet: "
        + " | ".join(parts)
        + " (`hpcbox doctor` checks everything)"
    )


def container_checks(settings: Settings, *, dns_timeout: float) -> list[Check]:
    """Engine, init and DNS; stops hpcbox's Podman service again if it started it."""
    from hpcbox.infra.runtimes import connect_runtime

    state_dir = settings.home / "runtime"
    service = PodmanService(state_dir)
    was_running = service.running_pid() is not None
    started = time.monotonic()
    runtime: Runtime | None = None
    try:
        runtime = connect_runtime("auto", state_dir=state_dir)
        runtime.ping()
    except HpcboxError as exc:
        fix = str(exc).split("; ", 1)[-1] if "install" in str(exc) else "start the engine"
        took = time.monotonic() - started
        return [
            replace(clusters_check(ENGINE_CHECK, False, str(exc), fix), seconds=took),
            clusters_check(INIT_CHECK, False, "not run: no container engine", fix),
            clusters_check(DNS_CHECK, False, "not run: no container engine", fix),
        ]
    try:
        where = runtime.url if isinstance(runtime, EngineRuntime) else runtime.name
        own = isinstance(runtime, EngineRuntime) and runtime.containers_conf is not None
        detail = f"{runtime.name} at {where}" + (" (hpcbox's own Podman service)" if own else "")
        engine = replace(
            clusters_check(ENGINE_CHECK, True, detail), seconds=time.monotonic() - started
        )
        return [engine, *preflight_checks(runtime, dns_timeout=dns_timeout)]
    finally:
        if isinstance(runtime, EngineRuntime):
            runtime.close()
            # Leave the machine as found: a service this doctor started is stopped.
            if runtime.containers_conf is not None and not was_running:
                with contextlib.suppress(HpcboxError, OSError):
                    service.stop()
