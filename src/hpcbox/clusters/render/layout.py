"""Names that the rendered files, the node images and the runtimes must agree
on: hostnames, ports, and paths inside a node.

Paths follow Debian bookworm's SLURM packages and hpcbox's node start-up
script (which creates the spool directories with the owners the daemons want).
"""

from __future__ import annotations

__all__ = [
    "ACCOUNTS_DIR",
    "CONTROLLER_HOST",
    "DBD_HOST",
    "DB_HOST",
    "DB_NAME",
    "DB_PORT",
    "DB_USER",
    "HOME_ROOT",
    "HOSTFILE",
    "SLURMCTLD_LOG",
    "SLURMCTLD_PORT",
    "SLURMCTLD_STATE_DIR",
    "SLURMDBD_LOG",
    "SLURMDBD_PORT",
    "SLURMD_LOG",
    "SLURMD_PORT",
    "SLURMD_SPOOL_DIR",
    "SLURM_CONF_DIR",
    "SLURM_LOG_DIR",
    "SSH_PORT",
    "WORKER_PREFIX",
    "worker_name",
]

# Hostnames on the cluster network. The daemons check them: slurmctld runs only
# where the hostname equals SlurmctldHost, slurmdbd only where it equals DbdHost.
CONTROLLER_HOST = "controller"
DBD_HOST = "slurmdbd"
DB_HOST = "mariadb"
WORKER_PREFIX = "worker"

SLURMCTLD_PORT = 6817
SLURMD_PORT = 6818
SLURMDBD_PORT = 6819
DB_PORT = 3306
SSH_PORT = 22

DB_NAME = "slurm_acct_db"
DB_USER = "slurm"

SLURM_CONF_DIR = "/etc/slurm"
SLURMCTLD_STATE_DIR = "/var/spool/slurmctld"
SLURMD_SPOOL_DIR = "/var/spool/slurmd"
SLURM_LOG_DIR = "/var/log/slurm"
SLURMCTLD_LOG = f"{SLURM_LOG_DIR}/slurmctld.log"
SLURMD_LOG = f"{SLURM_LOG_DIR}/slurmd.log"
SLURMDBD_LOG = f"{SLURM_LOG_DIR}/slurmdbd.log"

HOME_ROOT = "/home"
#: The MPI hostfile on every node, kept current as workers come and go.
HOSTFILE = "/etc/hpcbox/hostfile"
#: passwd, group and shadow lines a node merges into its /etc files at start.
ACCOUNTS_DIR = "/etc/hpcbox/accounts"


def worker_name(index: int) -> str:
    """The hostname (and SLURM node name) of worker ``index``, counted from 1.

    Raises :class:`ValueError` for an index below 1.
    """
    if index < 1:
        raise ValueError(f"worker indexes start at 1, not {index}")
    return f"{WORKER_PREFIX}{index}"
