"""MPI hostfiles, for ``mpirun --hostfile`` over SSH without the scheduler.

The two flavours read different formats: OpenMPI wants ``host slots=N`` lines,
MPICH's Hydra wants ``host:N`` lines. Either way the file lists every worker
with as many slots as it has CPUs, and is rewritten whenever workers are added
or removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hpcbox.clusters.spec import MpiFlavour
from hpcbox.core.errors import InvalidInputError

__all__ = ["render_hostfile"]

# RFC 1123 host names (dotted, for Kubernetes pod DNS names): nothing that the
# hostfile parsers could read as a separator or an option.
_HOST_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def render_hostfile(workers: Sequence[str], *, slots: int, flavour: MpiFlavour) -> str:
    """A hostfile naming each of ``workers`` with ``slots`` slots, in the given order.

    Returns the empty string for no workers. Raises :class:`InvalidInputError`
    when ``slots`` is below 1 or a name is not a plain host name.
    """
    if slots < 1:
        raise InvalidInputError(f"slots must be at least 1, not {slots}", field="slots")
    for host in workers:
        if not _HOST_RE.match(host) or len(host) > 253:
            raise InvalidInputError(f"not a host name: {host!r}", field="workers")
    if flavour is MpiFlavour.OPENMPI:
        return "".join(f"{host} slots={slots}\n" for host in workers)
    return "".join(f"{host}:{slots}\n" for host in workers)
