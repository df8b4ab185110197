"""Kind ``jupyter``: the spec, the rendered jupyterhub_config.py (golden file) and its
Kubernetes manifests (schema-validated, as for SLURM clusters; no API server runs
on the development machine, so nothing is applied)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

import hpcbox.clusters.render
from hpcbox.clusters.render.jupyter import HUB_PORT, front_host, render_jupyterhub_config
from hpcbox.clusters.render.kubernetes import ClusterSecrets, render_kubernetes
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec
from hpcbox.core.errors import InvalidInputError

from .specs import SHA512_HASH

GOLDEN = Path(__file__).parent / "golden_jupyter" / "jupyterhub_config.py.txt"
UPDATE = os.environ.get("HPCBOX_UPDATE_GOLDEN") == "1"
SECRETS = ClusterSecrets(
    munge_key=bytes(range(64)),
    ssh_host_keys={"ssh_host_ed25519_key": "key"},
    admin_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAadmin hpcbox-admin",
)


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


def _manifests(**options: Any) -> list[dict[str, Any]]:
    return render_kubernetes(classroom(), secrets=SECRETS, **options)


@pytest.mark.parametrize("version", [kubernetes_validate.latest_version(), "1.30.0"])
def test_every_manifest_validates(version: str) -> None:
    for manifest in _manifests(ingress_host="class.example.org"):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            first = str(exc).splitlines()[0]
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {first}")


def test_hub_engines_ingress_and_homes() -> None:
    found = {(m["kind"], m["metadata"]["name"]): m for m in _manifests()}
    assert set(found) == {
        ("Namespace", "hpcbox-class"),
        ("PersistentVolumeClaim", "home"),
        ("Secret", "users-shadow"),
        ("ConfigMap", "users"),
        ("ConfigMap", "jupyterhub-config"),
        ("ConfigMap", "node-setup"),
        ("Service", "hub"),
        ("Service", "hub-http"),
        ("Deployment", "hub"),
        ("Deployment", "engines"),
        ("Ingress", "hub"),
    }
    assert found[("PersistentVolumeClaim", "home")]["spec"]["accessModes"] == ["ReadWriteMany"]
    # Engines reach the controller's own ports at the hub pod's address.
    assert found[("Service", "hub")]["spec"]["clusterIP"] == "None"
    hub = found[("Deployment", "hub")]["spec"]["template"]["spec"]
    assert hub["hostname"] == "hub"
    assert hub["containers"][0]["image"].startswith("hpcbox/jupyter:")
    engines = found[("Deployment", "engines")]["spec"]
    assert engines["replicas"] == 3
    container = engines["template"]["spec"]["containers"][0]
    assert {"name": "HPCBOX_ENGINES", "value": "2"} in container["env"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "2048Mi"}
    backend = found[("Ingress", "hub")]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend == {"service": {"name": "hub-http", "port": {"number": HUB_PORT}}}
    # Password hashes travel in the Secret only.
    for (kind, _), manifest in found.items():
        if kind != "Secret":
            assert SHA512_HASH not in str(manifest)


def test_ingress_host_is_checked() -> None:
    ingress = [m for m in _manifests(ingress_host="nb.example.org") if m["kind"] == "Ingress"]
    assert ingress[0]["spec"]["rules"][0]["host"] == "nb.example.org"
    with pytest.raises(InvalidInputError) as info:
        _manifests(ingress_host="bad host; rm")
    assert info.value.field == "ingress_host"


def test_the_pods_run_the_nodes_one_script_which_interpolates_nothing() -> None:
    script = (Path(hpcbox.clusters.render.__file__).parent / "hpcbox-node.sh").read_text()
    found = {(m["kind"], m["metadata"]["name"]): m for m in _manifests()}
    assert found[("ConfigMap", "node-setup")]["data"] == {"hpcbox-node": script}
    for name, role in (("hub", "hub"), ("engines", "engines")):
        (container,) = found[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
        assert container["command"][-2:] == ["/run/hpcbox/setup/hpcbox-node", role]
        assert {"name": "HPCBOX_MOUNTS", "value": "/run/hpcbox"} in container["env"]
    assert "class" not in script and "alice" not in script
    assert script.startswith("#!/bin/bash\n")
