"""``helm`` as a subprocess: template, upgrade --install, uninstall, get values."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hpcbox.core.errors import PermanentError
from hpcbox.infra.kube.api import KubeContext
from hpcbox.infra.kube.tools import Completed, run

__all__ = ["Helm"]

Runner = Callable[..., Completed]


class Helm:
    """``binary`` (see :func:`~hpcbox.infra.kube.tools.find_tool`) on ``context``.
    ``timeout``: seconds one command may take (an install waits for nothing: the
    caller waits for the pods itself)."""

    def __init__(
        self,
        binary: str,
        context: KubeContext | None = None,
        *,
        timeout: float = 300.0,
        runner: Runner = run,
    ) -> None:
        self.binary = binary
        self.context = context or KubeContext()
        self.timeout = timeout
        self._run = runner

    def _argv(self, *args: str) -> list[str]:
        argv = [self.binary, *args]
        if self.context.kubeconfig:
            argv += ["--kubeconfig", self.context.kubeconfig]
        if self.context.context:
            argv += ["--kube-context", self.context.context]
        return argv

    def _check(self, argv: Sequence[str], done: Completed) -> Completed:
        if done.returncode != 0:
            raise PermanentError(f"helm {' '.join(argv[1:3])} failed:\n{done.errors()}")
        return done

    def _with_values(self, values: Mapping[str, Any], args: Callable[[str], list[str]]) -> str:
        # The values may hold password hashes: a private file, removed at once.
        with tempfile.TemporaryDirectory(prefix="hpcbox-helm-") as folder:
            path = Path(folder) / "values.yaml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                yaml.safe_dump(dict(values), handle, sort_keys=False)
            argv = args(str(path))
            return self._check(argv, self._run(argv, timeout=self.timeout)).text()

    def template(self, release: str, chart: str, namespace: str, values: Mapping[str, Any]) -> str:
        return self._with_values(
            values,
            lambda path: [self.binary, "template", release, chart, "-n", namespace, "-f", path],
        )

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
        extra: list[str] = ["--reuse-values"] if reuse_values else []
        for key, value in (set_values or {}).items():
            extra += ["--set", f"{key}={value}"]
        base = ["upgrade", "--install", release, chart, "-n", namespace, "--create-namespace"]
        if values is None:
            argv = self._argv(*base, *extra)
            self._check(argv, self._run(argv, timeout=self.timeout))
        else:
            self._with_values(values, lambda path: self._argv(*base, "-f", path, *extra))

    def uninstall(self, release: str, namespace: str) -> bool:
        argv = self._argv("uninstall", release, "-n", namespace)
        done = self._run(argv, timeout=self.timeout)
        if done.returncode != 0 and "not found" in done.errors().lower():
            return False
        self._check(argv, done)
        return True

    def get_values(self, release: str, namespace: str) -> dict[str, Any] | None:
        argv = self._argv("get", "values", release, "-n", namespace, "-o", "json")
        done = self._run(argv, timeout=self.timeout)
        if done.returncode != 0 and "not found" in done.errors().lower():
            return None
        data = json.loads(self._check(argv, done).text() or "null")
        return data if isinstance(data, dict) else {}
