"""Settings of the judge queue read from the environment (HPCBOX_JUDGE_*)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.settings import Settings
from hpcbox.judge.queue.config import QueueConfig, parse_pool_size
from hpcbox.judge.service import DEFAULT_POOL_SIZE, JudgeService


def test_pool_size_for_every_language_or_per_language() -> None:
    assert parse_pool_size("3") == 3
    assert parse_pool_size(" 0 ") == 0
    assert parse_pool_size("python3=4, c=1") == {"python3": 4, "c": 1}
    assert parse_pool_size("*=1,python3=4") == {"*": 1, "python3": 4}


@pytest.mark.parametrize(
    "text", ["x", "-1", "1.5", "python3=", "=3", "python3=1,python3=2", "python3=4,,c=1", "c=$(id)"]
)
def test_bad_pool_sizes_are_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_pool_size(text)
    assert err.value.field == "HPCBOX_JUDGE_POOL_SIZE"


def test_queue_config_reads_the_pool_size() -> None:
    assert QueueConfig.from_env({}).pool_size is None
    env = {"HPCBOX_JUDGE_POOL_SIZE": "python3=3,*=0"}
    assert QueueConfig.from_env(env).pool_size == {"python3": 3, "*": 0}
    with pytest.raises(InvalidInputError):
        QueueConfig.from_env({"HPCBOX_JUDGE_POOL_SIZE": "lots"})


def test_judge_service_sizes_named_languages_and_the_rest(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    sizes = JudgeService(settings, pool_size={"python3": 3, "*": 1})._sizes
    assert sizes["python3"] == 3 and sizes["c"] == 1 and sizes["java"] == 1
    only = JudgeService(settings, pool_size={"python3": 3})._sizes
    assert only["python3"] == 3 and only["c"] == 0
    assert set(JudgeService(settings)._sizes.values()) == {DEFAULT_POOL_SIZE}
    with pytest.raises(InvalidInputError, match="pascal"):
        JudgeService(settings, pool_size={"pascal": 1})
