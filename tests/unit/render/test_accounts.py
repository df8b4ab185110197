"""Unix accounts from the spec's users, and their SLURM associations."""

from __future__ import annotations

import shlex

import pytest

from hpcbox.clusters.render.accounts import (
    DEFAULT_ACCOUNT,
    NO_PASSWORD,
    Account,
    accounts,
    authorized_keys,
    group_lines,
    passwd_lines,
    sacctmgr_commands,
    shadow_lines,
)
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec
from hpcbox.core.errors import InvalidInputError

from .specs import ED25519_KEY, SHA512_HASH, accounting

# Valid by the spec's rules, but each exercises an edge: leading underscore,
# dash and underscore inside, a trailing dash, digits, the 32-character limit.
EDGY_NAMES = ["_svc", "a-b_c", "user-", "u2000", "x" * 32]
SHELL_METACHARACTERS = set(";|&$`<>()*?[]{}'\"\\!#~\n\t ")


def _spec(users: list[dict[str, object]]) -> ClusterSpec:
    return parse_cluster_spec({"name": "t", "users": users})


def test_uids_are_kept_or_assigned_from_2000_skipping_taken_ones() -> None:
    spec = _spec([{"name": "alice"}, {"name": "bob", "uid": 2000}, {"name": "carol"}])
    ids = {a.name: (a.uid, a.gid) for a in accounts(spec)}
    assert ids == {"alice": (2001, 2001), "bob": (2000, 2000), "carol": (2002, 2002)}


def test_accounts_carry_home_shell_keys_and_hash() -> None:
    (alice, bob) = accounts(accounting())
    assert alice == Account(  # noqa: S604 - "shell" is the login shell field
        name="alice",
        uid=2001,
        gid=2001,
        home="/home/alice",
        shell="/bin/bash",
        ssh_keys=(),
        password_hash=SHA512_HASH,
    )
    assert bob.password_hash is None
    assert SHA512_HASH not in repr(alice), "repr must not show the hash"


def test_passwd_group_and_shadow_lines() -> None:
    users = accounts(accounting())
    assert passwd_lines(users) == (
        "alice:x:2001:2001::/home/alice:/bin/bash\nbob:x:2000:2000::/home/bob:/bin/bash\n"
    )
    assert group_lines(users) == "alice:x:2001:\nbob:x:2000:\n"
    assert shadow_lines(users) == (
        f"alice:{SHA512_HASH}::0:99999:7:::\nbob:{NO_PASSWORD}::0:99999:7:::\n"
    )


def test_without_a_password_the_shadow_field_matches_nothing_but_is_not_locked() -> None:
    # "!" would read as a locked account to sshd without PAM, refusing key logins.
    (line,) = shadow_lines(accounts(_spec([{"name": "dave"}]))).splitlines()
    assert line.split(":")[1] == "*"


def test_a_shared_gid_is_one_group_named_after_its_owner() -> None:
    spec = _spec(
        [
            {"name": "alice", "uid": 3000, "gid": 5000},
            {"name": "bob", "uid": 5000},
            {"name": "carol", "uid": 3001, "gid": 5000},
        ]
    )
    assert group_lines(accounts(spec)) == "bob:x:5000:\n"


@pytest.mark.parametrize("name", EDGY_NAMES)
def test_edge_case_names_make_well_formed_lines(name: str) -> None:
    users = accounts(_spec([{"name": name, "ssh_keys": [ED25519_KEY]}]))
    for text, fields in (
        (passwd_lines(users), 7),
        (group_lines(users), 4),
        (shadow_lines(users), 9),
    ):
        (line,) = text.splitlines()
        assert line.split(":")[0] == name
        assert len(line.split(":")) == fields
    assert users[0].home == f"/home/{name}"


@pytest.mark.parametrize("name", ["games", "staff", "users", "www-data", "_apt"])
def test_names_the_images_already_use_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        accounts(_spec([{"name": "ok"}, {"name": name}]))
    assert info.value.field == "users.1.name"


def test_authorized_keys_one_key_a_line() -> None:
    second = ED25519_KEY.replace("alice@laptop", "alice@desktop")
    (alice,) = accounts(_spec([{"name": "alice", "ssh_keys": [ED25519_KEY, second]}]))
    assert authorized_keys(alice) == f"{ED25519_KEY}\n{second}\n"
    (bob,) = accounts(_spec([{"name": "bob"}]))
    assert authorized_keys(bob) == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("home", "/home/a:b"),
        ("shell", "/bin/bash\n"),
        ("password_hash", "$6$x:y"),
        ("name", "Bad Name"),
        ("ssh_keys", ("ssh-ed25519 AAAA\nssh-rsa BBBB",)),
    ],
)
def test_account_refuses_values_that_break_etc_lines(field: str, value: object) -> None:
    data: dict[str, object] = {"name": "a", "uid": 2000, "gid": 2000, "home": "/home/a"}
    data[field] = value
    with pytest.raises(InvalidInputError) as info:
        Account(**data)  # type: ignore[arg-type]
    assert info.value.field == field


def test_sacctmgr_commands_are_argv_lists() -> None:
    spec = _spec([{"name": name} for name in EDGY_NAMES])
    commands = sacctmgr_commands(spec, cluster="t")
    assert commands[0] == ["sacctmgr", "-i", "add", "cluster", "t"]
    assert commands[1][:5] == ["sacctmgr", "-i", "add", "account", DEFAULT_ACCOUNT]
    users = commands[2:]
    assert [c[4] for c in users] == EDGY_NAMES
    for argv in commands:
        assert isinstance(argv, list)
        assert all(isinstance(arg, str) for arg in argv)
        assert argv[:2] == ["sacctmgr", "-i"]
        # Nothing a shell would interpret, so even a careless caller that joins
        # them cannot run anything else; and joining then splitting is lossless.
        assert not SHELL_METACHARACTERS & set("".join(argv))
        assert shlex.split(shlex.join(argv)) == argv
    for argv in users:
        assert f"Account={DEFAULT_ACCOUNT}" in argv
        assert "Cluster=t" in argv


@pytest.mark.parametrize("cluster", ["", "Upper", "a b", "x;id", "-i", "a" * 41])
def test_sacctmgr_refuses_bad_cluster_names(cluster: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        sacctmgr_commands(accounting(), cluster=cluster)
    assert info.value.field == "cluster"
