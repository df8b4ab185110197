"""``--user NAME:PASSWORD``: hashed at once, never echoed; and the CLI's shortcut spec."""

from __future__ import annotations

import bcrypt
import pytest

from hpcbox.cli.cluster import _spec_from_options
from hpcbox.clusters.users import hash_password, user_from_option
from hpcbox.core.errors import InvalidInputError


def test_a_password_becomes_a_crypt_hash_that_verifies() -> None:
    user = user_from_option("alice:s3cret:with:colons")
    assert user["name"] == "alice"
    assert user["password_hash"].startswith("$2b$")
    assert bcrypt.checkpw(b"s3cret:with:colons", user["password_hash"].encode())
    assert hash_password("x") != hash_password("x")  # salted


@pytest.mark.parametrize("value", ["alice", "alice:", ":pw", "alice:" + "p" * 73])
def test_bad_options_are_refused_without_echoing_the_password(value: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        user_from_option(value)
    assert info.value.field == "--user"
    secret = value.partition(":")[2]
    assert not secret or secret not in str(info.value)


def test_the_jupyter_shortcut_builds_a_spec_with_hashed_users() -> None:
    spec = _spec_from_options(
        None, "jhub", 3, None, None, "jupyter", ["alice:wonderland", "bob:builder"]
    )
    assert spec.kind.value == "jupyter"
    assert spec.workers.count == 3
    assert [u.name for u in spec.users] == ["alice", "bob"]
    assert all(u.password_hash and "wonderland" not in u.password_hash for u in spec.users)
    # The spec's JSON (what the database keeps) has hashes only.
    assert "wonderland" not in spec.model_dump_json()
