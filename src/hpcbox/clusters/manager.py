"""``ClusterManager``: bring a ClusterSpec up on a container runtime, scale it, take
it down — the engine behind ``hpcbox cluster``.

Bring-up order (each step waits for the previous one to answer): shared home
volume -> MariaDB -> slurmdbd (with accounting) -> slurmctld (ready when
``scontrol ping`` answers; with ``jupyter.hub`` JupyterHub beside it) -> slurmd
workers -> all nodes idle. Kind ``jupyter`` (JupyterHub + ipyparallel) is
brought up and scaled by :mod:`.jupyter`. Secrets are
handed to nodes as files at container creation (see :mod:`.keys`); the
configuration comes from the pure renderers in :mod:`hpcbox.clusters.render`.

Before anything is created, ``up`` runs the container preflight of
``hpcbox doctor`` (a container starts with an init; two containers on one
network resolve each other by name) and fails within seconds with the fix.

A failing step raises :class:`ClusterError` naming the component, with the tail
of its log, and the cluster is recorded as FAILED; so is an up interrupted by
Ctrl-C. Its containers are left for inspection: ``down`` removes them, and so
does the next ``up`` of that name, which then tries again. A process that
brings a cluster up (or scales it) holds a lock file of that cluster under the
state dir, so an up left CREATING by a process that is gone (killed, machine
restarted) is told from one still running, and retried too. The lock is per
machine: bring a cluster up from one machine at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncssh

from hpcbox.clusters import jupyter
from hpcbox.clusters.images import ImageBuilder, image_tag
from hpcbox.clusters.keys import ClusterKeys, load_or_create_keys
from hpcbox.clusters.naming import (
    LABEL_NODE,
    LABEL_ROLE,
    container_name,
    labels,
    network_name,
)
from hpcbox.clusters.render.accounts import (
    Account,
    accounts,
    authorized_keys,
    group_lines,
    passwd_lines,
    sacctmgr_commands,
    shadow_lines,
)
from hpcbox.clusters.render.jupyter import front_host
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.render.slurm import (
    CONTROLLER_HOST,
    DB_HOST,
    DBD_HOST,
    render_cgroup_conf,
    render_slurm_conf,
    render_slurmdbd_conf,
    slurmd_conf_arg,
    worker_name,
)
from hpcbox.clusters.spec import (
    ClusterKind,
    ClusterSpec,
    ClusterState,
    MpiFlavour,
    UpAction,
    up_action,
)
from hpcbox.clusters.store import ClusterRecord, ClusterStore
from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    UnavailableError,
)
from hpcbox.core.progress import Reporter, as_reporter
from hpcbox.core.settings import Settings
from hpcbox.infra.runtimes import (
    ContainerSpec,
    ExecResult,
    FileEntry,
    Mount,
    PortBinding,
    Runtime,
    connect_runtime,
)
from hpcbox.jobs.targets import register_cluster_target, unregister_cluster_target

__all__ = ["ClusterError", "ClusterManager", "ClusterStatus", "NodeState"]

Progress = Callable[[str], None]
_NODE_SCRIPT = "/usr/local/sbin/hpcbox-node"
_HOSTFILE = "/etc/hpcbox/hostfile"
CLUSTER_MTU = 65520


class ClusterError(PermanentError):
    """A component of a cluster failed; the message names it and shows its log tail."""


@dataclass(frozen=True)
class NodeState:
    name: str
    role: str
    container: str
    container_status: str
    slurm_state: str | None
    partitions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "container": self.container,
            "container_status": self.container_status,
            "slurm_state": self.slurm_state,
            "partitions": list(self.partitions),
        }


@dataclass(frozen=True)
class ClusterStatus:
    record: ClusterRecord
    nodes: tuple[NodeState, ...]
    partitions: tuple[dict[str, Any], ...]
    ssh: dict[str, Any]
    #: Where JupyterHub is published (kind jupyter, or a SLURM login node's hub).
    hub_url: str | None = None
    #: ipyparallel engines the controller counts (kind jupyter, when it answers).
    engines: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.record.to_json()
        data.update(
            mpi=self.record.spec.mpi.value,
            accounting=self.record.spec.accounting,
            users=[u.name for u in self.record.spec.users],
            nodes=[node.to_json() for node in self.nodes],
            partitions=list(self.partitions),
            ssh=self.ssh,
        )
        if self.record.spec.has_jupyterhub:
            data["hub_url"] = self.hub_url
        if self.record.spec.kind is ClusterKind.JUPYTER:
            data["engines"] = self.engines
        return data


def _node_script() -> bytes:
    return resources.files("hpcbox.clusters").joinpath("hpcbox-node.sh").read_bytes()


def node_script_file() -> FileEntry:
    """The nodes' start-up script, as the file every container gets."""
    return FileEntry(_NODE_SCRIPT, _node_script(), mode=0o755)


