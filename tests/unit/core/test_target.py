from __future__ import annotations

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.model.target import parse_ssh_url, parse_target


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "ssh://alice@login.example.org",
            {"host": "login.example.org", "user": "alice", "port": 22},
        ),
        ("ssh://bob@127.0.0.1:2222", {"host": "127.0.0.1", "user": "bob", "port": 2222}),
        ("ssh://c.d@[::1]:22", {"host": "[::1]", "user": "c.d", "port": 22}),
    ],
)
def test_parse_ssh_url(url: str, expected: dict[str, object]) -> None:
    assert parse_ssh_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://a@b",
        "ssh://hostonly",
        "ssh://a:secret@b",
        "ssh://a@b/path",
        "ssh://a@b:99999",
        "ssh://a@b?x=1",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_ssh_url(url)


def test_target_validation_and_json() -> None:
    target = parse_target({"name": "hpc1", "host": "h", "user": "u", "port": 2222})
    assert target.url == "ssh://u@h:2222"
    assert target.to_json()["url"] == "ssh://u@h:2222"
    for bad, field in [
        ({"name": "local", "host": "h", "user": "u"}, "name"),
        ({"name": "Bad Name", "host": "h", "user": "u"}, "name"),
        ({"name": "t", "host": "h;rm", "user": "u"}, "host"),
        ({"name": "t", "host": "h", "user": "u$(x)"}, "user"),
        ({"name": "t", "host": "h", "user": "u", "key_path": "rel/key"}, "key_path"),
        ({"name": "t", "host": "h", "user": "u", "host_key": "nonsense"}, "host_key"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            parse_target(bad)
        assert info.value.field == field
