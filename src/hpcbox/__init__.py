"""hpcbox: HPC in a box.

Clusters, batch jobs and sandboxed judging on containers, from one core.
The public Python API is re-exported here; everything else is internal.
"""

from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TransientError,
    UnavailableError,
)
from hpcbox.core.version import __version__
from hpcbox.jobs.model.spec import JobSpec, Resources
from hpcbox.jobs.model.states import JobState

__all__ = [
    "ConflictError",
    "HpcboxError",
    "InvalidInputError",
    "JobSpec",
    "JobState",
    "NotFoundError",
    "PermanentError",
    "Resources",
    "TransientError",
    "UnavailableError",
    "__version__",
]
