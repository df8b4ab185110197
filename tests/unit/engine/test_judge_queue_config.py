"""Settings of the judge queue read from the environment (HPCBOX_JUDGE_*, through
settings.judge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.settings import JudgeSettings, Settings, parse_pool_size
from hpcbox.judge.queue.config import QueueConfig
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


def _config(env: dict[str, str]) -> QueueConfig:
    return QueueConfig.from_settings(JudgeSettings.from_env(env))


def test_queue_config_reads_the_pool_size() -> None:
    assert _config({}).pool_size is None
    env = {"HPCBOX_JUDGE_POOL_SIZE": "python3=3,*=0"}
    assert _config(env).pool_size == {"python3": 3, "*": 0}
    with pytest.raises(InvalidInputError) as err:
        _config({"HPCBOX_JUDGE_POOL_SIZE": "lots"})
    assert err.value.field == "HPCBOX_JUDGE_POOL_SIZE"


def test_queue_config_follows_every_judge_variable() -> None:
    env = {
        "HPCBOX_BROKER_URL": "redis://:pw@127.0.0.1:6379/0",
        "HPCBOX_JUDGE_THREADS": "3",
        "HPCBOX_JUDGE_POOL_SIZE": "2",
        "HPCBOX_JUDGE_LEASE_SECONDS": "7.5",
        "HPCBOX_JUDGE_RETENTION_SECONDS": "60",
        "HPCBOX_JUDGE_MAX_QUEUE": "9",
        "HPCBOX_JUDGE_CALLBACK_SECRET": "s3cret",
        "HPCBOX_JUDGE_CALLBACK_TRIES": "4",
        "HPCBOX_JUDGE_CALLBACK_TIMEOUT": "2.5",
        "HPCBOX_JUDGE_CALLBACK_BACKOFF": "0.2",
    }
    config = _config(env)
    assert config == QueueConfig(
        broker_url="redis://:pw@127.0.0.1:6379/0",
        threads=3,
        pool_size=2,
        lease_s=7.5,
        retention_s=60,
        max_queue_size=9,
        callback_secret="s3cret",
        callback_tries=4,
        callback_timeout=2.5,
        callback_backoff=0.2,
    )
    assert "pw" not in repr(config) and "s3cret" not in repr(config)
    # Unset, each is the queue's default.
    defaults = _config({})
    assert (defaults.broker_url, defaults.lease_s, defaults.max_queue_size) == (None, 30.0, 100)
    assert (defaults.retention_s, defaults.callback_secret) == (7 * 24 * 3600, None)
    assert (defaults.callback_tries, defaults.callback_timeout) == (3, 5.0)
    assert defaults.callback_backoff == 1.0


def test_judge_service_sizes_named_languages_and_the_rest(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    sizes = JudgeService(settings, pool_size={"python3": 3, "*": 1})._sizes
    assert sizes["python3"] == 3 and sizes["c"] == 1 and sizes["java"] == 1
    only = JudgeService(settings, pool_size={"python3": 3})._sizes
    assert only["python3"] == 3 and only["c"] == 0
    assert set(JudgeService(settings)._sizes.values()) == {DEFAULT_POOL_SIZE}
    with pytest.raises(InvalidInputError, match="pascal"):
        JudgeService(settings, pool_size={"pascal": 1})
