"""Profile "untrusted": one-shot, warm-startable sandboxes for hostile code.

Every run gets a fresh sandbox: a read-only runtime root filesystem, a private
size-capped tmpfs work directory (``/box``), new user, pid, mount, ipc, uts and
network namespaces, an unprivileged uid, cgroup limits, rlimits, a seccomp filter
and capped output. See docs/judge.md ("Security model").
"""

from hpcbox.judge.sandbox.box import UntrustedSandbox, WarmBox
from hpcbox.judge.sandbox.pool import WarmPool
from hpcbox.judge.sandbox.spec import RunLimits, RunResult, RunSpec

__all__ = ["RunLimits", "RunResult", "RunSpec", "UntrustedSandbox", "WarmBox", "WarmPool"]
