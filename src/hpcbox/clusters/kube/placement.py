"""Which Kubernetes cluster (kubeconfig, context) and namespace a cluster lives in:
chosen at ``cluster up``, kept beside the cluster's keys for the later commands."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from hpcbox.core.errors import InvalidInputError, NotFoundError
from hpcbox.infra.kube import KubeContext

__all__ = ["KubePlacement"]

_FILE = "kubernetes.json"


def _namespace_ok(name: str) -> bool:
    import re

    return re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name) is not None


@dataclass(frozen=True)
class KubePlacement:
    """``namespace``: one release of one cluster per namespace (the charts' objects
    have fixed names); default ``hpcbox-<cluster>``. ``kubeconfig``: None for
    ``$KUBECONFIG`` or ``~/.kube/config``; ``context``: None for its current one."""

    namespace: str
    kubeconfig: str | None = None
    context: str | None = None

    def __post_init__(self) -> None:
        if not _namespace_ok(self.namespace):
            raise InvalidInputError("not a namespace name", field="--namespace")

    @classmethod
    def for_cluster(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> KubePlacement:
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
        if kubeconfig:
            kubeconfig = str(Path(kubeconfig).expanduser().absolute())
        return cls(namespace or f"hpcbox-{name}", kubeconfig, context)

    @property
    def context_(self) -> KubeContext:
        return KubeContext(self.kubeconfig, self.context)

    def save(self, home: Path, cluster: str) -> None:
        folder = home / "clusters" / cluster
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / _FILE).write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, home: Path, cluster: str) -> KubePlacement:
        path = home / "clusters" / cluster / _FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"cluster {cluster} has no Kubernetes placement ({path} is missing)"
            ) from exc
        return cls(data["namespace"], data.get("kubeconfig"), data.get("context"))
