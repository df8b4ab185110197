"""SLURM configuration files for a :class:`ClusterSpec`.

Target: Debian bookworm's SLURM 22.05 with munge, in containers on one network
where nodes resolve each other by name. Workers are *dynamic nodes*: they
register themselves with ``slurmd -Z --conf ARG`` (ARG from
:func:`slurmd_conf_arg`) and join the ``dyn`` node set that every partition
uses, so slurm.conf does not change when workers come and go — scaling needs no
``scontrol reconfigure``.

Each setting that departs from SLURM's default carries a comment in the
rendered file saying why. The rendered text is deterministic (golden-file
tested): the same spec always gives the same bytes.
"""

from __future__ import annotations

import re

from hpcbox.clusters.render.layout import (
    CONTROLLER_HOST,
    DB_HOST,
    DB_NAME,
    DB_PORT,
    DB_USER,
    DBD_HOST,
    SLURMCTLD_LOG,
    SLURMCTLD_PORT,
    SLURMCTLD_STATE_DIR,
    SLURMD_LOG,
    SLURMD_PORT,
    SLURMD_SPOOL_DIR,
    SLURMDBD_LOG,
    SLURMDBD_PORT,
    WORKER_PREFIX,
    worker_name,
)
from hpcbox.clusters.spec import ClusterSpec, MpiFlavour, PartitionSpec
from hpcbox.core.errors import InvalidInputError

__all__ = [
    "CONTROLLER_HOST",
    "DBD_HOST",
    "DB_HOST",
    "MAX_NODE_COUNT",
    "NODESET",
    "WORKER_PREFIX",
    "mpi_default",
    "real_memory_mb",
    "render_cgroup_conf",
    "render_slurm_conf",
    "render_slurmdbd_conf",
    "slurmd_conf_arg",
    "worker_name",
]

#: Node set (and node feature) that dynamic workers join; partitions use it.
NODESET = "dyn"
#: Upper bound on nodes slurmctld tracks; a spec has at most 64 workers.
MAX_NODE_COUNT = 64

_MIB = 1024**2
_HEADER = "# Rendered by hpcbox for cluster {name!r}; hpcbox rewrites this file, do not edit."
# What SLURM's config parser reads literally in a value: no whitespace, no '#'
# (starts a comment), no quotes or backslashes (quoting and escapes).
_CONF_VALUE_RE = re.compile(r'^[^\s#"\\]+$')


