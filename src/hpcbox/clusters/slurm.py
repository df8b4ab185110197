"""SLURM on a container runtime: the ``slurm`` cluster kind (and ``mpi``, the same nodes).

Bring-up order (each step waits for the previous one to answer): MariaDB ->
slurmdbd (with accounting) -> slurmctld (ready when ``scontrol ping`` answers;
with ``jupyter.hub`` JupyterHub beside it) -> the users' associations and homes ->
slurmd workers -> all nodes idle and every worker resolving the others by name.
Workers are dynamic SLURM nodes: scaling up starts more, scaling down drains
them (waiting for their jobs, or cancelling them with ``force``) and removes them;
the MPI hostfile follows. The configuration comes from the pure renderers in
:mod:`hpcbox.clusters.render`; secrets are handed to nodes as files at creation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hpcbox.clusters import jupyter
from hpcbox.clusters.homes import make_homes
from hpcbox.clusters.keys import ClusterKeys
from hpcbox.clusters.kind import KindStatus, Up
from hpcbox.clusters.nodes import (
    ClusterError,
    NodeLimits,
    Nodes,
    home_mount,
    node_script_file,
    output,
)
from hpcbox.clusters.render.accounts import (
    accounts,
    group_lines,
    passwd_lines,
    sacctmgr_commands,
    shadow_lines,
)
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
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.clusters.status import PARTITIONS_ARGV, parse_partitions
from hpcbox.infra.runtimes import FileEntry, Mount, PortBinding

__all__ = ["HOSTFILE", "SlurmKind", "db_volume", "slurm_files"]

#: The MPI hostfile every node gets (the workers, with their slots).
HOSTFILE = "/etc/hpcbox/hostfile"
_WORKER_GLOB = "worker*"


def db_volume(cluster: str) -> str:
    """The volume of the accounting database (kept by ``down``, like homes)."""
    return f"hpcbox-{cluster}-db"


def _hostfile(spec: ClusterSpec, workers: Sequence[str]) -> str:
    return render_hostfile(workers, slots=spec.workers.cpus, flavour=spec.mpi)


def slurm_files(spec: ClusterSpec, keys: ClusterKeys, workers: Sequence[str]) -> list[FileEntry]:
    """What every SLURM node gets: the start-up script, the munge key, slurm.conf,
    the SSH host key and known hosts, root's authorized keys, the accounts to merge
    and the MPI hostfile of ``workers``."""
    accts = accounts(spec)
    host_pub = keys.host_public_key
    node_patterns = f"{CONTROLLER_HOST},{DBD_HOST},{_WORKER_GLOB}"
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
        FileEntry(HOSTFILE, _hostfile(spec, workers).encode()),
    ]


class SlurmKind:
    """A SLURM cluster's nodes: controller (the login node), workers and, with
    accounting, slurmdbd and MariaDB."""

    def __init__(self, nodes: Nodes, keys: ClusterKeys) -> None:
        self.nodes = nodes
        self.keys = keys

    def image_roles(self, spec: ClusterSpec) -> list[str]:
        roles = ["base", "slurm-controller", "slurm-worker"]
        if spec.accounting:
            roles += ["slurmdbd", "mariadb"]
        if spec.jupyter.hub:
            roles.append("jupyter")
        return roles

    # -- bring-up -------------------------------------------------------------------

    def up(self, spec: ClusterSpec) -> Up:
        nodes, keys = self.nodes, self.keys
        workers = [worker_name(i) for i in range(1, spec.workers.count + 1)]
        common = slurm_files(spec, keys, workers)
        if spec.accounting:
            self._start_accounting(spec, keys, common)
        nodes.progress("starting slurmctld on controller")
        ports = [PortBinding(container_port=22, host_port=spec.login.ssh_port)]
        if spec.jupyter.hub:
            ports.append(jupyter.hub_port_binding(spec))
        nodes.start(
            CONTROLLER_HOST,
            "controller",
            "jupyter" if spec.jupyter.hub else "slurm-controller",
            [*common, jupyter.hub_file(spec)] if spec.jupyter.hub else common,
            env={"HPCBOX_JUPYTERHUB": "1"} if spec.jupyter.hub else None,
            mounts=(home_mount(spec),),
            ports=tuple(ports),
        )
        nodes.wait(
            CONTROLLER_HOST,
            "slurmctld (scontrol ping)",
            lambda: "UP" in output(nodes.exec(CONTROLLER_HOST, ["scontrol", "ping"])),
        )
        if spec.accounting:
            nodes.progress("registering the cluster and its users with slurmdbd")
            for argv in sacctmgr_commands(spec, cluster=spec.name):
                self._sacctmgr(argv)
        make_homes(nodes, spec, keys)
        if spec.jupyter.hub:
            jupyter.wait_for_hub(nodes, spec)
        for host in workers:
            self._start_worker(spec, host, common)
        self._wait_idle(workers)
        nodes.wait_names(workers, [CONTROLLER_HOST, *workers])
        return Up(
            ssh_port=nodes.published_port(CONTROLLER_HOST, 22),
            summary=f"{len(workers)} workers idle",
        )

    def _sacctmgr(self, argv: Sequence[str]) -> None:
        """Run one ``sacctmgr -i add`` command; "already there" counts as done
        (slurmctld registers its cluster itself, and a cluster may come up again)."""
        deadline = time.monotonic() + 60
        while True:
            result = self.nodes.exec(CONTROLLER_HOST, argv, check=False)
            said = (result.stdout + result.stderr).decode("utf-8", "replace")
            if result.exit_code == 0 or "Nothing new added" in said or "already exist" in said:
                return
            # slurmdbd may not have registered slurmctld's connection yet.
            if time.monotonic() > deadline:
                raise ClusterError(f"{' '.join(argv[:4])} failed: {said.strip()[-2000:]}")
            time.sleep(1)

    def _start_accounting(
        self, spec: ClusterSpec, keys: ClusterKeys, common: list[FileEntry]
    ) -> None:
        nodes = self.nodes
        volume = db_volume(spec.name)
        nodes.ensure_volume(volume)
        nodes.progress("starting mariadb")
        nodes.start(
            DB_HOST,
            "mariadb",
            "mariadb",
            common[:1],
            mounts=(Mount(source=volume, target="/var/lib/mysql"),),
        )
        nodes.wait(
            DB_HOST,
            "mariadb (mariadb-admin ping)",
            lambda: nodes.exec(DB_HOST, ["mariadb-admin", "ping"]).exit_code == 0,
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
        nodes.exec(DB_HOST, ["mariadb"], stdin=sql.encode())
        nodes.progress("starting slurmdbd")
        dbd_files = [
            *common,
            FileEntry(
                "/etc/slurm/slurmdbd.conf",
                render_slurmdbd_conf(spec, db_password=password).encode(),
                mode=0o600,
            ),
        ]
        nodes.start(DBD_HOST, "slurmdbd", "slurmdbd", dbd_files)
        nodes.wait(
            DBD_HOST,
            "slurmdbd (port 6819)",
            lambda: (
                nodes.exec(DBD_HOST, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6819"]).exit_code
                == 0
            ),
        )

    def _start_worker(self, spec: ClusterSpec, host: str, common: list[FileEntry]) -> None:
        self.nodes.progress(f"starting slurmd on {host}")
        self.nodes.start(
            host,
            "worker",
            "slurm-worker",
            common,
            env={"HPCBOX_SLURMD_CONF": slurmd_conf_arg(spec)},
            mounts=(home_mount(spec),),
            limits=NodeLimits.worker(spec),
        )

    def _wait_idle(self, workers: Sequence[str]) -> None:
        if not workers:
            return
        self.nodes.progress(f"waiting for {', '.join(workers)} to be idle")

        def all_idle() -> bool:
            states = self.node_states()
            return all(states.get(w, ("",))[0].startswith("idle") for w in workers)

        self.nodes.wait(CONTROLLER_HOST, "slurmd registration", all_idle)

    # -- what SLURM says ------------------------------------------------------------

    def node_states(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each node's SLURM state and partitions, by host name (``sinfo -N``)."""
        out = output(self.nodes.exec(CONTROLLER_HOST, ["sinfo", "-h", "-N", "-o", "%N|%T|%P"]))
        states: dict[str, tuple[str, tuple[str, ...]]] = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 3:
                continue
            node, state, partition = parts
            prev = states.get(node, (state, ()))
            states[node] = (state, (*prev[1], partition.rstrip("*")))
        return states

    def partitions(self) -> tuple[dict[str, Any], ...]:
        """The partitions, as ``sinfo`` shows them."""
        return parse_partitions(output(self.nodes.exec(CONTROLLER_HOST, list(PARTITIONS_ARGV))))

    def status(self, spec: ClusterSpec) -> KindStatus:
        return KindStatus(node_states=self.node_states(), partitions=self.partitions())

    # -- scaling --------------------------------------------------------------------

    def scale(
        self,
        spec: ClusterSpec,
        current: Sequence[str],
        workers: int,
        *,
        force: bool,
        timeout: float | None,
    ) -> None:
        """Start workers, or drain and remove the last ones; then update the hostfile."""
        if workers > len(current):
            next_index = max((int(h.removeprefix("worker")) for h in current), default=0)
            new = [worker_name(next_index + i) for i in range(1, workers - len(current) + 1)]
            final = [*current, *new]
            common = slurm_files(spec, self.keys, final)
            for host in new:
                self._start_worker(spec, host, common)
            self._wait_idle(new)
            self.nodes.wait_names(final, [CONTROLLER_HOST, *final])
        else:
            final = list(current[:workers])
            for host in current[workers:]:
                self._drain(host, force=force, timeout=timeout)
        self._update_hostfile(spec, final)

    def _drain(self, host: str, *, force: bool, timeout: float | None) -> None:
        nodes = self.nodes
        nodes.progress(f"draining {host}")
        nodes.exec(
            CONTROLLER_HOST,
            ["scontrol", "update", f"NodeName={host}", "State=DRAIN", "Reason=hpcbox-scale-down"],
        )
        if force:
            nodes.exec(CONTROLLER_HOST, ["scancel", "-w", host], check=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = output(nodes.exec(CONTROLLER_HOST, ["squeue", "-h", "-w", host, "-o", "%i"]))
            if not jobs.strip():
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(
                    f"{host} still runs jobs {jobs.split()} after {timeout} s; "
                    "use --force to cancel them"
                )
            time.sleep(1)
        nodes.progress(f"removing {host}")
        nodes.remove(host)
        nodes.exec(CONTROLLER_HOST, ["scontrol", "delete", f"NodeName={host}"], check=False)

    def _update_hostfile(self, spec: ClusterSpec, workers: Sequence[str]) -> None:
        data = _hostfile(spec, workers).encode()
        for host in [CONTROLLER_HOST, *workers]:
            self.nodes.put_files(host, [FileEntry(HOSTFILE, data)])
