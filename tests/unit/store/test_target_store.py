from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.errors import ConflictError, InvalidInputError, NotFoundError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.target_store import TargetStore
from hpcbox.jobs.targets import TargetService


@pytest.fixture
def service(home: Path) -> TargetService:
    return TargetService(TargetStore(open_engine(Settings(home=home))))


def test_add_list_remove(service: TargetService, tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("not really a key")
    target = service.add("hpc", "ssh://alice@login:2222", key_path=str(key))
    assert target.key_path == str(key)
    assert [t.name for t in service.list_targets()] == ["hpc"]
    with pytest.raises(ConflictError):
        service.add("hpc", "ssh://alice@login")
    with pytest.raises(InvalidInputError):
        service.add("other", "ssh://alice@login", key_path=str(tmp_path / "missing"))
    service.remove("hpc")
    with pytest.raises(NotFoundError):
        service.get("hpc")
    with pytest.raises(NotFoundError):
        service.remove("hpc")
