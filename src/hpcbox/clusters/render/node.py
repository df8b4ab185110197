"""The nodes' start-up script — one, for every runtime — and where its inputs are.

``hpcbox-node.sh`` (package data beside this module) starts a node's daemons for
its role. Containers on Podman and Docker get it as :data:`NODE_SCRIPT_PATH`, their
inputs copied into place before they start; pods on Kubernetes get it from the
``node-setup`` ConfigMap, mounted at :data:`SETUP_DIR`, and their inputs as mounts
under :data:`MOUNTS_DIR`, which the environment variable :data:`MOUNTS_ENV` names
to the script. The sub-directories below are a contract between the Kubernetes
manifests and the script.

The script is a constant: no spec value is ever interpolated into it.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = [
    "ACCOUNTS_DIR",
    "MOUNTS_DIR",
    "MOUNTS_ENV",
    "MPI_DIR",
    "NODE_SCRIPT_PATH",
    "SCRIPT_FILE",
    "SECRETS_DIR",
    "SETUP_DIR",
    "USERS_DIR",
    "node_script",
]

#: The script's file name, in this package.
SCRIPT_FILE = "hpcbox-node.sh"
#: Where a container on Podman or Docker has the script.
NODE_SCRIPT_PATH = "/usr/local/sbin/hpcbox-node"

#: Kubernetes: the variable that tells the script its inputs are mounted, and where.
MOUNTS_ENV = "HPCBOX_MOUNTS"
MOUNTS_DIR = "/run/hpcbox"
#: The ``node-setup`` ConfigMap: the script, as ``hpcbox-node``.
SETUP_DIR = f"{MOUNTS_DIR}/setup"
#: munge.key, ssh/*, admin_authorized_keys, shadow, slurmdbd.conf.
SECRETS_DIR = f"{MOUNTS_DIR}/secrets"
#: passwd, group, authorized_keys/<user>, sacctmgr (SLURM pods).
USERS_DIR = f"{MOUNTS_DIR}/users"
#: hostfile.
MPI_DIR = f"{MOUNTS_DIR}/mpi"
#: passwd, group, shadow (jupyter pods).
ACCOUNTS_DIR = f"{MOUNTS_DIR}/accounts"


@functools.cache
def node_script() -> str:
    """The start-up script's text (read once from the package's own data)."""
    return (
        resources.files("hpcbox.clusters.render").joinpath(SCRIPT_FILE).read_text(encoding="utf-8")
    )
