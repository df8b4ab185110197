"""The Helm charts under charts/: ``helm lint --strict`` is clean, ``helm template``
renders what hpcbox's own renderers render, and the values schemas refuse bad input.

- hpcbox-slurm and hpcbox-jupyter run the nodes' one start-up script (their
  ``files/hpcbox-node.sh`` is byte-identical to hpcbox's), and their slurm.conf,
  cgroup.conf, slurmdbd.conf, hostfile, accounts and jupyterhub_config.py are the
  bytes :mod:`hpcbox.clusters.render` gives the equivalent ClusterSpec
  (:mod:`hpcbox.clusters.render.helm`'s ``slurm_values`` and ``jupyter_values`` are
  the mapping the charts' READMEs document, what ``cluster render --target helm``
  writes and ``cluster up --runtime kubernetes`` installs).
- Images are ``hpcbox/<role>:<appVersion>``; secrets are only in Secrets.
- hpcbox-operator's CRD is deploy/kubernetes's, and its RBAC is least privilege.

Needs helm: ``$HPCBOX_HELM``, else the binary ``scripts/kube.sh`` installs
(``${XDG_CACHE_HOME:-~/.cache}/hpcbox/kube/bin/helm``). Without it every test here
fails (never skips) with the command that builds it. No API server is needed: the
manifests are checked against the Kubernetes schemas (``kubernetes-validate``), not
applied.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

import hpcbox.clusters.render
from hpcbox import __version__
from hpcbox.clusters.images.roles import ROLES, repository, version_tag
from hpcbox.clusters.render.accounts import (
    SYSTEM_NAMES,
    accounts,
    authorized_keys,
    group_lines,
    passwd_lines,
    sacctmgr_commands,
    shadow_lines,
)
from hpcbox.clusters.render.helm import (
    HelmOptions,
    chart_name,
    helm_values,
    jupyter_values,
    slurm_values,
    values_yaml,
)
from hpcbox.clusters.render.jupyter import render_jupyterhub_config
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.render.slurm import (
    render_cgroup_conf,
    render_slurm_conf,
    render_slurmdbd_conf,
    slurmd_conf_arg,
)
from hpcbox.clusters.spec import RESERVED_USERS, ClusterSpec, parse_cluster_spec, parse_cluster_yaml
from hpcbox.core.errors import InvalidInputError
from tests.unit.render.specs import ED25519_KEY, SHA512_HASH, accounting, basic, mpich

ROOT = Path(__file__).resolve().parents[3]
CHARTS = ROOT / "charts"
NAMES = ("hpcbox-slurm", "hpcbox-jupyter", "hpcbox-operator")
NODE_SCRIPT = Path(hpcbox.clusters.render.__file__).parent / "hpcbox-node.sh"
CRD = ROOT / "deploy" / "kubernetes" / "01-crd-slurmjob.yaml"
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]

# Read at import: the autouse fixture in tests/conftest.py clears HPCBOX_* variables.
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
HELM = Path(os.environ.get("HPCBOX_HELM") or _CACHE / "hpcbox" / "kube" / "bin" / "helm")
BUILD_HELM = (
    "GOBIN=${XDG_CACHE_HOME:-$HOME/.cache}/hpcbox/kube/bin "
    "go install helm.sh/helm/v4/cmd/helm@v4.3.2"
)
BOB_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7bob bob@desk"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        pytest.fail(
            f"helm is not at {HELM} (set HPCBOX_HELM to a helm binary, or build it: {BUILD_HELM})"
        )
    result = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _write_values(values: Mapping[str, Any], folder: Path) -> list[str]:
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return ["-f", str(path)]


@functools.cache
def _template_cached(chart: str, values_json: str, namespace: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        args = _write_values(json.loads(values_json), Path(folder))
        return helm("template", "rel", str(CHARTS / chart), "-n", namespace, *args).stdout


def template(
    chart: str, values: Mapping[str, Any] | None = None, *, namespace: str = "hpcbox-test"
) -> list[dict[str, Any]]:
    text = _template_cached(chart, json.dumps(values or {}, sort_keys=True), namespace)
    return [d for d in yaml.safe_load_all(text) if d]


def refused(chart: str, values: Mapping[str, Any], tmp_path: Path) -> str:
    """helm template's error for ``values`` (the test fails if helm accepts them)."""
    result = helm(
        "template", "rel", str(CHARTS / chart), *_write_values(values, tmp_path), check=False
    )
    assert result.returncode != 0, f"helm accepted {values}"
    return result.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield from doc["spec"]["template"]["spec"]["containers"]


