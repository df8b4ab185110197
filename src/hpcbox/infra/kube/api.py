"""The seams: what hpcbox asks of helm and kubectl (fakes implement these in tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hpcbox.infra.runtimes import ExecResult

__all__ = ["HelmApi", "KubeContext", "KubectlApi"]


@dataclass(frozen=True)
class KubeContext:
    """Which cluster: a kubeconfig file (None: ``$KUBECONFIG``, else ``~/.kube/config``)
    and a context in it (None: its current context)."""

    kubeconfig: str | None = None
    context: str | None = None


class HelmApi(Protocol):
    def template(self, release: str, chart: str, namespace: str, values: Mapping[str, Any]) -> str:
        """``helm template``: the manifests, as YAML, without a cluster."""
        ...

    def upgrade_install(
        self,
        release: str,
        chart: str,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        *,
        reuse_values: bool = False,
        set_values: Mapping[str, str] | None = None,
    ) -> None:
        """``helm upgrade --install`` (the namespace created if missing)."""
        ...

    def uninstall(self, release: str, namespace: str) -> bool:
        """``helm uninstall``; False when there was no such release."""
        ...

    def get_values(self, release: str, namespace: str) -> dict[str, Any] | None:
        """The release's user-supplied values; None when there is no such release."""
        ...


class KubectlApi(Protocol):
    def get(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        """The objects of ``kind`` (``pods``, ``pvc``, ``secrets``, ``nodes``...), as
        ``kubectl get -o json`` gives their items."""
        ...

    def exec(
        self,
        pod: str,
        argv: Sequence[str],
        *,
        namespace: str,
        container: str | None = None,
        stdin: bytes | None = None,
        timeout: float | None = 60.0,
    ) -> ExecResult:
        """``kubectl exec`` (no shell); the command's exit code, output and errors."""
        ...

    def delete(self, kind: str, namespace: str, selector: str) -> None:
        """``kubectl delete KIND -l SELECTOR`` (nothing there is no error)."""
        ...
