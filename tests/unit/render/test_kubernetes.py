"""Kubernetes manifests: every one validates against the Kubernetes schemas
(``kubernetes-validate``, strict), and the cluster-level promises hold —
secrets only in Secrets, one replica per worker, names Kubernetes accepts.

These are schema checks only: no API server can run on the development machine,
so the manifests are not applied anywhere by these tests.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import hpcbox.clusters.render
from hpcbox import __version__
from hpcbox.clusters.render.accounts import sacctmgr_commands
from hpcbox.clusters.render.kubernetes import (
    ClusterSecrets,
    manifest_files,
    manifests_yaml,
    render_kubernetes,
)
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec
from hpcbox.core.errors import InvalidInputError

from .specs import SHA512_HASH, accounting, basic, mpich

#: The nodes' one start-up script, as the file in the source tree.
SCRIPT_FILE = Path(hpcbox.clusters.render.__file__).parent / "hpcbox-node.sh"
LATEST = kubernetes_validate.latest_version()
# The oldest Kubernetes release still widely run that the manifests target.
OLDEST = "1.30.0"
MUNGE_KEY = bytes(range(256)) * 4
HOST_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
DB_PASSWORD = "Zm9vYmFyYmF6cXV4LXRlc3QtcGFzcw"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _secrets(*, db_password: str | None = DB_PASSWORD) -> ClusterSecrets:
    return ClusterSecrets(
        munge_key=MUNGE_KEY,
        ssh_host_keys={
            "ssh_host_ed25519_key": HOST_KEY,
            "ssh_host_ed25519_key.pub": "ssh-ed25519 AAAAC3Nza host\n",
        },
        admin_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAadmin hpcbox-admin",
        db_password=db_password,
    )


VARIANTS: dict[str, tuple[ClusterSpec, dict[str, Any]]] = {
    "basic": (basic(), {}),
    "accounting": (accounting(), {}),
    "mpich": (mpich(), {}),
    "nfs": (accounting(), {"nfs_server": "10.0.0.5", "nfs_path": "/exports/homes"}),
    "storage-class": (basic(), {"storage_class": "fast-rwx"}),
    "nodeport": (
        basic(),
        {"login_service_type": "NodePort", "image_prefix": "reg.example:5000/hpc"},
    ),
    "no-workers": (parse_cluster_spec({"name": "empty", "workers": {"count": 0}}), {}),
}


def _render(variant: str) -> list[dict[str, Any]]:
    spec, options = VARIANTS[variant]
    return render_kubernetes(spec, secrets=_secrets(), **options)


def _by(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("version", [LATEST, OLDEST])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_manifest_validates_against_the_kubernetes_schemas(
    variant: str, version: str
) -> None:
    for manifest in _render(variant):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            first = str(exc).splitlines()[0]
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {first}")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_names_are_what_kubernetes_accepts(variant: str) -> None:
    manifests = _render(variant)
    namespace = manifests[0]
    assert namespace["kind"] == "Namespace"
    assert DNS_LABEL.match(namespace["metadata"]["name"])
    for manifest in manifests[1:]:
        meta = manifest["metadata"]
        assert DNS_SUBDOMAIN.match(meta["name"]), meta["name"]
        if manifest["kind"] != "PersistentVolume":
            assert meta["namespace"] == namespace["metadata"]["name"]
        if manifest["kind"] in ("Service", "StatefulSet", "Deployment"):
            assert DNS_LABEL.match(meta["name"]), meta["name"]
    kinds_names = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(set(kinds_names)) == len(kinds_names)


def test_replicas_follow_the_worker_count() -> None:
    for variant in ("basic", "accounting", "no-workers"):
        spec, _ = VARIANTS[variant]
        workers = _by(_render(variant), "StatefulSet")["worker"]
        assert workers["spec"]["replicas"] == spec.workers.count
        assert workers["spec"]["serviceName"] == "worker"
    service = _by(_render("basic"), "Service")["worker"]
    assert service["spec"]["clusterIP"] == "None", "worker pods need a headless service"


def test_worker_resources_come_from_the_spec() -> None:
    (container,) = _by(_render("accounting"), "StatefulSet")["worker"]["spec"]["template"]["spec"][
        "containers"
    ]
    # 4 CPUs, 3 GiB for jobs plus room for the node's own daemons.
    assert container["resources"]["limits"] == {"cpu": "4", "memory": f"{3072 + 256}Mi"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HPCBOX_SLURMD_CONF"] == "CPUs=4 RealMemory=3072 Feature=dyn"


def test_secrets_are_base64_and_never_in_config_maps() -> None:
    manifests = _render("accounting")
    secrets = _by(manifests, "Secret")
    decoded = {
        name: {key: base64.b64decode(value, validate=True) for key, value in s["data"].items()}
        for name, s in secrets.items()
    }
    assert decoded["munge-key"]["munge.key"] == MUNGE_KEY
    assert decoded["ssh-host-keys"]["ssh_host_ed25519_key"].decode() == HOST_KEY
    assert decoded["mariadb-credentials"]["password"].decode() == DB_PASSWORD
    assert f"StoragePass={DB_PASSWORD}\n" in decoded["slurmdbd-conf"]["slurmdbd.conf"].decode()
    assert SHA512_HASH in decoded["users-shadow"]["shadow"].decode()
    assert all("stringData" not in s for s in secrets.values())

    secret_texts = [
        DB_PASSWORD,
        SHA512_HASH,
        "BEGIN OPENSSH PRIVATE KEY",
        "b3BlbnNzaC1rZXktdjEAAAAA",
    ]
    munge_b64 = base64.b64encode(MUNGE_KEY).decode()
    for manifest in manifests:
        if manifest["kind"] == "Secret":
            continue
        for text in _strings(manifest):
            for secret in [*secret_texts, munge_b64]:
                assert secret not in text, f"{manifest['kind']}/{manifest['metadata']['name']}"
    # Also in the YAML as written: the only place the password appears is Secrets.
    for doc in yaml.safe_load_all(manifests_yaml(manifests)):
        if doc["kind"] != "Secret":
            assert DB_PASSWORD not in yaml.safe_dump(doc)


def test_config_maps_carry_slurm_files_users_and_hostfile() -> None:
    maps = _by(_render("accounting"), "ConfigMap")
    assert set(maps["slurm-config"]["data"]) == {"slurm.conf", "cgroup.conf"}
    assert "ClusterName=acct" in maps["slurm-config"]["data"]["slurm.conf"]
    users = maps["users"]["data"]
    assert users["passwd"].startswith("alice:x:2001:2001::/home/alice:/bin/bash\n")
    assert set(users) == {
        "passwd",
        "group",
        "authorized_keys.alice",
        "authorized_keys.bob",
        "sacctmgr",
    }
    commands = [line.split(" ") for line in users["sacctmgr"].splitlines()]
    assert commands == sacctmgr_commands(accounting(), cluster="acct")
    assert "sacctmgr" not in _by(_render("basic"), "ConfigMap")["users"]["data"]
    assert maps["mpi-hostfile"]["data"]["hostfile"] == (
        "worker-0.worker slots=4\nworker-1.worker slots=4\nworker-2.worker slots=4\n"
    )
    assert maps["node-setup"]["data"]["hpcbox-node"] == SCRIPT_FILE.read_text(encoding="utf-8")


def test_accounting_adds_mariadb_and_slurmdbd() -> None:
    without = _render("basic")
    with_ = _render("accounting")
    assert set(_by(without, "Deployment")) == {"controller"}
    assert set(_by(with_, "Deployment")) == {"controller", "mariadb", "slurmdbd"}
    assert set(_by(with_, "Service")) == {"controller", "login", "worker", "mariadb", "slurmdbd"}
    assert "mariadb-data" in _by(with_, "PersistentVolumeClaim")
    assert not {"slurmdbd-conf", "mariadb-credentials"} & set(_by(without, "Secret"))
    dbd = _by(with_, "Deployment")["slurmdbd"]["spec"]["template"]["spec"]
    assert dbd["hostname"] == "slurmdbd", "slurmdbd only runs where its hostname is DbdHost"


def test_controller_is_one_pod_named_controller_with_services() -> None:
    manifests = _render("basic")
    controller = _by(manifests, "Deployment")["controller"]
    assert controller["spec"]["replicas"] == 1
    assert controller["spec"]["strategy"] == {"type": "Recreate"}
    assert controller["spec"]["template"]["spec"]["hostname"] == "controller"
    (container,) = controller["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "/usr/bin/tini",
        "--",
        "/bin/bash",
        "/run/hpcbox/setup/hpcbox-node",
        "controller",
    ]
    services = _by(manifests, "Service")
    assert services["controller"]["spec"]["ports"][0]["port"] == 6817
    assert services["controller"]["spec"]["type"] == "ClusterIP"
    assert services["login"]["spec"]["ports"][0]["port"] == 22
    assert services["login"]["spec"]["type"] == "ClusterIP"
    assert _by(_render("nodeport"), "Service")["login"]["spec"]["type"] == "NodePort"


def test_selectors_match_pod_labels() -> None:
    manifests = _render("accounting")
    pods = {
        name: m["spec"]["template"]["metadata"]["labels"]
        for kind in ("Deployment", "StatefulSet")
        for name, m in _by(manifests, kind).items()
    }
    for workload in [
        *_by(manifests, "Deployment").values(),
        *_by(manifests, "StatefulSet").values(),
    ]:
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    for service in _by(manifests, "Service").values():
        selector = service["spec"]["selector"]
        assert sum(selector.items() <= labels.items() for labels in pods.values()) == 1


def test_volumes_and_claims_fit_together() -> None:
    for variant in sorted(VARIANTS):
        manifests = _render(variant)
        claims = set(_by(manifests, "PersistentVolumeClaim"))
        maps = set(_by(manifests, "ConfigMap"))
        secrets = set(_by(manifests, "Secret"))
        for kind in ("Deployment", "StatefulSet"):
            for workload in _by(manifests, kind).values():
                pod = workload["spec"]["template"]["spec"]
                volumes = {v["name"]: v for v in pod["volumes"]}
                for mount in pod["containers"][0]["volumeMounts"]:
                    assert mount["name"] in volumes
                for volume in volumes.values():
                    if "persistentVolumeClaim" in volume:
                        assert volume["persistentVolumeClaim"]["claimName"] in claims
                    if "configMap" in volume:
                        assert volume["configMap"]["name"] in maps
                    for source in volume.get("projected", {}).get("sources", []):
                        assert source["secret"]["name"] in secrets


def test_storage_class_is_used_for_every_claim() -> None:
    claims = _by(_render("storage-class"), "PersistentVolumeClaim")
    assert claims["home"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert {c["spec"]["storageClassName"] for c in claims.values()} == {"fast-rwx"}
    default = _by(_render("basic"), "PersistentVolumeClaim")
    assert all("storageClassName" not in c["spec"] for c in default.values())


def test_nfs_homes_are_a_reserved_persistent_volume() -> None:
    manifests = _render("nfs")
    (volume,) = _by(manifests, "PersistentVolume").values()
    assert volume["spec"]["nfs"] == {"server": "10.0.0.5", "path": "/exports/homes"}
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["claimRef"] == {"namespace": "hpcbox-acct", "name": "home"}
    home = _by(manifests, "PersistentVolumeClaim")["home"]
    assert home["spec"]["volumeName"] == volume["metadata"]["name"]
    assert home["spec"]["storageClassName"] == ""


def test_images_use_the_prefix_and_the_hpcbox_version() -> None:
    images = {
        c["image"]
        for m in _render("accounting")
        if m["kind"] in ("Deployment", "StatefulSet")
        for c in m["spec"]["template"]["spec"]["containers"]
    }
    assert images == {
        f"hpcbox/{role}:{__version__}"
        for role in ("slurm-controller", "slurm-worker", "slurmdbd", "mariadb")
    }
    nodeport = _render("nodeport")
    assert (
        _by(nodeport, "StatefulSet")["worker"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"reg.example:5000/hpc/slurm-worker:{__version__}"
    )
    tagged = render_kubernetes(basic(), secrets=_secrets(), image_tag="dev")
    assert (
        _by(tagged, "Deployment")["controller"]["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == "hpcbox/slurm-controller:dev"
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"nfs_server": "nfs.example"}, "nfs_server"),
        ({"nfs_path": "/exports"}, "nfs_server"),
        ({"nfs_server": "nfs", "nfs_path": "/x", "storage_class": "rwx"}, "storage_class"),
        ({"nfs_server": "nfs", "nfs_path": "relative"}, "nfs_path"),
        ({"nfs_server": "a b", "nfs_path": "/x"}, "nfs_server"),
        ({"storage_class": "Not_Valid"}, "storage_class"),
        ({"login_service_type": "ExternalName"}, "login_service_type"),
        ({"image_prefix": "Upper/Case"}, "image_prefix"),
        ({"image_tag": "bad tag"}, "image_tag"),
        ({"home_size": "lots"}, "home_size"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        render_kubernetes(basic(), secrets=_secrets(), **options)
    assert info.value.field == field


def test_accounting_needs_a_database_password() -> None:
    with pytest.raises(InvalidInputError) as info:
        render_kubernetes(accounting(), secrets=_secrets(db_password=None))
    assert info.value.field == "db_password"


def test_mpi_clusters_do_not_render() -> None:
    spec = parse_cluster_spec({"name": "nb", "kind": "mpi"})
    with pytest.raises(InvalidInputError) as info:
        render_kubernetes(spec, secrets=_secrets())
    assert info.value.field == "kind"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"munge_key": b"short"}, "munge_key"),
        ({"ssh_host_keys": {"../etc/passwd": "x"}}, "ssh_host_keys"),
        ({"admin_public_key": "ssh-ed25519 A\nssh-ed25519 B"}, "admin_public_key"),
        ({"admin_public_key": "  "}, "admin_public_key"),
        ({"db_password": "has'quote-in-it"}, "db_password"),
        ({"db_password": "short"}, "db_password"),
    ],
)
def test_cluster_secrets_are_checked(changes: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {
        "munge_key": MUNGE_KEY,
        "ssh_host_keys": {"ssh_host_ed25519_key": HOST_KEY},
        "admin_public_key": "ssh-ed25519 AAAA admin",
        "db_password": DB_PASSWORD,
        **changes,
    }
    with pytest.raises(InvalidInputError) as info:
        ClusterSecrets(**values)
    assert info.value.field == field


def test_cluster_secrets_repr_shows_no_secret() -> None:
    text = repr(_secrets())
    assert DB_PASSWORD not in text
    assert "PRIVATE KEY" not in text
    assert "munge_key" not in text


def test_yaml_round_trips_and_is_stable() -> None:
    manifests = _render("accounting")
    text = manifests_yaml(manifests)
    assert text == manifests_yaml(_render("accounting"))
    assert list(yaml.safe_load_all(text)) == manifests
    assert text.startswith("---\napiVersion: v1\nkind: Namespace\n")
    # Configuration files stay readable: literal blocks, not escaped strings.
    assert "slurm.conf: |" in text


def test_manifest_files_keep_apply_order() -> None:
    manifests = _render("nfs")
    files = manifest_files(manifests)
    assert list(files) == sorted(files)
    assert next(iter(files)) == "00-namespace-hpcbox-acct.yaml"
    assert "01-persistentvolume-hpcbox-acct-home.yaml" in files
    assert [next(yaml.safe_load_all(t)) for t in files.values()] == manifests


def test_every_node_pod_runs_the_one_script_with_its_inputs_mounted() -> None:
    script = SCRIPT_FILE.read_text(encoding="utf-8")
    for name in ("basic", "accounting"):
        manifests = _render(name)
        setups = [m for m in manifests if m["kind"] == "ConfigMap" and "hpcbox-node" in m["data"]]
        assert [m["metadata"]["name"] for m in setups] == ["node-setup"]
        assert setups[0]["data"] == {"hpcbox-node": script}
        pods = [m["spec"]["template"]["spec"] for m in manifests if "template" in m.get("spec", {})]
        assert pods
        for pod in pods:
            (container,) = pod["containers"]
            assert container["command"][-2] == "/run/hpcbox/setup/hpcbox-node"
            assert {"name": "HPCBOX_MOUNTS", "value": "/run/hpcbox"} in container["env"]


def test_node_script_is_valid_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    proc = subprocess.run(
        [bash, "-n", str(SCRIPT_FILE)], capture_output=True, text=True, timeout=10, check=False
    )
    assert proc.returncode == 0, proc.stderr