def secret_text(docs: list[dict[str, Any]], name: str, key: str) -> str:
    return base64.b64decode(by_kind(docs, "Secret")[name]["data"][key]).decode()


# -- a ClusterSpec as values: hpcbox.clusters.render.helm, the mapping the READMEs document


TWO_USERS = {
    "users": [
        {"name": "alice", "uid": 2000, "ssh_keys": [ED25519_KEY], "password_hash": SHA512_HASH},
        {"name": "bob", "uid": 2001, "gid": 2000, "ssh_keys": [BOB_KEY]},
    ]
}
SLURM_VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "scale-3": {"workers": {"count": 3, "cpus": 2, "memory": 1024}},
    "scale-0": {"workers": {"count": 0, "cpus": 1, "memory": 256}},
    "two-users": TWO_USERS,
    "keep-homes": {"keepHomes": True},
    "drop-homes": {"keepHomes": False, "accounting": False},
    "nfs": {"storage": {"storageClass": "", "homeSize": "50Gi", "nfs": {"server": "10.0.0.5", "path": "/exports/homes"}}},
    "nodeport": {"login": {"serviceType": "NodePort", "nodePort": 30022}, "mpi": "mpich"},
    "images": {
        "image": {"prefix": "reg.example:5000/hpc", "tag": "dev", "pullPolicy": "Always"},
        "images": {
            "slurmController": {"repository": "other/ctl", "tag": "x1"},
            "slurmWorker": {"repository": "", "tag": ""},
            "slurmdbd": {"repository": "", "tag": ""},
            "mariadb": {"repository": "", "tag": ""},
        },
    },
    "spec-accounting": slurm_values(accounting()),
}  # fmt: skip


# -- files shared with hpcbox -------------------------------------------------------


@pytest.mark.parametrize("chart", ["hpcbox-slurm", "hpcbox-jupyter"])
def test_the_charts_run_hpcbox_s_one_node_script(chart: str) -> None:
    copy = CHARTS / chart / "files" / "hpcbox-node.sh"
    assert copy.read_bytes() == NODE_SCRIPT.read_bytes(), (
        f"{copy} differs from {NODE_SCRIPT}: cp {NODE_SCRIPT.relative_to(ROOT)} "
        f"{copy.relative_to(ROOT)}"
    )
    setup = by_kind(template(chart), "ConfigMap")["node-setup"]
    assert setup["data"]["hpcbox-node"] == NODE_SCRIPT.read_text()


def test_the_charts_name_exactly_the_images_hpcbox_builds() -> None:
    """Every image a chart names by default is a ``hpcbox/<role>:<version>`` tag that
    ``hpcbox images build`` makes; together they are every role but the base."""
    named = {c["image"] for chart in NAMES for c in containers(template(chart))}
    built = {version_tag(role) for role in ROLES}
    assert named <= built, named - built
    assert named == {version_tag(role) for role in ROLES if role != "base"}
    text = (ROOT / "deploy" / "kubernetes" / "03-deployment.yaml").read_text()
    (deploy,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == version_tag("operator")
    assert container["command"] == ["python", "-m", "hpcbox.operator"]


def test_the_operator_chart_s_crd_is_deploy_s() -> None:
    chart_crd = CHARTS / "hpcbox-operator" / "crds" / "slurmjobs.hpcbox.io.yaml"
    assert yaml.safe_load(chart_crd.read_text()) == yaml.safe_load(CRD.read_text())
    rendered = helm("template", "rel", str(CHARTS / "hpcbox-operator"), "--include-crds").stdout
    crds = [
        d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "CustomResourceDefinition"
    ]
    assert [c["metadata"]["name"] for c in crds] == ["slurmjobs.hpcbox.io"]


@pytest.mark.parametrize("chart", NAMES)
def test_the_charts_version_is_hpcbox_s(chart: str) -> None:
    meta = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())
    assert meta["appVersion"] == __version__
    for required in ("values.yaml", "values.schema.json", "README.md", "templates/NOTES.txt"):
        assert (CHARTS / chart / required).is_file(), required


# -- lint and schema validity ---------------------------------------------------------


@pytest.mark.parametrize("chart", NAMES)
def test_helm_lint_strict_is_clean(chart: str) -> None:
    result = helm("lint", "--strict", str(CHARTS / chart))
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_helm_lint_strict_with_values(tmp_path: Path) -> None:
    for values in (TWO_USERS, SLURM_VARIANTS["nfs"], SLURM_VARIANTS["drop-homes"]):
        helm("lint", "--strict", str(CHARTS / "hpcbox-slurm"), *_write_values(values, tmp_path))


