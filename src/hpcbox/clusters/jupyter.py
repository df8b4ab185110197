"""JupyterHub + ipyparallel on a container runtime: the ``jupyter`` cluster kind, and
JupyterHub on a SLURM login node (``jupyter.hub: true``).

Bring-up of kind ``jupyter``: shared home volume -> front end ``hub``
(ipcontroller, then JupyterHub; ready when the hub's API answers) -> the users'
homes -> workers, each running ``engines_per_worker`` ipengines -> ready when
the controller counts every engine. Scaling starts or removes workers and
waits until the controller's count (what a connected ``Client`` sees in
``rc.ids``) is the new one. What runs where is in :mod:`hpcbox.clusters.render.jupyter`.
Built on the public node operations of :mod:`.nodes`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from hpcbox.clusters.homes import make_homes
from hpcbox.clusters.keys import ClusterKeys
from hpcbox.clusters.kind import KindStatus, Up
from hpcbox.clusters.nodes import (
    ClusterError,
    NodeLimits,
    Nodes,
    home_mount,
    node_script_file,
    output,
)
from hpcbox.clusters.render.accounts import accounts, group_lines, passwd_lines, shadow_lines
from hpcbox.clusters.render.jupyter import (
    CLIENT_FILE,
    HUB_CONFIG,
    HUB_HOST,
    HUB_PORT,
    front_host,
    render_jupyterhub_config,
)
from hpcbox.clusters.render.slurm import worker_name
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.core.errors import HpcboxError
from hpcbox.infra.runtimes import FileEntry, PortBinding

__all__ = [
    "ENGINE_COUNT_SCRIPT",
    "HUB_PYTHON",
    "JupyterKind",
    "engine_count",
    "hub_file",
    "hub_port_binding",
    "hub_url",
    "jupyter_files",
    "wait_for_hub",
]

#: The Python of the jupyter image (the venv JupyterHub and ipyparallel live in).
HUB_PYTHON = "/opt/jupyter/bin/python"
#: Run on the front end as the ipyparallel account: connect as a notebook would and
#: print the engines' count, waiting up to argv[2] s for argv[1] engines (-1: none).
#: A constant: its arguments are integers hpcbox formats itself.
ENGINE_COUNT_SCRIPT = f"""
import json, sys, time
import ipyparallel
want, wait = int(sys.argv[1]), float(sys.argv[2])
rc = ipyparallel.Client({CLIENT_FILE!r}, timeout=30)
deadline = time.monotonic() + wait
while want >= 0 and len(rc.ids) != want and time.monotonic() < deadline:
    time.sleep(0.25)
print(json.dumps({{"engines": len(rc.ids)}}))
rc.close()
"""
# The hub answers on its API before anyone logs in (no token needed for this path).
_HUB_READY_SCRIPT = f"""
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:{HUB_PORT}/hub/api", timeout=5) as reply:
    sys.exit(0 if reply.status == 200 else 1)
"""


def hub_file(spec: ClusterSpec) -> FileEntry:
    return FileEntry(HUB_CONFIG, render_jupyterhub_config(spec).encode())


def hub_port_binding(spec: ClusterSpec) -> PortBinding:
    """The hub's port, published on the host's loopback only."""
    return PortBinding(container_port=HUB_PORT, host_port=spec.jupyter.port)


def jupyter_files(spec: ClusterSpec) -> list[FileEntry]:
    """What every node of a ``jupyter`` cluster gets: the start-up script, the
    accounts to merge, and the hub's configuration."""
    accts = accounts(spec)
    return [
        node_script_file(),
        FileEntry("/etc/hpcbox/accounts/passwd", passwd_lines(accts).encode()),
        FileEntry("/etc/hpcbox/accounts/group", group_lines(accts).encode()),
        FileEntry("/etc/hpcbox/accounts/shadow", shadow_lines(accts).encode(), mode=0o600),
        hub_file(spec),
    ]


def hub_url(nodes: Nodes, spec: ClusterSpec) -> str | None:
    """``http://127.0.0.1:PORT/`` where the hub is published, or None when it is not up."""
    if not spec.has_jupyterhub:
        return None
    port = nodes.published_port(front_host(spec), HUB_PORT)
    return f"http://127.0.0.1:{port}/" if port else None


