"""kopf's own connection to the API server: the operator's registry has a login
handler (tests/unit/operator/test_operator_controller.py checks it is there; kopf's defaults are on its global registry and need a client library
hpcbox does not install; without one, kopf stopped at once on a real cluster with
"LoginError: Ran out of valid credentials")."""

from __future__ import annotations

import logging
from pathlib import Path

import kopf
import pytest
import yaml

from hpcbox.operator.handlers import login


def test_login_reads_the_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://192.0.2.2:6443"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    info = login(settings=kopf.OperatorSettings(), logger=logging.getLogger("test"))
    assert info is not None
    assert (info.server, info.token) == ("https://192.0.2.2:6443", "t0ken")
