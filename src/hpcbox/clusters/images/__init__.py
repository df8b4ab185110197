"""Container images for cluster nodes: Containerfiles (package data) and their build.

Roles (``base``, ``slurm-controller``, ``slurm-worker``, ``slurmdbd``,
``mariadb``, ``jupyter``, ``operator``) are built on Debian bookworm with Debian's
own SLURM, MPI and MariaDB packages; ``operator`` holds hpcbox itself
(:mod:`hpcbox.clusters.images.wheel`) with its ``operator`` extra. The Debian base
is pulled where a registry is reachable and bootstrapped with debootstrap where
none is. Build steps trust
the machine's CA bundle by default (:mod:`hpcbox.clusters.images.hostca`); progress
goes to a :class:`~hpcbox.core.progress.Reporter` and the tools' raw output to
a log file (:mod:`hpcbox.clusters.images.buildlog`).
"""

from hpcbox.clusters.images.builder import ImageBuilder
from hpcbox.clusters.images.roles import ROLES, image_tag, latest_tag, version_tag

__all__ = ["ROLES", "ImageBuilder", "image_tag", "latest_tag", "version_tag"]
