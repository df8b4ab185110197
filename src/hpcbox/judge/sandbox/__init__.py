"""Profile "untrusted": one-shot, warm-startable sandboxes for hostile code.

Every run gets a fresh sandbox: a read-only runtime root filesystem, a private
size-capped tmpfs work directory (``/box``), new user, pid, mount, ipc, uts and
network namespaces, an unprivileged uid, cgroup limits, rlimits, a seccomp filter
and capped output. See docs/judge.md ("Security model").

The factory (:mod:`.factory`) starts boxes (:mod:`.box`) with a bwrap of their own
(:mod:`.start_bwrap`) or forked from a fork-server (:mod:`.start_forked`,
:mod:`.zygote`); a run is watched by the host (:mod:`.watch`), which reads the
box's report as untrusted input (:mod:`.report`).
"""

from hpcbox.judge.sandbox.box import WarmBox
from hpcbox.judge.sandbox.factory import UntrustedSandbox
from hpcbox.judge.sandbox.pool import WarmPool
from hpcbox.judge.sandbox.spec import RunLimits, RunResult, RunSpec

__all__ = ["RunLimits", "RunResult", "RunSpec", "UntrustedSandbox", "WarmBox", "WarmPool"]
