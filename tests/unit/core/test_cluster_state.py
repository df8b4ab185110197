"""What ``cluster up`` does about a cluster of the same name: one table, in the core."""

from __future__ import annotations

import pytest

from hpcbox.clusters.spec import ClusterState, UpAction, up_action


@pytest.mark.parametrize(
    ("state", "replace", "action"),
    [
        (None, False, UpAction.CREATE),
        (None, True, UpAction.CREATE),
        ("DOWN", False, UpAction.CREATE),
        ("FAILED", False, UpAction.RETRY),
        ("FAILED", True, UpAction.RETRY),
        # Seen by a process holding the cluster's lock: its up process is gone.
        ("CREATING", False, UpAction.RETRY),
        ("RUNNING", False, UpAction.REFUSE),
        ("RUNNING", True, UpAction.REPLACE),
        ("SCALING", False, UpAction.REFUSE),
        ("SCALING", True, UpAction.REPLACE),
        ("SOMETHING-NEW", False, UpAction.REFUSE),
    ],
)
def test_up_action(state: str | None, replace: bool, action: UpAction) -> None:
    assert up_action(state, replace=replace) is action


def test_states_are_the_stored_strings() -> None:
    assert [s.value for s in ClusterState] == ["CREATING", "RUNNING", "SCALING", "FAILED", "DOWN"]
    assert ClusterState.FAILED == "FAILED"
