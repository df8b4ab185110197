"""The users' homes on the cluster's shared volume, and their SSH keys.

Made once, from the front end (the SLURM controller, or the hub), and kept across
``down``/``up``: each user's home and ``~/.ssh``, their own authorized keys plus the
cluster's admin key, and a cluster-internal key pair for SSH between nodes (made
the first time, then reused). The cluster's own secrets are in :mod:`.keys`.
"""

from __future__ import annotations

import asyncssh

from hpcbox.clusters.keys import ClusterKeys
from hpcbox.clusters.nodes import Nodes, output
from hpcbox.clusters.render.accounts import Account, accounts, authorized_keys
from hpcbox.clusters.render.jupyter import front_host
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.infra.runtimes import FileEntry

__all__ = ["make_homes"]


def make_homes(nodes: Nodes, spec: ClusterSpec, keys: ClusterKeys) -> None:
    """Create each user's home on the shared volume (once: kept across down/up),
    with their keys plus a cluster-internal key pair for SSH between nodes."""
    front = front_host(spec)
    files: list[FileEntry] = []
    for account in accounts(spec):
        home = account.home
        exists = nodes.exec(front, ["test", "-e", f"{home}/.ssh/id_ed25519"], check=False)
        inner_pub = _user_key(nodes, front, spec, account, files, create=exists.exit_code != 0)
        keys_text = authorized_keys(account) + inner_pub + keys.admin_public_key + "\n"
        nodes.exec(
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
        nodes.put_files(front, files)


def _user_key(
    nodes: Nodes,
    front: str,
    spec: ClusterSpec,
    account: Account,
    files: list[FileEntry],
    *,
    create: bool,
) -> str:
    """The user's cluster-internal public key: read from their home, or (``create``)
    made now, its files added to ``files``."""
    home = account.home
    if not create:
        return output(nodes.exec(front, ["cat", f"{home}/.ssh/id_ed25519.pub"])).strip() + "\n"
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
