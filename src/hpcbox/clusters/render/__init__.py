"""Rendering: pure functions from a :class:`~hpcbox.clusters.spec.ClusterSpec` to
the text and manifests that realise it.

slurm.conf, cgroup.conf and slurmdbd.conf (:mod:`.slurm`), MPI hostfiles
(:mod:`.mpi`), Unix accounts and SLURM associations (:mod:`.accounts`) and the
values of hpcbox's Helm charts (:mod:`.helm`: on Kubernetes, the charts under
``charts/`` are the one source of the manifests); :mod:`.layout` names the hostnames,
ports and paths they share with the images and runtimes. Nothing here does I/O:
callers write the results where they belong.
"""

from hpcbox.clusters.render.accounts import (
    Account,
    accounts,
    authorized_keys,
    group_lines,
    passwd_lines,
    sacctmgr_commands,
    shadow_lines,
)
from hpcbox.clusters.render.helm import HelmOptions, chart_name, helm_values, values_yaml
from hpcbox.clusters.render.layout import (
    CONTROLLER_HOST,
    DB_HOST,
    DBD_HOST,
    WORKER_PREFIX,
    worker_name,
)
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.render.slurm import (
    render_cgroup_conf,
    render_slurm_conf,
    render_slurmdbd_conf,
    slurmd_conf_arg,
)

__all__ = [
    "CONTROLLER_HOST",
    "DBD_HOST",
    "DB_HOST",
    "WORKER_PREFIX",
    "Account",
    "HelmOptions",
    "accounts",
    "authorized_keys",
    "chart_name",
    "group_lines",
    "helm_values",
    "passwd_lines",
    "render_cgroup_conf",
    "render_hostfile",
    "render_slurm_conf",
    "render_slurmdbd_conf",
    "sacctmgr_commands",
    "shadow_lines",
    "slurmd_conf_arg",
    "values_yaml",
    "worker_name",
]
