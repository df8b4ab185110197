"""Image tags and the order images are built in."""

from __future__ import annotations

import pytest

import hpcbox
from hpcbox.clusters.images import ROLES, image_tag, latest_tag, version_tag
from hpcbox.clusters.images.roles import build_plan, content_digest, parent_role
from hpcbox.core.errors import InvalidInputError


def test_tags_carry_the_hpcbox_version_and_a_content_digest() -> None:
    assert image_tag("slurm-worker") == (
        f"hpcbox/slurm-worker:{hpcbox.__version__}-{content_digest('slurm-worker')}"
    )
    assert len(content_digest("base")) == 10
    assert content_digest("base") != content_digest("slurm-worker")
    assert latest_tag("mariadb") == "hpcbox/mariadb:latest"
    assert [image_tag(r).split(":")[0] for r in ROLES] == [
        "hpcbox/base",
        "hpcbox/slurm-controller",
        "hpcbox/slurm-worker",
        "hpcbox/slurmdbd",
        "hpcbox/mariadb",
        "hpcbox/jupyter",
        "hpcbox/operator",
    ]


def test_the_version_tag_is_what_the_charts_name() -> None:
    assert version_tag("operator") == f"hpcbox/operator:{hpcbox.__version__}"
    assert version_tag("slurm-worker") == f"hpcbox/slurm-worker:{hpcbox.__version__}"


def test_the_operator_image_builds_from_debian_alone() -> None:
    assert parent_role("operator") is None and parent_role("base") is None
    assert build_plan(["operator"], [], force=False) == ["operator"]
    assert content_digest("operator") != content_digest("base")


@pytest.mark.parametrize("role", ["", "jupyterhub", "base;rm", "../base", "BASE"])
def test_unknown_roles_are_refused(role: str) -> None:
    with pytest.raises(InvalidInputError, match="roles"):
        image_tag(role)


def test_everything_missing_builds_base_first() -> None:
    assert build_plan(list(reversed(ROLES)), [], force=False) == list(ROLES)


def test_only_missing_roles_are_built() -> None:
    present = ["base", "slurm-controller", "mariadb"]
    assert build_plan(ROLES, present, force=False) == [
        "slurm-worker",
        "slurmdbd",
        "jupyter",
        "operator",
    ]
    assert build_plan(ROLES, list(ROLES), force=False) == []


def test_a_missing_base_is_added_for_a_role_that_needs_it() -> None:
    assert build_plan(["slurm-worker"], [], force=False) == ["base", "slurm-worker"]
    assert build_plan(["slurm-worker"], ["base"], force=False) == ["slurm-worker"]


def test_force_rebuilds_what_was_asked_for_only() -> None:
    assert build_plan(["slurm-worker"], list(ROLES), force=True) == ["slurm-worker"]
    assert build_plan(["base", "mariadb"], list(ROLES), force=True) == ["base", "mariadb"]


def test_duplicates_are_built_once() -> None:
    assert build_plan(["mariadb", "mariadb", "base"], [], force=False) == ["base", "mariadb"]


def test_the_jupyter_image_builds_on_the_slurm_login_image() -> None:
    assert build_plan(["jupyter"], [], force=False) == ["base", "slurm-controller", "jupyter"]
    assert build_plan(["jupyter"], ["base"], force=False) == ["slurm-controller", "jupyter"]
    assert build_plan(["jupyter"], list(ROLES), force=True) == ["jupyter"]
    # Its tag changes when the login image's context does.
    assert content_digest("jupyter") != content_digest("slurm-controller")