def real_memory_mb(spec: ClusterSpec) -> int:
    """Memory a worker offers to SLURM, in MiB (SLURM's unit), at least 1."""
    return max(1, spec.workers.memory // _MIB)


def mpi_default(flavour: MpiFlavour) -> str:
    """The ``MpiDefault`` plugin that lets a plain ``srun`` start ``flavour``'s ranks.

    OpenMPI 4.1 on Debian is built against PMIx, so ``pmix``; MPICH speaks the
    PMI-1/PMI-2 wire protocol, which SLURM's ``pmi2`` plugin serves.
    """
    return "pmix" if flavour is MpiFlavour.OPENMPI else "pmi2"


def slurmd_conf_arg(spec: ClusterSpec) -> str:
    """The value for ``slurmd -Z --conf VALUE`` on every worker.

    It is one argv element (no shell quoting needed), for example
    ``"CPUs=2 RealMemory=1024 Feature=dyn"``. Giving CPUs and RealMemory makes
    the node offer what the spec says rather than what the host has: a
    container sees all of the host's CPUs and memory in /proc.
    """
    return f"CPUs={spec.workers.cpus} RealMemory={real_memory_mb(spec)} Feature={NODESET}"


def render_slurm_conf(spec: ClusterSpec) -> str:
    """slurm.conf for ``spec``, identical on every node.

    It names no worker: workers are dynamic nodes (see the module docstring).
    With accounting on, jobs are recorded through slurmdbd on host
    ``slurmdbd``; without it, ``sacct`` has nothing to answer and finished jobs
    stay visible to ``scontrol``/``squeue`` for ``MinJobAge`` seconds.
    """
    mem = real_memory_mb(spec)
    lines = [
        _HEADER.format(name=spec.name),
        "",
        f"ClusterName={spec.name}",
        f"SlurmctldHost={CONTROLLER_HOST}",
        "SlurmUser=slurm",
        "AuthType=auth/munge",
        f"SlurmctldPort={SLURMCTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        f"StateSaveLocation={SLURMCTLD_STATE_DIR}",
        f"SlurmdSpoolDir={SLURMD_SPOOL_DIR}",
        "SlurmctldPidFile=/run/slurmctld.pid",
        "SlurmdPidFile=/run/slurmd.pid",
        f"SlurmctldLogFile={SLURMCTLD_LOG}",
        f"SlurmdLogFile={SLURMD_LOG}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "",
        "# Dynamic nodes: workers register with `slurmd -Z` and join NodeSet "
        f"{NODESET} by feature.",
        "# TreeWidth=65533 turns off fan-out through slurmds, which dynamic nodes do not support.",
        "# The controller learns each node's address when it registers, so no",
        "# cloud_reg_addrs; cloud_dns must stay unset (it disables the alias list).",
        f"MaxNodeCount={max(MAX_NODE_COUNT, spec.workers.count)}",
        "TreeWidth=65533",
        "# A recreated worker keeps its name but may get a new address.",
        "CommunicationParameters=NoAddrCache",
        "# A node that was DOWN (container restarted) rejoins when it registers.",
        "ReturnToService=2",
        "# Notice a vanished worker container within a minute, not five.",
        "SlurmdTimeout=60",
        "",
        "# Node containers get no cgroup tree of their own to manage, so processes",
        "# are tracked through /proc and tasks are neither bound nor confined by",
        "# SLURM; each worker container's CPU and memory limits are the hard bounds.",
        "# (proctrack/cgroup and task/cgroup need a writable, delegated cgroup tree,",
        "# which neither Podman nor Kubernetes gives a container by default.)",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "# The submitting shell's limits (a container's, often lower) are not",
        "# copied into jobs; tasks get the worker's limits.",
        "PropagateResourceLimits=NONE",
        "",
        "SchedulerType=sched/backfill",
        "# Schedule a batch job as soon as it is submitted: by default slurmctld may",
        "# hold batch submissions up to 3 s (batch_sched_delay) to batch them, which a",
        "# teaching cluster with a handful of users never needs.",
        "# The backfill pass (every second here, 30 s by default) also catches any job",
        "# the event-driven pass left pending.",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "# Jobs that give no --mem get a per-CPU share of a worker instead of the",
        "# whole node, so small jobs can share workers.",
        f"DefMemPerCPU={max(1, mem // spec.workers.cpus)}",
        "# Refuse at submission a job that no partition limit allows, instead of",
        "# leaving it pending forever.",
        "EnforcePartLimits=ALL",
        f"MpiDefault={mpi_default(spec.mpi)}",
        "# Keep finished jobs visible to scontrol for an hour (the only record",
        "# when accounting is off).",
        "MinJobAge=3600",
        "",
        "JobCompType=jobcomp/none",
        *_accounting_lines(spec),
        "",
        f"NodeSet={NODESET} Feature={NODESET}",
        *(_partition_line(p) for p in spec.effective_partitions),
    ]
    return "\n".join(lines) + "\n"


def _accounting_lines(spec: ClusterSpec) -> list[str]:
    # Gathering per-task usage costs little and makes sstat (and, with
    # accounting, sacct's MaxRSS) useful. Not OverMemoryKill: sampled RSS counts
    # the shared-memory segments of MPI ranks once per rank and would kill
    # healthy jobs.
    gather = ["JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=30"]
    if not spec.accounting:
        return ["# Accounting is off: no slurmdbd, so sacct cannot answer.", *gather]
    return [
        "AccountingStorageType=accounting_storage/slurmdbd",
        f"AccountingStorageHost={DBD_HOST}",
        f"AccountingStoragePort={SLURMDBD_PORT}",
        *gather,
    ]


def _partition_line(partition: PartitionSpec) -> str:
    max_time = "INFINITE"
    if partition.max_time is not None:
        # SLURM keeps time limits in whole minutes; round up rather than let
        # SLURM truncate a limit the user wrote in seconds.
        minutes = -(-partition.max_time // 60)
        days, rest = divmod(minutes, 24 * 60)
        clock = f"{rest // 60:02d}:{rest % 60:02d}:00"
        max_time = f"{days}-{clock}" if days else clock
    default = "YES" if partition.default else "NO"
    return (
        f"PartitionName={partition.name} Nodes={NODESET} Default={default} "
        f"MaxTime={max_time} State=UP"
    )


def render_cgroup_conf(spec: ClusterSpec) -> str:
    """cgroup.conf for every node.

    slurmd 22.05 loads its cgroup plugin at start-up even though no
    cgroup-based plugin is configured (see :func:`render_slurm_conf`), so the
    file keeps that plugin from doing anything: nothing is constrained, nothing
    mounted, and systemd (absent in containers) is not asked for a scope.
    ``autodetect`` picks cgroup/v1 on v1 and hybrid hosts and cgroup/v2 on
    unified ones; on the latter slurmd still creates its own cgroup directory
    and so needs a writable /sys/fs/cgroup.
    """
    return (
        _HEADER.format(name=spec.name)
        + "\n"
        + "CgroupPlugin=autodetect\n"
        + "# Containers run no systemd; do not ask it over D-Bus for a scope.\n"
        + "IgnoreSystemd=yes\n"
        + "# Never try to mount cgroup controllers (needs privileges a container lacks).\n"
        + "CgroupAutomount=no\n"
        + "ConstrainCores=no\n"
        + "ConstrainRAMSpace=no\n"
        + "ConstrainSwapSpace=no\n"
        + "ConstrainDevices=no\n"
    )


def render_slurmdbd_conf(spec: ClusterSpec, *, db_password: str) -> str:
    """slurmdbd.conf: slurmdbd on host ``slurmdbd``, MariaDB on host ``mariadb``.

    The text contains ``db_password``: hand it to the slurmdbd node as a secret
    file, owned by ``slurm`` with mode 0600 (slurmdbd refuses anything looser),
    and never store or log it. Raises :class:`InvalidInputError` (field
    ``db_password``) when the password is empty or holds whitespace, ``#``,
    quotes or backslashes, which SLURM's config parser would not read literally.
    """
    if not _CONF_VALUE_RE.match(db_password):
        raise InvalidInputError(
            "the database password must be non-empty, without whitespace, '#', quotes "
            "or backslashes",
            field="db_password",
        )
    return (
        _HEADER.format(name=spec.name)
        + "\n"
        + "AuthType=auth/munge\n"
        + f"DbdHost={DBD_HOST}\n"
        + f"DbdPort={SLURMDBD_PORT}\n"
        + "SlurmUser=slurm\n"
        + "PidFile=/run/slurmdbd.pid\n"
        + f"LogFile={SLURMDBD_LOG}\n"
        + "DebugLevel=info\n"
        + "StorageType=accounting_storage/mysql\n"
        + f"StorageHost={DB_HOST}\n"
        + f"StoragePort={DB_PORT}\n"
        + f"StorageUser={DB_USER}\n"
        + f"StoragePass={db_password}\n"
        + f"StorageLoc={DB_NAME}\n"
    )
