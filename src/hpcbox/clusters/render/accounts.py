"""The spec's users as Unix accounts, identical on every node, and their SLURM
associations.

A node's entrypoint appends :func:`passwd_lines`, :func:`group_lines` and
:func:`shadow_lines` to its /etc files and installs :func:`authorized_keys` in
each home on the shared volume; so a user has the same uid and gid everywhere,
which is what makes shared homes and ``srun`` across nodes work. The shadow
lines carry password hashes: treat them as a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hpcbox.clusters.render.layout import HOME_ROOT
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.core.errors import InvalidInputError

__all__ = [
    "DEFAULT_ACCOUNT",
    "NO_PASSWORD",
    "SYSTEM_NAMES",
    "Account",
    "accounts",
    "authorized_keys",
    "group_lines",
    "passwd_lines",
    "sacctmgr_commands",
    "shadow_lines",
]

#: The SLURM account every spec user's association hangs under.
DEFAULT_ACCOUNT = "hpcbox"
#: Shadow password field of a user without a password: no password matches it,
#: but unlike "!" sshd does not read it as a locked account, so key logins work
#: whether or not sshd uses PAM.
NO_PASSWORD = "*"  # noqa: S105 - a shadow field value, not a password
#: User and group names that already exist in the node images (Debian
#: bookworm's base-passwd plus the packages the images install); appending a
#: second entry with the same name would make the account ambiguous.
SYSTEM_NAMES = frozenset(
    {
        "_apt", "_ssh", "adm", "audio", "backup", "bin", "cdrom", "crontab", "daemon",
        "dialout", "dip", "disk", "fax", "floppy", "games", "gnats", "hpcbox", "input",
        "irc", "kmem", "kvm", "list", "lp", "mail", "man", "messagebus", "munge", "mysql",
        "netdev", "news", "nobody", "nogroup", "operator", "plugdev", "proxy", "render",
        "root", "sasl", "sgx", "shadow", "slurm", "src", "ssh", "sshd", "ssl-cert", "staff",
        "sudo", "sync", "sys", "systemd-journal", "systemd-network", "systemd-resolve",
        "systemd-timesync", "tape", "tty", "users", "utmp", "uucp", "video", "voice",
        "www-data",
    }
)  # fmt: skip

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LINE_UNSAFE = re.compile(r"[:\n\r\x00]")


@dataclass(frozen=True)
class Account:
    """One Unix account as every node sees it.

    Construction checks that no field can break an /etc line (no ``:`` or
    newline) and raises :class:`InvalidInputError` otherwise.
    """

    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/bash"
    ssh_keys: tuple[str, ...] = ()
    password_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise InvalidInputError(f"not a valid user name: {self.name!r}", field="name")
        for name in ("home", "shell", "password_hash"):
            value = getattr(self, name)
            if value is not None and (not value or _LINE_UNSAFE.search(value)):
                raise InvalidInputError("must be non-empty, without ':' or newlines", field=name)
        for key in self.ssh_keys:
            if "\n" in key or "\r" in key or not key.strip():
                raise InvalidInputError("each SSH key is one non-empty line", field="ssh_keys")


def accounts(spec: ClusterSpec) -> list[Account]:
    """The spec's users in spec order, with uids and gids from ``spec.user_ids()``.

    Raises :class:`InvalidInputError` naming the user (``users.N.name``) when a
    user name clashes with a name in :data:`SYSTEM_NAMES`.
    """
    ids = spec.user_ids()
    result = []
    for index, user in enumerate(spec.users):
        if user.name in SYSTEM_NAMES:
            raise InvalidInputError(
                f"{user.name!r} already exists on the nodes; choose another name",
                field=f"users.{index}.name",
            )
        uid, gid = ids[user.name]
        result.append(
            Account(
                name=user.name,
                uid=uid,
                gid=gid,
                home=f"{HOME_ROOT}/{user.name}",
                ssh_keys=tuple(user.ssh_keys),
                password_hash=user.password_hash,
            )
        )
    return result


def passwd_lines(users: list[Account]) -> str:
    """Lines to append to /etc/passwd (empty GECOS; "x": the hash is in shadow)."""
    return "".join(f"{a.name}:x:{a.uid}:{a.gid}::{a.home}:{a.shell}\n" for a in users)


def group_lines(users: list[Account]) -> str:
    """Lines to append to /etc/group: one group per distinct gid.

    A gid's group is named after the user whose uid equals it (a personal
    group), else after the first user that has it as primary group; members
    are implied by the primary gid, so member lists stay empty.
    """
    names: dict[int, str] = {}
    for account in users:
        names.setdefault(account.gid, account.name)
    for account in users:
        if account.uid in names:
            names[account.uid] = account.name
    return "".join(f"{name}:x:{gid}:\n" for gid, name in names.items())


def shadow_lines(users: list[Account]) -> str:
    """Lines to append to /etc/shadow: the hash, or :data:`NO_PASSWORD`.

    Password ageing is off (empty last-change field). Secret-bearing.
    """
    return "".join(f"{a.name}:{a.password_hash or NO_PASSWORD}::0:99999:7:::\n" for a in users)


def authorized_keys(account: Account) -> str:
    """The content of ``~/.ssh/authorized_keys``: one key a line; empty without keys."""
    return "".join(f"{key.strip()}\n" for key in account.ssh_keys)


def sacctmgr_commands(spec: ClusterSpec, *, cluster: str) -> list[list[str]]:
    """argv lists, run in order on a node that reaches slurmdbd, that register
    ``cluster`` (use ``spec.name``, slurm.conf's ClusterName), the account
    :data:`DEFAULT_ACCOUNT` and one association per spec user.

    Each is an argv list for direct execution (never a shell line) and uses
    ``-i`` so sacctmgr does not ask for confirmation. sacctmgr exits non-zero
    with "Nothing new added" when the entity exists already (slurmctld
    registers its cluster by itself on start-up): callers treat that as done.
    Raises :class:`InvalidInputError` for a cluster name SLURM cannot take.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", cluster):
        raise InvalidInputError(
            "cluster names are lowercase letters, digits, '_' and '-' (at most 40)",
            field="cluster",
        )
    base = ["sacctmgr", "-i"]
    commands = [
        [*base, "add", "cluster", cluster],
        [
            *base,
            "add",
            "account",
            DEFAULT_ACCOUNT,
            f"Cluster={cluster}",
            "Description=hpcbox",
            "Organization=hpcbox",
        ],
    ]
    commands.extend(
        [*base, "add", "user", account.name, f"Account={DEFAULT_ACCOUNT}", f"Cluster={cluster}"]
        for account in accounts(spec)
    )
    return commands
