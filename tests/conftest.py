"""Shared fixtures. A test that needs a component this machine lacks calls
:func:`require`, which skips with the reason printed — except in CI (``CI=true``),
where every component is installed and a missing one is a failure, not a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcbox.core.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when ``condition`` is false."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "hpcbox-home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, cpus=2, memory_bytes=4 * 1024**3, agent_idle_seconds=2.0)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a developer's own hpcbox configuration."""
    for key in list(os.environ):
        if key.startswith("HPCBOX_") and key not in (
            "HPCBOX_TEST_DATABASE_URL",
            "HPCBOX_TEST_BROKER_URL",
            "HPCBOX_TEST_KUBECONFIG",
            "HPCBOX_KUBE_CACHE",
            "HPCBOX_KUBE_STATE",
        ):
            monkeypatch.delenv(key)


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("HPCBOX_TEST_DATABASE_URL")
    require(bool(url), "HPCBOX_TEST_DATABASE_URL is not set (scripts/postgres.sh starts one)")
    assert url is not None
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        for table in (
            "submission_tests",
            "submissions",
            "targets",
            "clusters",
            "state_events",
            "attempts",
            "jobs",
            "alembic_version",
        ):
            conn.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()
    return url
