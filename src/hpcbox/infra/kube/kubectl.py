"""``kubectl`` as a subprocess: get (as JSON), exec, delete."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from hpcbox.core.errors import PermanentError
from hpcbox.infra.kube.api import KubeContext
from hpcbox.infra.kube.tools import Completed, run
from hpcbox.infra.runtimes import ExecResult

__all__ = ["Kubectl"]

Runner = Callable[..., Completed]


class Kubectl:
    def __init__(
        self,
        binary: str,
        context: KubeContext | None = None,
        *,
        timeout: float = 60.0,
        runner: Runner = run,
    ) -> None:
        self.binary = binary
        self.context = context or KubeContext()
        self.timeout = timeout
        self._run = runner

    def _argv(self, *args: str) -> list[str]:
        argv = [self.binary]
        if self.context.kubeconfig:
            argv += ["--kubeconfig", self.context.kubeconfig]
        if self.context.context:
            argv += ["--context", self.context.context]
        return [*argv, *args]

    def get(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"]
        args += ["-n", namespace] if kind not in ("nodes", "node", "namespaces") else []
        args += ["-l", selector] if selector else []
        argv = self._argv(*args)
        done = self._run(argv, timeout=self.timeout)
        if done.returncode != 0:
            raise PermanentError(f"kubectl get {kind} failed:\n{done.errors()}")
        items = json.loads(done.text() or "{}").get("items", [])
        return [item for item in items if isinstance(item, dict)]

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
        args = ["exec", "-n", namespace]
        args += ["-i"] if stdin is not None else []
        args += ["-c", container] if container else []
        done = self._run(self._argv(*args, pod, "--", *argv), stdin=stdin, timeout=timeout)
        return ExecResult(done.returncode, done.stdout, done.stderr)

    def delete(self, kind: str, namespace: str, selector: str) -> None:
        argv = self._argv(
            "delete", kind, "-n", namespace, "-l", selector, "--ignore-not-found", "--wait=false"
        )
        done = self._run(argv, timeout=self.timeout)
        if done.returncode != 0:
            raise PermanentError(f"kubectl delete {kind} failed:\n{done.errors()}")
