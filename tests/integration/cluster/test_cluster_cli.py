"""``hpcbox cluster`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hpcbox.core.settings import Settings
from tests.integration.helpers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def hpcbox(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(settings.to_env(), *args, check=check)


def test_cli_lifecycle(cluster_settings: Settings, tmp_path: Path) -> None:
    name = "hpcbox-cli"
    hpcbox(cluster_settings, "cluster", "down", name, "--purge", check=False)
    try:
        up = hpcbox(cluster_settings, "cluster", "up", "--name", name, "--workers", "1", "--json")
        status = json.loads(up.stdout)
        assert status["state"] == "RUNNING"
        assert status["ssh"]["port"] and Path(status["ssh"]["admin_key"]).exists()
        listed = json.loads(hpcbox(cluster_settings, "cluster", "list", "--json").stdout)
        assert name in [c["name"] for c in listed]
        # `cluster up` registers the cluster as a job target, its host key pinned.
        targets = json.loads(hpcbox(cluster_settings, "target", "list", "--json").stdout)
        mine = [t for t in targets if t["name"] == name]
        assert mine, targets
        assert mine[0]["url"] == f"ssh://root@127.0.0.1:{status['ssh']['port']}"
        assert mine[0]["host_key"] == status["ssh"]["host_key"]
        assert mine[0]["cluster"] == name
        st = json.loads(hpcbox(cluster_settings, "cluster", "status", name, "--json").stdout)
        assert [n["slurm_state"] for n in st["nodes"] if n["role"] == "worker"] == ["idle"]
        out = hpcbox(cluster_settings, "cluster", "exec", name, "--", "sinfo", "-h", "-o", "%D")
        assert out.stdout.strip() == "1"
        failed = hpcbox(
            cluster_settings,
            "cluster",
            "exec",
            name,
            "--node",
            "worker1",
            "--",
            "sh",
            "-c",
            "exit 7",
            check=False,
        )
        assert failed.returncode == 7
        ssh = subprocess.run(
            [
                "ssh",
                "-p",
                str(st["ssh"]["port"]),
                "-i",
                st["ssh"]["admin_key"],
                "-o",
                f"UserKnownHostsFile={st['ssh']['known_hosts']}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "root@127.0.0.1",
                "hostname",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ssh.stdout.strip() == "controller", ssh.stderr
        checked = json.loads(hpcbox(cluster_settings, "target", "check", name, "--json").stdout)
        assert checked["ok"]
        assert checked["commands"]["sbatch"] == "/usr/bin/sbatch"
        # A cluster without users takes jobs as root, with job files on the shared volume.
        script = tmp_path / "hello.sh"
        script.write_text("echo hello from $(hostname)\n")
        job = json.loads(
            hpcbox(
                cluster_settings,
                "job",
                "submit",
                "--cluster",
                name,
                "--wait",
                "--json",
                str(script),
            ).stdout
        )
        assert job["state"] == "COMPLETED", job
        assert job["target"] == name
        assert job["native_id"]
        logs = hpcbox(cluster_settings, "job", "logs", str(job["id"])).stdout
        assert logs == "hello from worker1\n"
        scaled = json.loads(
            hpcbox(cluster_settings, "cluster", "scale", name, "--workers", "2", "--json").stdout
        )
        assert scaled["workers"] == 2
    finally:
        hpcbox(cluster_settings, "cluster", "down", name, "--purge", check=False)
    assert name not in [
        c["name"] for c in json.loads(hpcbox(cluster_settings, "cluster", "list", "--json").stdout)
    ]


def test_bad_specs_are_refused(cluster_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\nworkers: {count: 2}\n")
    proc = hpcbox(cluster_settings, "cluster", "up", "-f", str(bad), check=False)
    assert proc.returncode == 2
    assert "name" in proc.stderr
    proc = hpcbox(cluster_settings, "cluster", "up", "--name", "ok", "--mpi", "lam", check=False)
    assert proc.returncode == 2
    assert "mpi" in proc.stderr
    assert hpcbox(cluster_settings, "cluster", "status", "nope", check=False).returncode == 1


def test_render_kubernetes(cluster_settings: Settings, tmp_path: Path) -> None:
    """--target kubernetes is the chart's `helm template` (needs helm, as tests/unit/charts)."""
    import kubernetes_validate
    import yaml

    spec = Path(__file__).resolve().parents[3] / "examples" / "clusters" / "accounting.yaml"
    out = tmp_path / "k8s"
    hpcbox(
        cluster_settings,
        "cluster",
        "render",
        "-f",
        str(spec),
        "--target",
        "kubernetes",
        "-o",
        str(out),
    )
    files = sorted(out.glob("*.yaml"))
    kinds = set()
    for path in files:
        manifest = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
        kinds.add(manifest["kind"])
        if manifest["kind"] == "Secret":
            assert path.stat().st_mode & 0o077 == 0
    assert {
        "Namespace",
        "Secret",
        "ConfigMap",
        "StatefulSet",
        "Service",
        "PersistentVolumeClaim",
    } <= kinds


def test_render_helm_values(cluster_settings: Settings, tmp_path: Path) -> None:
    import yaml

    spec = Path(__file__).resolve().parents[3] / "examples" / "clusters" / "accounting.yaml"
    proc = hpcbox(
        cluster_settings, "cluster", "render", "-f", str(spec), "--target", "helm",
        "--image-tag", "dev", "-o", "-",
    )  # fmt: skip
    values = yaml.safe_load(proc.stdout)
    assert values["accounting"] is True and values["image"] == {"tag": "dev"}
    assert proc.stdout.startswith("# Values of chart hpcbox-slurm")