def wait_for_hub(nodes: Nodes, spec: ClusterSpec) -> None:
    """Return once JupyterHub answers on the front end; ClusterError with its log if not."""
    host = front_host(spec)
    nodes.wait(
        host,
        "jupyterhub (its API)",
        lambda: nodes.exec(host, [HUB_PYTHON, "-c", _HUB_READY_SCRIPT]).exit_code == 0,
    )


def engine_count(nodes: Nodes, *, want: int = -1, wait: float = 0) -> int:
    """The engines the controller counts now (after waiting up to ``wait`` s for
    ``want`` of them). Raises HpcboxError when it does not answer."""
    result = nodes.exec(
        HUB_HOST,
        [HUB_PYTHON, "-c", ENGINE_COUNT_SCRIPT, str(want), f"{wait:.0f}"],
        user="ipyparallel",
        timeout=wait + 60,
    )
    return int(json.loads(output(result).strip().splitlines()[-1])["engines"])


class JupyterKind:
    """A ``jupyter`` cluster's nodes: the hub (ipcontroller and JupyterHub) and the
    workers, each running ``engines_per_worker`` ipengines."""

    def __init__(self, nodes: Nodes, keys: ClusterKeys) -> None:
        self.nodes = nodes
        self.keys = keys

    def image_roles(self, spec: ClusterSpec) -> list[str]:
        return ["base", "jupyter"]

    def up(self, spec: ClusterSpec) -> Up:
        """Bring up the nodes on an ensured network and home volume."""
        nodes = self.nodes
        files = jupyter_files(spec)
        nodes.progress("starting ipcontroller and jupyterhub on hub")
        nodes.start(
            HUB_HOST,
            "hub",
            "jupyter",
            files,
            mounts=(home_mount(spec),),
            ports=(hub_port_binding(spec),),
        )
        wait_for_hub(nodes, spec)
        make_homes(nodes, spec, self.keys)
        workers = [worker_name(i) for i in range(1, spec.workers.count + 1)]
        self._start_workers(spec, workers, files)
        self._wait_engines(spec, len(workers))
        return Up(
            ssh_port=None,
            summary=f"JupyterHub at {hub_url(nodes, spec)}, "
            f"{spec.workers.count * spec.engines_per_worker} engines",
        )

    def scale(
        self,
        spec: ClusterSpec,
        current: Sequence[str],
        workers: int,
        *,
        force: bool,
        timeout: float | None,
    ) -> None:
        """Add or remove workers (with their engines); return once the controller
        counts exactly the new number of engines, so that connected clients see it
        too. Engines hold no jobs to wait for: ``force`` and ``timeout`` change
        nothing."""
        if workers > len(current):
            start = max((int(h.removeprefix("worker")) for h in current), default=0)
            new = [worker_name(start + i) for i in range(1, workers - len(current) + 1)]
            self._start_workers(spec, new, jupyter_files(spec))
        else:
            for host in current[workers:]:
                self.nodes.progress(f"removing {host} and its engines")
                self.nodes.remove(host)
        self._wait_engines(spec, workers)

    def status(self, spec: ClusterSpec) -> KindStatus:
        return KindStatus(engines=engine_count(self.nodes))

    def _start_workers(
        self, spec: ClusterSpec, hosts: Sequence[str], files: list[FileEntry]
    ) -> None:
        for host in hosts:
            self.nodes.progress(f"starting {spec.engines_per_worker} ipengines on {host}")
            self.nodes.start(
                host,
                "worker",
                "jupyter",
                files,
                env={"HPCBOX_ENGINES": str(spec.engines_per_worker)},
                mounts=(home_mount(spec),),
                limits=NodeLimits.worker(spec),
                script_role="engines",
            )

    def _wait_engines(self, spec: ClusterSpec, workers: int) -> None:
        nodes = self.nodes
        want = workers * spec.engines_per_worker
        nodes.progress(f"waiting for {want} engines to register with the controller")
        deadline = time.monotonic() + nodes.ready_timeout
        seen = -1
        while time.monotonic() < deadline:
            try:
                seen = engine_count(nodes, want=want, wait=min(30, nodes.ready_timeout))
            except HpcboxError:
                time.sleep(1)  # the controller may still be starting
                continue
            if seen == want:
                return
        raise ClusterError(
            f"the controller counts {seen} engines, not {want}, after "
            f"{int(nodes.ready_timeout)} s; hub log:\n{nodes.log_tail(HUB_HOST)}"
        )