def _text(result: ExecResult) -> str:
    return result.stdout.decode("utf-8", "replace")


class ClusterManager:
    """Clusters on a container runtime. Methods raise :class:`HpcboxError` subclasses."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ClusterStore,
        runtime: Runtime | None = None,
        progress: Reporter | Progress | None = None,
        ready_timeout: float = 180.0,
        host_ca: str | None = None,
        preflight: bool = True,
    ) -> None:
        """``host_ca``: a CA bundle that image builds trust (for pip and npm behind a
        TLS-intercepting proxy); see :class:`~hpcbox.clusters.images.ImageBuilder`.
        ``preflight``: run the container checks before each ``up``. ``progress``:
        a :class:`~hpcbox.core.progress.Reporter` (a bring-up is one step, and what
        it waits for is shown) or a plain line callable."""
        self.settings = settings
        self.store = store
        self._runtime = runtime
        self.reporter: Reporter = as_reporter(progress)
        self.progress: Progress = self.reporter
        self.ready_timeout = ready_timeout
        self.host_ca = host_ca
        self.preflight = preflight

    # -- plumbing -------------------------------------------------------------------

    def runtime(self, preference: str = "auto") -> Runtime:
        if self._runtime is None:
            self._runtime = connect_runtime(
                preference,  # type: ignore[arg-type]
                state_dir=self.settings.home / "runtime",
            )
        return self._runtime

    def _exec(
        self,
        cluster: str,
        host: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = 120,
    ) -> ExecResult:
        result = self.runtime().exec(
            container_name(cluster, host), list(argv), user=user, stdin=stdin, timeout=timeout
        )
        if check and result.exit_code != 0:
            err = result.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise ClusterError(f"{argv[0]} on {host} failed ({result.exit_code}): {err}")
        return result

    def _log_tail(self, cluster: str, host: str, lines: int = 20) -> str:
        try:
            return self.runtime().logs(container_name(cluster, host), tail=lines).strip()
        except HpcboxError as exc:
            return f"(no log: {exc})"

    def _wait(
        self, cluster: str, host: str, what: str, check: Callable[[], bool], timeout: float
    ) -> None:
        self.reporter.waiting(f"{what} on {host}")
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            try:
                if check():
                    return
            except HpcboxError as exc:
                # Not up yet; keep trying until the deadline, and say why if it passes.
                last_error = f" (last check: {exc})"
            info = self.runtime().inspect(container_name(cluster, host))
            if info is None or info.status in ("exited", "dead", "stopped"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        raise ClusterError(
            f"{what} on {host} did not come up within {int(timeout)} s{last_error}; "
            f"last log lines:\n{self._log_tail(cluster, host)}"
        )

    # -- files handed to nodes ------------------------------------------------------

    def _common_files(
        self, spec: ClusterSpec, keys: ClusterKeys, workers: Sequence[str]
    ) -> list[FileEntry]:
        accts = accounts(spec)
        host_pub = keys.host_public_key
        node_patterns = f"{CONTROLLER_HOST},{DBD_HOST},{spec_worker_glob()}"
        return [
            node_script_file(),
            FileEntry("/etc/munge/munge.key", keys.munge_key, mode=0o400),
            FileEntry("/etc/slurm/slurm.conf", render_slurm_conf(spec).encode()),
            FileEntry("/etc/slurm/cgroup.conf", render_cgroup_conf(spec).encode()),
            FileEntry("/etc/ssh/ssh_host_ed25519_key", keys.host_key.encode(), mode=0o600),
            FileEntry("/etc/ssh/ssh_host_ed25519_key.pub", (host_pub + "\n").encode()),
            FileEntry("/etc/ssh/ssh_known_hosts", f"{node_patterns} {host_pub}\n".encode()),
            FileEntry(
                "/root/.ssh/authorized_keys", (keys.admin_public_key + "\n").encode(), mode=0o600
            ),
            FileEntry("/etc/hpcbox/accounts/passwd", passwd_lines(accts).encode()),
            FileEntry("/etc/hpcbox/accounts/group", group_lines(accts).encode()),
            FileEntry("/etc/hpcbox/accounts/shadow", shadow_lines(accts).encode(), mode=0o600),
            FileEntry(_HOSTFILE, self._hostfile(spec, workers).encode()),
        ]

    @staticmethod
    def _hostfile(spec: ClusterSpec, workers: Sequence[str]) -> str:
        return render_hostfile(workers, slots=spec.workers.cpus, flavour=spec.mpi)

    def _container(
        self,
        spec: ClusterSpec,
        host: str,
        role: str,
        image_role: str,
        files: list[FileEntry],
        *,
        env: dict[str, str] | None = None,
        mounts: tuple[Mount, ...] = (),
        ports: tuple[PortBinding, ...] = (),
        limits: bool = False,
        script_role: str | None = None,
    ) -> None:
        """Create and start node ``host``, labelled ``role``; its start-up script
        runs ``script_role`` (default: ``role``)."""
        rt = self.runtime()
        name = container_name(spec.name, host)
        if rt.inspect(name) is not None:
            rt.remove(name, force=True)
        rt.create(
            ContainerSpec(
                name=name,
                image=image_tag(image_role),
                hostname=host,
                network=network_name(spec.name),
                aliases=(host,),
                command=(_NODE_SCRIPT, script_role or role),
                env=env or {},
                mounts=mounts,
                ports=ports,
                labels=labels(spec.name, role, host),
                cpus=float(spec.workers.cpus) if limits else None,
                # Headroom above what slurmd offers, for the node's own daemons.
                memory_bytes=spec.workers.memory + 256 * 1024**2 if limits else None,
            )
        )
        rt.put_files(name, files)
        rt.start(name)

    def _home_mount(self, spec: ClusterSpec) -> Mount:
        return Mount(source=spec.home_volume, target="/home")

    # -- bring-up -------------------------------------------------------------------

    def up(self, spec: ClusterSpec, *, replace: bool = False) -> ClusterRecord:
        """Bring ``spec`` up and return its record once every node is idle.

        A cluster of that name that FAILED, or whose up was interrupted, is
        cleaned up (containers and network; homes and keys are kept) and brought
        up again. A RUNNING one is refused (ConflictError) unless ``replace``,
        which takes it down first. UnavailableError, before anything is created
        or removed, when the container preflight fails.
        """
        with self._cluster_lock(spec.name):
            existing = self.store.find(spec.name)
            action = up_action(existing.state if existing else None, replace=replace)
            if action is UpAction.REFUSE:
                state = existing.state if existing else "?"
                raise ConflictError(
                    f"cluster {spec.name!r} is already up ({state}): take it down first "
                    f"(`hpcbox cluster down {spec.name}`), or bring it up again with --replace"
                )
            rt = self.runtime(spec.runtime.value)
            builder = self._image_builder(rt)
            self._preflight(rt, builder)
            if existing is not None and action is not UpAction.CREATE:
                why = "replacing it" if action is UpAction.REPLACE else "removing what it left"
                self.progress(f"cluster {spec.name} is {existing.state}: {why}")
                self._remove_nodes(rt, spec.name)
            self.store.create(spec, runtime=rt.name, replace=action is not UpAction.CREATE)
            try:
                with self.reporter.step(
                    f"bringing up cluster {spec.name}", waiting_for="the controller"
                ):
                    self._up(spec, rt, builder)
            except HpcboxError as exc:
                self._failed(spec.name, str(exc))
                raise
            except Exception as exc:
                self._failed(spec.name, f"internal error: {exc}")
                raise
            except BaseException as exc:  # Ctrl-C, or the process told to exit
                what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
                self._failed(spec.name, f"interrupted ({what}) while coming up")
                raise
        return self.store.get(spec.name)

    def _failed(self, name: str, message: str) -> None:
        hint = (
            f"; `hpcbox cluster up` again cleans up and retries, "
            f"`hpcbox cluster down {name}` removes it"
        )
        self.store.update(
            name, state=ClusterState.FAILED.value, message=message[: 4000 - len(hint)] + hint
        )

    def _image_builder(self, rt: Runtime) -> ImageBuilder:
        return ImageBuilder(
            rt,
            state_dir=self.settings.home / "images",
            progress=self.progress,
            host_ca=self.host_ca,
        )

    def _preflight(self, rt: Runtime, builder: ImageBuilder) -> None:
        """The container checks of ``hpcbox doctor``; UnavailableError with the fix.

        What is certain without a container (Podman on CNI, say) fails before
        any image is built; then the base image (built now if missing, as the
        bring-up needs it anyway) runs the real checks, in seconds.
        """
        if not self.preflight:
            return
        from hpcbox.clusters.preflight import (
            podman_facts,
            preflight_checks,
            preflight_message,
            static_checks,
        )

        started = time.monotonic()
        failed = static_checks(rt.name, podman_facts(rt))
        if failed:
            raise UnavailableError(preflight_message(failed))
        base = image_tag("base")
        if not rt.image_exists(base):
            builder.build(["base"])
        self.progress("checking the container engine: an init, names resolved between containers")
        failed = [check for check in preflight_checks(rt, image=base) if not check.ok]
        if failed:
            raise UnavailableError(preflight_message(failed))
        self.progress(f"container engine ok ({time.monotonic() - started:.1f} s)")

    @contextlib.contextmanager
    def _cluster_lock(self, name: str) -> Iterator[None]:
        """Held while this process brings cluster ``name`` up or scales it.

        The kernel drops a flock when its process ends, however it ends, so a
        lock nobody holds means no live process is working on the cluster.
        ConflictError (naming the holder's pid) when another process holds it.
        """
        path = self.settings.home / "clusters" / ".locks" / f"{name}.lock"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise ConflictError(
                    f"cluster {name!r} is being brought up or scaled by another hpcbox "
                    f"process{pid}; wait for it, or stop it and run the command again"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _up(self, spec: ClusterSpec, rt: Runtime, builder: ImageBuilder) -> None:
        started = time.monotonic()
        keys = load_or_create_keys(self.settings.home, spec.name)
        if spec.kind is ClusterKind.JUPYTER:
            roles = ["base", "jupyter"]
        else:
            roles = ["base", "slurm-controller", "slurm-worker"]
        if spec.accounting and spec.kind is not ClusterKind.JUPYTER:
            roles += ["slurmdbd", "mariadb"]
        if spec.jupyter.hub:
            roles.append("jupyter")
        missing = builder.missing(roles)
        if missing:
            self.progress(f"building images: {', '.join(missing)}")
            builder.build(roles)
        cluster_labels = labels(spec.name)
        # Jumbo frames, as on an HPC interconnect: MPI traffic between nodes stays on
        # this machine, and 64 KiB frames (loopback's own MTU) cut per-packet costs
        # that a 1500-byte bridge pays on every message.
        rt.ensure_network(network_name(spec.name), labels=cluster_labels, mtu=CLUSTER_MTU)
        rt.ensure_volume(spec.home_volume, labels=cluster_labels)
        if spec.kind is ClusterKind.JUPYTER:
            jupyter.up_jupyter(self, spec, keys)
            self.store.update(spec.name, state="RUNNING", ssh_port=None, message=None)
            self.progress(
                f"cluster {spec.name} is up: JupyterHub at {jupyter.hub_url(rt, spec)}, "
                f"{spec.workers.count * spec.engines_per_worker} engines "
                f"({time.monotonic() - started:.1f} s)"
            )
            return
        workers = [worker_name(i) for i in range(1, spec.workers.count + 1)]
        common = self._common_files(spec, keys, workers)
        if spec.accounting:
            self._start_accounting(spec, keys, common)
        self.progress("starting slurmctld on controller")
        ports = [PortBinding(container_port=22, host_port=spec.login.ssh_port)]
        if spec.jupyter.hub:
            ports.append(jupyter.hub_port_binding(spec))
        self._container(
            spec,
            CONTROLLER_HOST,
            "controller",
            "jupyter" if spec.jupyter.hub else "slurm-controller",
            [*common, jupyter.hub_file(spec)] if spec.jupyter.hub else common,
            env={"HPCBOX_JUPYTERHUB": "1"} if spec.jupyter.hub else None,
            mounts=(self._home_mount(spec),),
            ports=tuple(ports),
        )
        self._wait(
            spec.name,
            CONTROLLER_HOST,
            "slurmctld (scontrol ping)",
            lambda: "UP" in _text(self._exec(spec.name, CONTROLLER_HOST, ["scontrol", "ping"])),
            self.ready_timeout,
        )
        if spec.accounting:
            self.progress("registering the cluster and its users with slurmdbd")
            for argv in sacctmgr_commands(spec, cluster=spec.name):
                self._sacctmgr(spec.name, argv)
        self._make_homes(spec, keys)
        if spec.jupyter.hub:
            jupyter.wait_for_hub(self, spec)
        for host in workers:
            self._start_worker(spec, host, common)
        self._wait_idle(spec.name, workers)
        self._wait_names(spec.name, workers, [CONTROLLER_HOST, *workers])
        info = rt.inspect(container_name(spec.name, CONTROLLER_HOST))
        port = info.ports.get(22) if info else None
        self.store.update(spec.name, state="RUNNING", ssh_port=port, message=None)
        if port is not None:
            self._register_target(spec, keys, port)
        self.progress(
            f"cluster {spec.name} is up: {len(workers)} workers idle "
            f"({time.monotonic() - started:.1f} s)"
        )

    def _sacctmgr(self, cluster: str, argv: Sequence[str]) -> None:
        """Run one ``sacctmgr -i add`` command; "already there" counts as done
        (slurmctld registers its cluster itself, and a cluster may come up again)."""
        deadline = time.monotonic() + 60
        while True:
            result = self._exec(cluster, CONTROLLER_HOST, argv, check=False)
            said = (result.stdout + result.stderr).decode("utf-8", "replace")
            if result.exit_code == 0 or "Nothing new added" in said or "already exist" in said:
                return
            # slurmdbd may not have registered slurmctld's connection yet.
            if time.monotonic() > deadline:
                raise ClusterError(f"{' '.join(argv[:4])} failed: {said.strip()[-2000:]}")
            time.sleep(1)

    def _register_target(self, spec: ClusterSpec, keys: ClusterKeys, port: int) -> None:
        """Make the cluster a job target named after it, so that
        ``hpcbox job submit --cluster NAME`` works at once. Jobs go in as the first
        spec user (a regular user, as on any site), or root when there is none; the
        admin key is accepted for every user and the host key is pinned."""
        register_cluster_target(
            self.store.engine,
            spec.name,
            host="127.0.0.1",
            port=port,
            user=spec.users[0].name if spec.users else "root",
            key_path=str(keys.admin_key_path),
            host_key=keys.host_public_key,
            # root's own home is not on the shared volume; its job files must be.
            job_root=None if spec.users else "/home/root",
        )

    def _start_accounting(
        self, spec: ClusterSpec, keys: ClusterKeys, common: list[FileEntry]
    ) -> None:
        rt = self.runtime()
        db_volume = f"hpcbox-{spec.name}-db"
        rt.ensure_volume(db_volume, labels=labels(spec.name))
        self.progress("starting mariadb")
        self._container(
            spec,
            DB_HOST,
            "mariadb",
            "mariadb",
            common[:1],
            mounts=(Mount(source=db_volume, target="/var/lib/mysql"),),
        )
        self._wait(
            spec.name,
            DB_HOST,
            "mariadb (mariadb-admin ping)",
            lambda: self._exec(spec.name, DB_HOST, ["mariadb-admin", "ping"]).exit_code == 0,
            self.ready_timeout,
        )
        # The password is ours (URL-safe base64), so it needs no SQL escaping; it
        # goes through stdin, not argv, so that `ps` in the container never shows it.
        password = keys.db_password
        sql = (
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db;\n"
            f"CREATE USER IF NOT EXISTS 'slurm'@'%' IDENTIFIED BY '{password}';\n"
            f"ALTER USER 'slurm'@'%' IDENTIFIED BY '{password}';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'%';\nFLUSH PRIVILEGES;\n"
        )
        self._exec(spec.name, DB_HOST, ["mariadb"], stdin=sql.encode())
        self.progress("starting slurmdbd")
        dbd_files = [
            *common,
            FileEntry(
                "/etc/slurm/slurmdbd.conf",
                render_slurmdbd_conf(spec, db_password=password).encode(),
                mode=0o600,
            ),
        ]
        self._container(spec, DBD_HOST, "slurmdbd", "slurmdbd", dbd_files)
        self._wait(
            spec.name,
            DBD_HOST,
            "slurmdbd (port 6819)",
            lambda: (
                self._exec(
                    spec.name, DBD_HOST, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6819"]
                ).exit_code
                == 0
            ),
            self.ready_timeout,
        )

    def _start_worker(self, spec: ClusterSpec, host: str, common: list[FileEntry]) -> None:
        self.progress(f"starting slurmd on {host}")
        self._container(
            spec,
            host,
            "worker",
            "slurm-worker",
            common,
            env={"HPCBOX_SLURMD_CONF": slurmd_conf_arg(spec)},
            mounts=(self._home_mount(spec),),
            limits=True,
        )

    def _node_states(self, cluster: str) -> dict[str, tuple[str, tuple[str, ...]]]:
        out = _text(self._exec(cluster, CONTROLLER_HOST, ["sinfo", "-h", "-N", "-o", "%N|%T|%P"]))
        states: dict[str, tuple[str, tuple[str, ...]]] = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 3:
                continue
            node, state, partition = parts
            prev = states.get(node, (state, ()))
            states[node] = (state, (*prev[1], partition.rstrip("*")))
        return states

    def _wait_idle(self, cluster: str, workers: Sequence[str]) -> None:
        if not workers:
            return
        self.progress(f"waiting for {', '.join(workers)} to be idle")

        def all_idle() -> bool:
            states = self._node_states(cluster)
            return all(states.get(w, ("",))[0].startswith("idle") for w in workers)

        self._wait(cluster, CONTROLLER_HOST, "slurmd registration", all_idle, self.ready_timeout)

    def _wait_names(self, cluster: str, hosts: Sequence[str], names: Sequence[str]) -> None:
        """Wait until each of ``hosts`` resolves every one of ``names``.

        The engine's DNS (aardvark-dns on Podman) may answer for a container only
        some seconds after it started: until then a lookup times out, and an MPI
        launcher run on a fresh cluster stalled for minutes (MPICH's ssh launches
        failing on lookups and retried ten times; seen in CI, and in about 1 run in
        5 of `mpirun -f hostfile` started right after bring-up here). A cluster is
        up only once every worker can reach the others by name.
        """
        argv = ["timeout", "5", "getent", "hosts", *names]

        def resolves(host: str) -> bool:
            return self._exec(cluster, host, argv, check=False).exit_code == 0

        for host in hosts:
            self._wait(
                cluster,
                host,
                f"name resolution of {', '.join(names)}",
                functools.partial(resolves, host),
                self.ready_timeout,
            )

    def _make_homes(self, spec: ClusterSpec, keys: ClusterKeys) -> None:
        """Create each user's home on the shared volume (once: kept across down/up),
        with their keys plus a cluster-internal key pair for SSH between nodes."""
        front = front_host(spec)
        files: list[FileEntry] = []
        for account in accounts(spec):
            home = account.home
            exists = self._exec(
                spec.name, front, ["test", "-e", f"{home}/.ssh/id_ed25519"], check=False
            )
            inner_pub = self._user_key(spec, account, files, create=exists.exit_code != 0)
            keys_text = authorized_keys(account) + inner_pub + keys.admin_public_key + "\n"
            self._exec(
                spec.name,
                front,
                [
                    "install",
                    "-d",
                    "-m",
                    "0700",
                    "-o",
                    str(account.uid),
                    "-g",
                    str(account.gid),
                    home,
                    f"{home}/.ssh",
                ],
            )
            files.append(
                FileEntry(
                    f"{home}/.ssh/authorized_keys",
                    keys_text.encode(),
                    mode=0o600,
                    uid=account.uid,
                    gid=account.gid,
                )
            )
        if files:
            self.runtime().put_files(container_name(spec.name, front), files)

    def _user_key(
        self, spec: ClusterSpec, account: Account, files: list[FileEntry], *, create: bool
    ) -> str:
        home = account.home
        if not create:
            out = self._exec(spec.name, front_host(spec), ["cat", f"{home}/.ssh/id_ed25519.pub"])
            return _text(out).strip() + "\n"
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{account.name}@{spec.name}")
        pub = key.export_public_key("openssh").decode()
        files.append(
            FileEntry(
                f"{home}/.ssh/id_ed25519",
                key.export_private_key("openssh"),
                mode=0o600,
                uid=account.uid,
                gid=account.gid,
            )
        )
        files.append(
            FileEntry(
                f"{home}/.ssh/id_ed25519.pub",
                pub.encode(),
                mode=0o644,
                uid=account.uid,
                gid=account.gid,
            )
        )
        return pub

    # -- inspection -----------------------------------------------------------------

    def list_clusters(self) -> list[ClusterRecord]:
        return self.store.list_clusters()

    def _worker_hosts(self, cluster: str) -> list[str]:
        found = self.runtime().list(labels=labels(cluster, "worker"))
        hosts = [c.labels.get(LABEL_NODE, "") for c in found]
        return sorted((h for h in hosts if h), key=lambda h: int(h.removeprefix("worker") or 0))

    def status(self, name: str) -> ClusterStatus:
        record = self.store.get(name)
        keys = load_or_create_keys(self.settings.home, name)
        nodes: list[NodeState] = []
        partitions: list[dict[str, Any]] = []
        slurm: dict[str, tuple[str, tuple[str, ...]]] = {}
        is_slurm = record.spec.kind is not ClusterKind.JUPYTER
        if is_slurm and record.state in ("RUNNING", "SCALING"):
            try:
                slurm = self._node_states(name)
                out = _text(
                    self._exec(name, CONTROLLER_HOST, ["sinfo", "-h", "-o", "%P|%a|%l|%D|%N"])
                )
                for line in out.splitlines():
                    part, avail, limit, count, nodelist = line.strip().split("|")
                    partitions.append(
                        {
                            "name": part.rstrip("*"),
                            "default": part.endswith("*"),
                            "available": avail,
                            "time_limit": limit,
                            "nodes": int(count),
                            "nodelist": nodelist,
                        }
                    )
            except HpcboxError:
                slurm = {}
        for container in self.runtime().list(labels=labels(name)):
            host = container.labels.get(LABEL_NODE, container.name)
            state, parts = slurm.get(host, (None, ()))
            nodes.append(
                NodeState(
                    host,
                    container.labels.get(LABEL_ROLE, ""),
                    container.name,
                    container.status,
                    state,
                    parts,
                )
            )
        nodes.sort(key=lambda n: (n.role != "controller", n.name))
        ssh = {
            "host": "127.0.0.1",
            "port": record.ssh_port,
            "user": "root",
            "admin_key": str(keys.admin_key_path),
            "known_hosts": str(keys.known_hosts_path),
            "host_key": keys.host_public_key,
        }
        engines = None
        if not is_slurm and record.state in ("RUNNING", "SCALING"):
            with contextlib.suppress(HpcboxError, ValueError, KeyError):
                engines = jupyter.engine_count(self, name)
        return ClusterStatus(
            record,
            tuple(nodes),
            tuple(partitions),
            ssh,
            hub_url=jupyter.hub_url(self.runtime(), record.spec),
            engines=engines,
        )

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        node: str | None = None,
        user: str | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` (no shell) on a node (default: the controller/login node, or
        the hub of kind jupyter)."""
        record = self.store.get(name)
        if not argv:
            raise InvalidInputError("give a command to run", field="CMD")
        host = node or front_host(record.spec)
        if self.runtime().inspect(container_name(name, host)) is None:
            raise NotFoundError(f"cluster {record.name} has no node {host!r}")
        return self.runtime().exec(
            container_name(name, host), list(argv), user=user, stdin=stdin, timeout=None
        )

    def ssh_argv(self, name: str, *, user: str | None = None) -> list[str]:
        """The ``ssh`` command line that logs in to the cluster's login node."""
        record = self.store.get(name)
        if record.ssh_port is None:
            raise PermanentError(f"cluster {name} has no SSH endpoint (state {record.state})")
        keys = load_or_create_keys(self.settings.home, name)
        return [
            "ssh",
            "-p",
            str(record.ssh_port),
            "-i",
            str(keys.admin_key_path),
            "-o",
            f"UserKnownHostsFile={keys.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            f"{user or 'root'}@127.0.0.1",
        ]

    # -- scaling --------------------------------------------------------------------

    def scale(
        self, name: str, workers: int, *, force: bool = False, timeout: float | None = None
    ) -> ClusterRecord:
        """Add or remove workers while jobs run. Removing drains the nodes and waits
        for their jobs to finish (or kills them with ``force``) before removing them."""
        if not 0 <= workers <= 64:
            raise InvalidInputError("must be between 0 and 64", field="--workers")
        with self._cluster_lock(name):
            return self._scale(name, workers, force=force, timeout=timeout)

    def _scale(
        self, name: str, workers: int, *, force: bool, timeout: float | None
    ) -> ClusterRecord:
        record = self.store.get(name)
        if record.state != ClusterState.RUNNING:
            raise PermanentError(f"cluster {name} is {record.state}, not RUNNING")
        spec = record.spec
        current = self._worker_hosts(name)
        self.store.update(name, state="SCALING")
        try:
            if spec.kind is ClusterKind.JUPYTER:
                jupyter.scale_engines(self, spec, current, workers)
            elif workers > len(current):
                next_index = max((int(h.removeprefix("worker")) for h in current), default=0)
                new = [worker_name(next_index + i) for i in range(1, workers - len(current) + 1)]
                final = current + new
                keys = load_or_create_keys(self.settings.home, name)
                common = self._common_files(spec, keys, final)
                for host in new:
                    self._start_worker(spec, host, common)
                self._wait_idle(name, new)
                self._wait_names(name, final, [CONTROLLER_HOST, *final])
            else:
                remove = current[workers:]
                final = current[:workers]
                for host in remove:
                    self._drain(name, host, force=force, timeout=timeout)
            if spec.kind is not ClusterKind.JUPYTER:
                self._update_hostfile(spec, final)
        finally:
            self.store.update(
                name,
                state="RUNNING",
                workers=len(self._worker_hosts(name)),
                spec=spec.model_copy(
                    update={
                        "workers": spec.workers.model_copy(
                            update={"count": len(self._worker_hosts(name))}
                        )
                    }
                ),
            )
        return self.store.get(name)

    def _drain(self, name: str, host: str, *, force: bool, timeout: float | None) -> None:
        self.progress(f"draining {host}")
        self._exec(
            name,
            CONTROLLER_HOST,
            ["scontrol", "update", f"NodeName={host}", "State=DRAIN", "Reason=hpcbox-scale-down"],
        )
        if force:
            self._exec(name, CONTROLLER_HOST, ["scancel", "-w", host], check=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = _text(
                self._exec(name, CONTROLLER_HOST, ["squeue", "-h", "-w", host, "-o", "%i"])
            )
            if not jobs.strip():
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(
                    f"{host} still runs jobs {jobs.split()} after {timeout} s; "
                    "use --force to cancel them"
                )
            time.sleep(1)
        self.progress(f"removing {host}")
        self.runtime().remove(container_name(name, host), force=True)
        self._exec(name, CONTROLLER_HOST, ["scontrol", "delete", f"NodeName={host}"], check=False)

    def _update_hostfile(self, spec: ClusterSpec, workers: Sequence[str]) -> None:
        data = self._hostfile(spec, workers).encode()
        for host in [CONTROLLER_HOST, *workers]:
            self.runtime().put_files(container_name(spec.name, host), [FileEntry(_HOSTFILE, data)])

    # -- teardown -------------------------------------------------------------------

    def down(self, name: str, *, purge: bool = False) -> None:
        """Remove the cluster's containers and network; homes (and accounting data,
        and the cluster's keys) are kept unless ``purge``."""
        record = self.store.get(name)
        rt = self.runtime(record.runtime)
        self._remove_nodes(rt, name)
        if purge:
            for volume in (record.spec.home_volume, f"hpcbox-{name}-db"):
                if rt.volume_exists(volume):
                    rt.remove_volume(volume)
            keys_dir = self.settings.home / "clusters" / name
            for path in sorted(keys_dir.glob("*"), reverse=True):
                path.unlink()
            if keys_dir.exists():
                keys_dir.rmdir()
            self.store.delete(name)
        else:
            self.store.update(name, state=ClusterState.DOWN.value, ssh_port=None)

    def _remove_nodes(self, rt: Runtime, name: str) -> None:
        """Remove the cluster's containers, its network and its job target; volumes
        (homes, accounting data) and keys stay."""
        for container in rt.list(labels=labels(name)):
            self.progress(f"removing {container.name}")
            rt.remove(container.name, force=True)
        rt.remove_network(network_name(name))
        # Its SSH endpoint is gone (a new `up` publishes a new port and re-registers).
        unregister_cluster_target(self.store.engine, name)


def spec_worker_glob() -> str:
    return "worker*"


def default_mpi_compiler(flavour: MpiFlavour) -> str:
    return "mpicc" if flavour is MpiFlavour.OPENMPI else "mpicc.mpich"


def keys_dir(settings: Settings, name: str) -> Path:
    return settings.home / "clusters" / name
