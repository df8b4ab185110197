"""Real sandboxes: bwrap plus this machine's cgroups; skipped where either is missing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hpcbox.core.errors import UnavailableError
from hpcbox.jobs.backends.local.sandbox import LaunchRequest, ResourceLimits, Sandbox
from tests.conftest import require

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture(scope="session")
def parent_group() -> Iterator[str]:
    """A parent group of its own per test session, removed at the end."""
    group = f"hpcbox-test-{os.getpid()}"
    yield group
    sandbox = Sandbox(parent_group=group)
    try:
        sandbox.driver.remove(group)
    except Exception as exc:  # pragma: no cover - best effort cleanup
        print(f"could not remove test cgroup {group}: {exc}")


@pytest.fixture(scope="session")
def sandbox(parent_group: str) -> Sandbox:
    sb = Sandbox(parent_group=parent_group)
    try:
        sb.check()
    except UnavailableError as exc:
        require(False, f"sandbox unavailable on this machine: {exc}")
    return sb


@pytest.fixture
def make_req(tmp_path: Path) -> Callable[..., LaunchRequest]:
    """Build a request whose files live in tmp_path (which is under /tmp)."""

    def make(argv: list[str], **over: Any) -> LaunchRequest:
        run_id = over.pop("run_id", f"t-{uuid.uuid4().hex[:12]}")
        fields: dict[str, Any] = {
            "run_id": run_id,
            "argv": argv,
            "env": dict(ENV),
            "workdir": str(tmp_path),
            "stdout_path": str(tmp_path / f"{run_id}.out"),
            "stderr_path": str(tmp_path / f"{run_id}.err"),
            "status_path": str(tmp_path / f"{run_id}.status"),
            "limits": ResourceLimits(),
        }
        fields.update(over)
        return LaunchRequest(**fields)

    return make