@pytest.mark.parametrize("chart", NAMES)
def test_values_yaml_satisfies_its_schema(chart: str) -> None:
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHARTS / chart / "values.yaml").read_text()), schema)


@pytest.mark.parametrize("chart", ["hpcbox-slurm", "hpcbox-jupyter"])
def test_the_schema_reserves_hpcbox_s_system_names(chart: str) -> None:
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    reserved = set(schema["properties"]["users"]["items"]["properties"]["name"]["not"]["enum"])
    assert reserved >= SYSTEM_NAMES | RESERVED_USERS


CASES: list[tuple[str, str, dict[str, dict[str, Any]]]] = [
    ("slurm", "hpcbox-slurm", SLURM_VARIANTS),
    ("jupyter", "hpcbox-jupyter", {"defaults": {}, "two-users": TWO_USERS, "drop-homes": {"keepHomes": False}}),
    ("operator", "hpcbox-operator", {"defaults": {}, "all": {"watch": {"namespaces": [], "allNamespaces": True}}}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("chart", "values"),
    [(chart, values) for _, chart, variants in CASES for values in variants.values()],
    ids=[f"{short}-{name}" for short, _, variants in CASES for name in variants],
)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_manifest_is_schema_valid(
    chart: str, values: dict[str, Any], version: str
) -> None:
    docs = template(chart, values)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
        if doc["kind"] not in ("PersistentVolume", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "hpcbox-test", doc["metadata"]["name"]


# -- hpcbox-slurm -----------------------------------------------------------------------


def test_slurm_defaults_render_every_part() -> None:
    docs = template("hpcbox-slurm")
    kinds: dict[str, set[str]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    assert kinds == {
        "Secret": {
            "munge-key",
            "ssh-host-keys",
            "admin-key",
            "users-shadow",
            "mariadb-credentials",
            "slurmdbd-conf",
        },
        "ConfigMap": {"slurm-config", "users", "mpi-hostfile", "node-setup", "sshd-config"},
        "PersistentVolumeClaim": {"home", "controller-state", "mariadb-data"},
        "Service": {"controller", "login", "worker", "mariadb", "slurmdbd"},
        "Deployment": {"controller", "mariadb", "slurmdbd"},
        "StatefulSet": {"worker"},
    }
    workers = by_kind(docs, "StatefulSet")["worker"]
    assert workers["spec"]["replicas"] == 3 and workers["spec"]["serviceName"] == "worker"
    headless = by_kind(docs, "Service")["worker"]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert by_kind(docs, "Service")["login"]["spec"]["ports"][0]["port"] == 22


def test_slurm_images_are_hpcbox_roles_at_the_app_version() -> None:
    docs = template("hpcbox-slurm")
    images = {c["name"]: c["image"] for c in containers(docs)}
    assert images == {
        "controller": f"{repository('slurm-controller')}:{__version__}",
        "slurmd": f"{repository('slurm-worker')}:{__version__}",
        "slurmdbd": f"{repository('slurmdbd')}:{__version__}",
        "mariadb": f"{repository('mariadb')}:{__version__}",
    }
    assert {c["imagePullPolicy"] for c in containers(docs)} == {"IfNotPresent"}
    overridden = {
        c["name"]: c["image"]
        for c in containers(template("hpcbox-slurm", SLURM_VARIANTS["images"]))
    }
    assert overridden == {
        "controller": "other/ctl:x1",
        "slurmd": "reg.example:5000/hpc/slurm-worker:dev",
        "slurmdbd": "reg.example:5000/hpc/slurmdbd:dev",
        "mariadb": "reg.example:5000/hpc/mariadb:dev",
    }  # fmt: skip


def test_every_node_runs_the_script_for_its_role() -> None:
    for container in containers(template("hpcbox-slurm")):
        role = {"slurmd": "worker"}.get(container["name"], container["name"])
        assert container["command"] == [
            "/usr/bin/tini",
            "--",
            "/bin/bash",
            "/run/hpcbox/setup/hpcbox-node",
            role,
        ]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HPCBOX_MOUNTS"] == "/run/hpcbox" and env["HPCBOX_ROLE"] == role


@pytest.mark.parametrize("variant", ["defaults", "two-users", "spec-accounting", "nodeport"])
def test_no_secret_outside_secrets(variant: str) -> None:
    docs = template("hpcbox-slurm", SLURM_VARIANTS[variant])
    munge = by_kind(docs, "Secret")["munge-key"]["data"]["munge.key"]
    assert len(base64.b64decode(munge)) == 1024
    secrets = [munge, secret_text(docs, "ssh-host-keys", "ssh_host_ecdsa_key").strip()]
    assert secret_text(docs, "ssh-host-keys", "ssh_host_ecdsa_key").startswith(
        "-----BEGIN EC PRIVATE KEY-----"
    )
    if "mariadb-credentials" in by_kind(docs, "Secret"):
        secrets.append(secret_text(docs, "mariadb-credentials", "password"))
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for secret in secrets:
            assert secret not in text, f"{doc['kind']} {doc['metadata']['name']} has a secret"
        assert "PRIVATE KEY" not in text and "StoragePass" not in text and "$6$" not in text
        for value in (doc.get("data") or {}).values():
            assert munge not in value


def test_secrets_are_generated_per_release() -> None:
    first = template("hpcbox-slurm", namespace="a")
    second = template("hpcbox-slurm", namespace="b")
    for name, key in [("munge-key", "munge.key"), ("mariadb-credentials", "password")]:
        assert (
            by_kind(first, "Secret")[name]["data"][key]
            != by_kind(second, "Secret")[name]["data"][key]
        )
    # slurmdbd.conf and MariaDB get the same password.
    password = secret_text(first, "mariadb-credentials", "password")
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert f"StoragePass={password}\n" in secret_text(first, "slurmdbd-conf", "slurmdbd.conf")


def test_secrets_are_kept_across_upgrades() -> None:
    """Each generated secret is read back with `lookup` before any is generated."""
    text = (CHARTS / "hpcbox-slurm" / "templates" / "secrets.yaml").read_text()
    for name in ("munge-key", "ssh-host-keys", "mariadb-credentials"):
        assert f'lookup "v1" "Secret" .Release.Namespace "{name}"' in text
    assert text.count("randBytes 1024") == 1 and text.count('genPrivateKey "ecdsa"') == 1


@pytest.mark.parametrize("spec", [basic(), accounting(), mpich()], ids=lambda s: s.name)
def test_slurm_files_are_hpcbox_s(spec: ClusterSpec) -> None:
    docs = template("hpcbox-slurm", slurm_values(spec))
    config = by_kind(docs, "ConfigMap")
    assert config["slurm-config"]["data"] == {
        "slurm.conf": render_slurm_conf(spec),
        "cgroup.conf": render_cgroup_conf(spec),
    }
    hosts = [f"worker-{i}.worker" for i in range(spec.workers.count)]
    assert config["mpi-hostfile"]["data"]["hostfile"] == render_hostfile(
        hosts, slots=spec.workers.cpus, flavour=spec.mpi
    )
    users = accounts(spec)
    data = config["users"]["data"]
    assert data["passwd"] == passwd_lines(users) and data["group"] == group_lines(users)
    for account in users:
        assert data[f"authorized_keys.{account.name}"] == authorized_keys(account)
    assert secret_text(docs, "users-shadow", "shadow") == shadow_lines(users)
    (worker,) = [c for c in containers(docs) if c["name"] == "slurmd"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["HPCBOX_SLURMD_CONF"] == slurmd_conf_arg(spec)
    if spec.accounting:
        commands = sacctmgr_commands(spec, cluster=spec.name)
        assert data["sacctmgr"] == "".join(" ".join(argv) + "\n" for argv in commands)
        password = secret_text(docs, "mariadb-credentials", "password")
        assert secret_text(docs, "slurmdbd-conf", "slurmdbd.conf") == render_slurmdbd_conf(
            spec, db_password=password
        )
    else:
        assert "sacctmgr" not in data and "mariadb" not in by_kind(docs, "Deployment")


@pytest.mark.parametrize("count", [0, 1, 3, 7])
def test_workers_and_hostfile_follow_the_count(count: int) -> None:
    docs = template("hpcbox-slurm", {"workers": {"count": count, "cpus": 2, "memory": 1024}})
    assert by_kind(docs, "StatefulSet")["worker"]["spec"]["replicas"] == count
    hostfile = by_kind(docs, "ConfigMap")["mpi-hostfile"]["data"]["hostfile"]
    assert hostfile == "".join(f"worker-{i}.worker slots=2\n" for i in range(count))
    # The hostfile is a directory mount, so an upgrade's new ConfigMap reaches running pods.
    for container in containers(docs):
        for mount in container["volumeMounts"]:
            if mount["name"] == "mpi":
                assert mount["mountPath"] == "/run/hpcbox/mpi" and "subPath" not in mount


def test_two_users_with_their_keys() -> None:
    docs = template("hpcbox-slurm", TWO_USERS)
    data = by_kind(docs, "ConfigMap")["users"]["data"]
    assert data["passwd"] == (
        "alice:x:2000:2000::/home/alice:/bin/bash\nbob:x:2001:2000::/home/bob:/bin/bash\n"
    )
    assert data["group"] == "alice:x:2000:\n"
    assert data["authorized_keys.alice"] == ED25519_KEY + "\n"
    assert data["authorized_keys.bob"] == BOB_KEY + "\n"
    assert secret_text(docs, "users-shadow", "shadow") == (
        f"alice:{SHA512_HASH}::0:99999:7:::\nbob:*::0:99999:7:::\n"
    )
    volumes = by_kind(docs, "Deployment")["controller"]["spec"]["template"]["spec"]["volumes"]
    (users,) = [v for v in volumes if v["name"] == "users"]
    paths = {item["path"] for item in users["configMap"]["items"]}
    assert paths == {"passwd", "group", "authorized_keys/alice", "authorized_keys/bob", "sacctmgr"}


@pytest.mark.parametrize("keep", [True, False])
def test_keep_homes(keep: bool) -> None:
    docs = template("hpcbox-slurm", {"keepHomes": keep})
    claims = by_kind(docs, "PersistentVolumeClaim")
    annotations = claims["home"]["metadata"].get("annotations") or {}
    assert (annotations.get("helm.sh/resource-policy") == "keep") is keep
    assert claims["home"]["spec"]["accessModes"] == ["ReadWriteMany"]
    # A claim the chart creates, never a volumeClaimTemplate.
    assert "volumeClaimTemplates" not in by_kind(docs, "StatefulSet")["worker"]["spec"]
    for name in ("controller-state", "mariadb-data"):
        assert "annotations" not in claims[name]["metadata"]


def test_storage_class_and_size() -> None:
    docs = template(
        "hpcbox-slurm",
        {
            "storage": {
                "storageClass": "fast-rwx",
                "homeSize": "3Gi",
                "nfs": {"server": "", "path": ""},
            }
        },
    )
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert {c["spec"].get("storageClassName") for c in claims.values()} == {"fast-rwx"}
    assert claims["home"]["spec"]["resources"]["requests"]["storage"] == "3Gi"
    default = by_kind(template("hpcbox-slurm"), "PersistentVolumeClaim")
    assert all("storageClassName" not in c["spec"] for c in default.values())
    nfs = template("hpcbox-slurm", SLURM_VARIANTS["nfs"])
    (volume,) = by_kind(nfs, "PersistentVolume").values()
    assert volume["spec"]["nfs"] == {"server": "10.0.0.5", "path": "/exports/homes"}
    home = by_kind(nfs, "PersistentVolumeClaim")["home"]["spec"]
    assert home["volumeName"] == volume["metadata"]["name"] and home["storageClassName"] == ""


def test_defaults_fit_a_two_core_machine() -> None:
    docs = template("hpcbox-slurm")
    millicores = 0
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                cpu = container["resources"]["requests"]["cpu"]
                each = int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)
                millicores += each * doc["spec"]["replicas"]
    assert millicores <= 500  # controller + mariadb + slurmdbd + 3 workers
    (worker,) = [c for c in containers(docs) if c["name"] == "slurmd"]
    assert worker["resources"]["limits"] == {"cpu": "1", "memory": "768Mi"}


# -- hpcbox-jupyter ---------------------------------------------------------------------


def test_jupyter_matches_hpcbox_s_renderer() -> None:
    spec = parse_cluster_spec(
        {
            "name": "nb",
            "kind": "jupyter",
            "workers": {"count": 3, "cpus": 2, "memory": "1G"},
            "jupyter": {"engines_per_worker": 4},
            "users": [
                {"name": "zoe", "password_hash": SHA512_HASH},
                {"name": "alice", "uid": 2500, "ssh_keys": [ED25519_KEY]},
            ],
        }
    )
    docs = template("hpcbox-jupyter", jupyter_values(spec))
    config = by_kind(docs, "ConfigMap")
    assert config["jupyterhub-config"]["data"]["jupyterhub_config.py"] == (
        render_jupyterhub_config(spec)
    )
    users = accounts(spec)
    assert config["users"]["data"] == {"passwd": passwd_lines(users), "group": group_lines(users)}
    assert secret_text(docs, "users-shadow", "shadow") == shadow_lines(users)
    engines = by_kind(docs, "Deployment")["engines"]
    assert engines["spec"]["replicas"] == 3
    (container,) = engines["spec"]["template"]["spec"]["containers"]
    assert {"name": "HPCBOX_ENGINES", "value": "4"} in container["env"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1024Mi"}
    assert {c["image"] for c in containers(docs)} == {f"{repository('jupyter')}:{__version__}"}
    hub = by_kind(docs, "Deployment")["hub"]["spec"]["template"]["spec"]
    assert hub["hostname"] == "hub"
    assert hub["containers"][0]["command"][-1] == "hub" and container["command"][-1] == "engines"
    assert set(by_kind(docs, "Service")) == {"hub", "hub-http"}
    assert set(by_kind(docs, "Ingress")) == {"hub"}


def test_jupyter_engines_default_to_the_cpus() -> None:
    docs = template("hpcbox-jupyter", {"workers": {"count": 5, "cpus": 3, "memory": 256}})
    engines = by_kind(docs, "Deployment")["engines"]
    assert engines["spec"]["replicas"] == 5
    assert {"name": "HPCBOX_ENGINES", "value": "3"} in engines["spec"]["template"]["spec"]["containers"][0]["env"]  # fmt: skip


def test_jupyter_engines_wait_for_the_hub_s_fresh_connection_files() -> None:
    """Kept homes hold the previous controller's files: engines start once the hub
    listens, which it does only after ipcontroller wrote new ones."""
    engines = by_kind(template("hpcbox-jupyter", {}), "Deployment")["engines"]
    (init,) = engines["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][-1] == "until (exec 3<>/dev/tcp/hub/8000) 2>/dev/null; do sleep 1; done"
    assert init["resources"]["requests"] == {"cpu": "10m", "memory": "16Mi"}


@pytest.mark.parametrize("keep", [True, False])
def test_jupyter_keep_homes(keep: bool) -> None:
    home = by_kind(template("hpcbox-jupyter", {"keepHomes": keep}), "PersistentVolumeClaim")["home"]
    annotations = home["metadata"].get("annotations") or {}
    assert (annotations.get("helm.sh/resource-policy") == "keep") is keep


# -- hpcbox-operator --------------------------------------------------------------------


def _rules(docs: list[dict[str, Any]], kind: str) -> dict[str, list[str]]:
    return {
        res: sorted(rule["verbs"])
        for d in docs
        if d["kind"] == kind and "discovery" not in d["metadata"]["name"]
        for rule in d["rules"]
        for res in rule["resources"]
    }


OPERATOR_RULES = {
    "slurmjobs": ["get", "list", "patch", "watch"],
    "slurmjobs/status": ["get", "patch"],
    "secrets": ["get"],
    "configmaps": ["get"],
    "pods": ["create", "delete", "get"],
    "events": ["create"],
}


def test_operator_rbac_is_least_privilege() -> None:
    docs = template("hpcbox-operator")
    assert _rules(docs, "Role") == OPERATOR_RULES and _rules(docs, "ClusterRole") == {}
    (discovery,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert discovery["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    (deployment,) = by_kind(docs, "Deployment").values()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"hpcbox/operator:{__version__}"
    assert container["command"] == ["python", "-m", "hpcbox.operator"]
    assert container["args"][:2] == ["--namespace", "hpcbox-test"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    # The operator's own parser takes the arguments.
    from hpcbox.operator.__main__ import parse_args

    args = parse_args(container["args"])
    assert args.namespaces == ["hpcbox-test"] and args.log_image == "busybox:1.36"


def test_operator_watches_namespaces_or_everything() -> None:
    docs = template(
        "hpcbox-operator", {"watch": {"namespaces": ["a", "b"], "allNamespaces": False}}
    )
    assert sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role") == ["a", "b"]
    (deployment,) = by_kind(docs, "Deployment").values()
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][:4] == [
        "--namespace", "a", "--namespace", "b"
    ]  # fmt: skip
    everything = template("hpcbox-operator", {"watch": {"namespaces": [], "allNamespaces": True}})
    assert _rules(everything, "ClusterRole") == OPERATOR_RULES and _rules(everything, "Role") == {}
    (deployment,) = by_kind(everything, "Deployment").values()
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_operator_target_secret() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    values = {
        "target": {
            "host": "login.hpcbox-demo.svc.cluster.local",
            "port": 22,
            "user": "alice",
            "hostKey": "",
            "secretName": "slurm-alice",
            "privateKey": key,
        }
    }
    docs = template("hpcbox-operator", values)
    secret = by_kind(docs, "Secret")["slurm-alice"]
    assert secret["type"] == "kubernetes.io/ssh-auth"
    assert base64.b64decode(secret["data"]["ssh-privatekey"]).decode() == key + "\n"
    assert base64.b64decode(secret["data"]["user"]).decode() == "alice"
    assert "Secret" not in {d["kind"] for d in template("hpcbox-operator")}
    for doc in docs:
        if doc["kind"] != "Secret":
            assert "PRIVATE KEY" not in yaml.safe_dump(doc)


# -- the schemas refuse bad values ----------------------------------------------------

BAD_SLURM: dict[str, dict[str, Any]] = {
    "negative workers": {"workers": {"count": -1, "cpus": 1, "memory": 512}},
    "too many workers": {"workers": {"count": 65, "cpus": 1, "memory": 512}},
    "zero cpus": {"workers": {"count": 1, "cpus": 0, "memory": 512}},
    "unknown key": {"wrokers": {"count": 1}},
    "unknown nested key": {"workers": {"count": 1, "cpus": 1, "memory": 512, "gpus": 1}},
    "user name with ;": {"users": [{"name": "a;b", "uid": 2000}]},
    "user name with $()": {"users": [{"name": "$(id)", "uid": 2000}]},
    "user name with a space": {"users": [{"name": "a b", "uid": 2000}]},
    "upper-case user": {"users": [{"name": "Alice", "uid": 2000}]},
    "system user": {"users": [{"name": "root", "uid": 2000}]},
    "slurm user": {"users": [{"name": "slurm", "uid": 2000}]},
    "no uid": {"users": [{"name": "alice"}]},
    "low uid": {"users": [{"name": "alice", "uid": 0}]},
    "bad key": {"users": [{"name": "alice", "uid": 2000, "ssh_keys": ["not a key"]}]},
    "key with a newline": {"users": [{"name": "alice", "uid": 2000, "ssh_keys": [ED25519_KEY + "\nssh-rsa AAAA x"]}]},
    "bad hash": {"users": [{"name": "alice", "uid": 2000, "password_hash": "plain"}]},
    "same name twice": {"users": [{"name": "a", "uid": 2000}, {"name": "a", "uid": 2001}]},
    "same uid twice": {"users": [{"name": "a", "uid": 2000}, {"name": "b", "uid": 2000}]},
    "bad mpi": {"mpi": "lam"},
    "bad partition": {"partitions": [{"name": "a;b"}]},
    "two default partitions": {"partitions": [{"name": "a", "default": True}, {"name": "b", "default": True}]},
    "bad cluster name": {"name": "Demo_1"},
    "bad image tag": {"image": {"prefix": "hpcbox", "tag": "a b", "pullPolicy": "IfNotPresent"}},
    "bad service type": {"login": {"serviceType": "External"}},
    "bad storage class": {"storage": {"storageClass": "a;b", "homeSize": "1Gi", "nfs": {"server": "", "path": ""}}},
    "bad size": {"storage": {"storageClass": "", "homeSize": "lots", "nfs": {"server": "", "path": ""}}},
    "nfs and a class": {"storage": {"storageClass": "x", "homeSize": "1Gi", "nfs": {"server": "h", "path": "/e"}}},
    "half nfs": {"storage": {"storageClass": "", "homeSize": "1Gi", "nfs": {"server": "h", "path": ""}}},
    "keepHomes not a bool": {"keepHomes": "yes"},
    "bad host key name": {"ssh": {"hostKeys": {"../../etc/passwd": "x"}}},
    "bad cpu request": {"resources": {"worker": {"requests": {"cpu": "$(id)"}}}},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_SLURM))
def test_slurm_schema_refuses(case: str, tmp_path: Path) -> None:
    refused("hpcbox-slurm", BAD_SLURM[case], tmp_path)


def test_the_refusal_names_the_value(tmp_path: Path) -> None:
    assert "workers" in refused("hpcbox-slurm", BAD_SLURM["negative workers"], tmp_path)
    assert "wrokers" in refused("hpcbox-slurm", BAD_SLURM["unknown key"], tmp_path)
    assert "name" in refused("hpcbox-slurm", BAD_SLURM["user name with $()"], tmp_path)


@pytest.mark.parametrize(
    "values",
    [
        {"workers": {"count": -2, "cpus": 1, "memory": 512}},
        {"users": [{"name": "x;reboot", "uid": 2000}]},
        {"users": [{"name": "ipyparallel", "uid": 2000}]},
        {"ingress": {"enabled": True, "host": "a b"}},
        {"jupyter": {"engines_per_worker": 0}},
        {"extra": 1},
    ],
)
def test_jupyter_schema_refuses(values: dict[str, Any], tmp_path: Path) -> None:
    refused("hpcbox-jupyter", values, tmp_path)


@pytest.mark.parametrize(
    "values",
    [
        {"watch": {"namespaces": ["Bad_NS"], "allNamespaces": False}},
        {"watch": {"namespaces": ["a"], "allNamespaces": True}},
        {"pollInterval": 0},
        {"target": {"host": "a b", "port": 22, "user": "", "hostKey": "", "secretName": "s", "privateKey": ""}},
        {"target": {"host": "h", "port": 22, "user": "$(id)", "hostKey": "", "secretName": "s", "privateKey": ""}},
        {"image": {"repository": "hpcbox/operator", "tag": "", "pullPolicy": "Sometimes"}},
        {"extra": 1},
    ],
)  # fmt: skip
def test_operator_schema_refuses(values: dict[str, Any], tmp_path: Path) -> None:
    refused("hpcbox-operator", values, tmp_path)


# -- hpcbox.clusters.render.helm: what `cluster render --target helm` writes ----------


def test_the_values_of_every_example_spec_pass_the_chart_s_schema(tmp_path: Path) -> None:
    for path in sorted((ROOT / "examples" / "clusters").glob("*.yaml")):
        spec = parse_cluster_yaml(path.read_text())
        if spec.jupyter.hub:  # a hub on the SLURM login node: in no chart
            with pytest.raises(InvalidInputError, match=r"jupyter\.hub"):
                helm_values(spec)
            continue
        chart = "hpcbox-jupyter" if spec.kind.value == "jupyter" else "hpcbox-slurm"
        helm("lint", "--strict", str(CHARTS / chart), *_write_values(helm_values(spec), tmp_path))
        assert template(chart, helm_values(spec))


def test_the_image_tag_option_reaches_every_image() -> None:
    options = HelmOptions(image_tag="dev-1", image_prefix="reg.example:5000/hpc")
    spec = accounting()
    docs = template("hpcbox-slurm", slurm_values(spec, options))
    roles = ("slurm-controller", "slurm-worker", "slurmdbd", "mariadb")
    assert {c["image"] for c in containers(docs)} == {
        f"reg.example:5000/hpc/{role}:dev-1" for role in roles
    }
    nb = parse_cluster_spec({"name": "nb", "kind": "jupyter"})
    docs = template("hpcbox-jupyter", jupyter_values(nb, options))
    assert {c["image"] for c in containers(docs)} == {"reg.example:5000/hpc/jupyter:dev-1"}


def test_kubernetes_options_become_values() -> None:
    spec = parse_cluster_spec({"name": "demo", "login": {"ssh_port": 30022}})
    options = HelmOptions(
        service_type="NodePort",
        storage_class="fast",
        home_size="3Gi",
        keep_homes=False,
        pull_policy="Never",
        admin_public_key=ED25519_KEY,
    )
    values = slurm_values(spec, options)
    assert values["login"] == {"serviceType": "NodePort", "nodePort": 30022}
    assert values["storage"] == {"storageClass": "fast", "homeSize": "3Gi"}
    assert values["keepHomes"] is False and values["image"] == {"pullPolicy": "Never"}
    docs = template("hpcbox-slurm", values)
    assert by_kind(docs, "Service")["login"]["spec"]["ports"][0]["nodePort"] == 30022
    assert secret_text(docs, "admin-key", "authorized_keys") == ED25519_KEY + "\n"
    assert {c["imagePullPolicy"] for c in containers(docs)} == {"Never"}
    # Defaults stay out of the values: the chart's own apply.
    assert set(slurm_values(spec)) == {
        "name", "workers", "partitions", "mpi", "accounting", "users"
    }  # fmt: skip


def test_the_mapping_refuses_what_no_chart_runs() -> None:
    with pytest.raises(InvalidInputError, match=r"jupyter\.hub"):
        slurm_values(parse_cluster_spec({"name": "a", "jupyter": {"hub": True}}))
    with pytest.raises(InvalidInputError, match="image-tag"):
        HelmOptions(image_tag="a b")
    with pytest.raises(InvalidInputError, match="nfs"):
        HelmOptions(nfs_server="h")
    with pytest.raises(InvalidInputError, match="service-type"):
        HelmOptions(service_type="External")


def test_mpi_kind_is_the_slurm_chart_s() -> None:
    spec = parse_cluster_spec({"name": "m", "kind": "mpi", "mpi": "mpich"})
    assert chart_name(spec) == "hpcbox-slurm"
    docs = template("hpcbox-slurm", helm_values(spec))
    assert "MpiDefault=pmi2" in by_kind(docs, "ConfigMap")["slurm-config"]["data"]["slurm.conf"]


def test_values_yaml_is_the_values() -> None:
    spec = accounting()
    text = values_yaml(spec, helm_values(spec))
    assert text.startswith("# Values of chart hpcbox-slurm for cluster ")
    assert yaml.safe_load(text) == helm_values(spec)
