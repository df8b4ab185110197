"""Kind ``jupyter``: the spec and the rendered jupyterhub_config.py (golden file). Its
Kubernetes manifests are chart hpcbox-jupyter's (tests/unit/charts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hpcbox.clusters.render.jupyter import HUB_PORT, front_host, render_jupyterhub_config
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec
from hpcbox.core.errors import InvalidInputError

from .specs import SHA512_HASH

GOLDEN = Path(__file__).parent / "golden_jupyter" / "jupyterhub_config.py.txt"
UPDATE = os.environ.get("HPCBOX_UPDATE_GOLDEN") == "1"


def classroom() -> ClusterSpec:
    return parse_cluster_spec(
        {
            "name": "class",
            "kind": "jupyter",
            "workers": {"count": 3, "cpus": 2, "memory": "2G"},
            "users": [
                {"name": "teacher", "password_hash": SHA512_HASH},
                {"name": "alice", "password_hash": SHA512_HASH},
            ],
        }
    )


def test_jupyterhub_config_matches_its_golden_file() -> None:
    text = render_jupyterhub_config(classroom())
    if UPDATE:
        GOLDEN.write_text(text)
        pytest.fail(f"rewrote {GOLDEN.name}; review the diff and run again")
    assert text == GOLDEN.read_text()


def test_jupyterhub_config_is_python_that_admits_the_spec_users_only() -> None:
    settings: dict[str, Any] = {}

    class Section(dict[str, Any]):
        def __getattr__(self, name: str) -> Any:
            return self.setdefault(name, Section())

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

    config = Section()
    exec(  # noqa: S102 - our own rendered file, as JupyterHub loads it
        compile(render_jupyterhub_config(classroom()), "jupyterhub_config.py", "exec"),
        {"get_config": lambda: config, **settings},
    )
    assert config["Authenticator"]["allowed_users"] == {"alice", "teacher"}
    assert config["JupyterHub"]["authenticator_class"] == "pam"
    assert config["JupyterHub"]["spawner_class"] == "localprocess"
    assert config["JupyterHub"]["bind_url"] == f"http://:{HUB_PORT}"
    assert config["JupyterHub"]["hub_ip"] == "127.0.0.1"


def test_the_spec_defaults_and_checks() -> None:
    spec = classroom()
    assert spec.has_jupyterhub
    assert spec.engines_per_worker == 2
    assert front_host(spec) == "hub"
    slurm = parse_cluster_spec({"name": "lab", "jupyter": {"hub": True}})
    assert slurm.has_jupyterhub and front_host(slurm) == "controller"
    assert not parse_cluster_spec({"name": "lab"}).has_jupyterhub
    more = parse_cluster_spec(
        {"name": "c", "kind": "jupyter", "jupyter": {"engines_per_worker": 3}}
    )
    assert more.engines_per_worker == 3
    for kind in ("jupyter", "mpi"):
        with pytest.raises(InvalidInputError, match="SLURM login node"):
            parse_cluster_spec({"name": "c", "kind": kind, "jupyter": {"hub": True}})
