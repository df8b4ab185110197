"""The node roles hpcbox builds images for, their tags and build order.

Every role but the roots (:data:`ROOT_ROLES`: ``base``, and the lean ``operator``
image) is built ``FROM`` its parent (:data:`PARENTS`, the base unless said
otherwise), so parents come first whenever they have to be built; the roots are
built from the Debian image itself.

Each image is tagged three ways: :func:`image_tag` (``<version>-<content digest>``,
what this hpcbox runs on Podman), :func:`version_tag` (``<version>``, what the Helm
charts name: their ``appVersion``) and :func:`latest_tag`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from hpcbox.clusters.images.context import context_files
from hpcbox.core.errors import InvalidInputError
from hpcbox.core.version import __version__

__all__ = [
    "BASE_ROLE",
    "REPOSITORY_PREFIX",
    "ROLES",
    "ROOT_ROLES",
    "build_plan",
    "check_roles",
    "content_digest",
    "image_tag",
    "latest_tag",
    "parent_role",
    "repository",
    "version_tag",
]

ROLES = (
    "base",
    "slurm-controller",
    "slurm-worker",
    "slurmdbd",
    "mariadb",
    "jupyter",
    "operator",
)
BASE_ROLE = "base"
#: Roles built from the Debian image rather than another role: the base, and the
#: operator (a Python service: no munge, sshd or SLURM).
ROOT_ROLES = frozenset({BASE_ROLE, "operator"})
#: Roles built on another role than the base (listed after it in ROLES). The
#: JupyterHub image extends the SLURM login image, so a SLURM login node can run it.
PARENTS = {"jupyter": "slurm-controller"}
REPOSITORY_PREFIX = "hpcbox"


def check_roles(roles: Sequence[str]) -> None:
    """Raise InvalidInputError naming the first role hpcbox has no image for."""
    for role in roles:
        if role not in ROLES:
            raise InvalidInputError(
                f"unknown image role {role!r} (one of {', '.join(ROLES)})", field="roles"
            )


def repository(role: str) -> str:
    """``hpcbox/<role>``; raises InvalidInputError for an unknown role."""
    check_roles([role])
    return f"{REPOSITORY_PREFIX}/{role}"


def parent_role(role: str) -> str | None:
    """The role whose image ``role`` is built from (None for the roots)."""
    check_roles([role])
    return None if role in ROOT_ROLES else PARENTS.get(role, BASE_ROLE)


def image_tag(role: str) -> str:
    """The tag this hpcbox runs: ``hpcbox/<role>:<version>-<content digest>``.

    The digest covers the role's build context (and the base's, which it is
    built from), so an edited Containerfile gives a new tag and a stale image
    cached by the engine is never mistaken for the current one.
    """
    return f"{repository(role)}:{__version__}-{content_digest(role)}"


@functools.cache
def content_digest(role: str) -> str:
    """A short digest of the role's build context, chained through its parent's."""
    digest = hashlib.sha256()
    parent = parent_role(role)
    if parent is not None:
        digest.update(content_digest(parent).encode())
    for name, data in sorted(context_files(role).items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:10]


def version_tag(role: str) -> str:
    """``hpcbox/<role>:<version>``: what the Helm charts name (their appVersion), moved
    to each new build of this version."""
    return f"{repository(role)}:{__version__}"


def latest_tag(role: str) -> str:
    """``hpcbox/<role>:latest``, moved to each new build."""
    return f"{repository(role)}:latest"


def build_plan(requested: Sequence[str], present: Sequence[str], *, force: bool) -> list[str]:
    """The roles to build, in order, given which roles' images are ``present``.

    A requested role is built when it is missing, or always with ``force``.
    A parent (the base, say) is added when a role built from it needs it and it
    is missing; ``force`` does not rebuild a parent that was not requested.
    Parents precede their children in ``ROLES``, so ROLES order is build order.
    """
    check_roles(requested)
    wanted = {role for role in requested if force or role not in present}
    for role in list(wanted):
        parent = parent_role(role)
        while parent is not None and parent not in present:
            wanted.add(parent)
            parent = parent_role(parent)
    return [role for role in ROLES if role in wanted]
