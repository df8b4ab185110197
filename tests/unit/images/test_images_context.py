"""The Containerfiles ship as package data and say what the roles need."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile

import pytest

import hpcbox
from hpcbox.clusters.images import ROLES
from hpcbox.clusters.images.context import context_dir, context_files, context_tar
from hpcbox.clusters.images.hostca import CONTEXT_DIR, CONTEXT_FILE
from hpcbox.clusters.images.roles import ROOT_ROLES
from hpcbox.clusters.images.wheel import hpcbox_wheel, wheel_name


def containerfile(role: str) -> str:
    return context_files(role)["Containerfile"].decode()


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_containerfile(role: str) -> None:
    text = containerfile(role)
    assert re.search(r"^FROM \$\{(DEBIAN_IMAGE|BASE_IMAGE)\}( AS [a-z]+)?$", text, re.M)
    assert f'io.hpcbox.role="{role}"' in text
    with context_dir(context_files(role)) as path:
        assert (path / "Containerfile").is_file()
    assert not path.exists()


@pytest.mark.parametrize("role", ROLES)
def test_every_copied_file_is_in_the_context(role: str) -> None:
    files = context_files(role)
    for source in re.findall(r"^COPY (\S+) ", containerfile(role), re.M):
        if source.startswith("--from="):
            continue
        if source == f"{CONTEXT_DIR}/":
            continue  # the builder adds it (the CA bundle or a placeholder)
        if source.endswith("/"):
            assert any(name.startswith(source) for name in files), f"{role}: COPY {source}"
            continue
        assert source in files, f"{role}: COPY {source} but the context lacks it"


def test_roles_other_than_the_roots_build_on_the_base() -> None:
    for role in ROLES:
        if role in ROOT_ROLES:
            assert "ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm" in containerfile(role)
        else:
            assert "ARG BASE_IMAGE=" in containerfile(role)
    assert ROOT_ROLES == {"base", "operator"}


def test_no_secrets_are_baked_in() -> None:
    base = containerfile("base")
    # Package install scripts create a munge key and SSH host keys: both go.
    assert "rm -f /etc/ssh/ssh_host_* /etc/munge/munge.key" in base
    for role in ROLES:
        for name, data in context_files(role).items():
            assert b"PRIVATE KEY" not in data, f"{role}/{name}"


def test_sshd_takes_keys_only() -> None:
    conf = context_files("base")["sshd-hpcbox.conf"].decode()
    assert "PasswordAuthentication no" in conf
    assert "KbdInteractiveAuthentication no" in conf
    assert "PermitRootLogin prohibit-password" in conf
    assert "HostKey /etc/ssh/ssh_host_ed25519_key" in conf


@pytest.mark.parametrize(
    ("role", "packages"),
    [
        (
            "base",
            [
                "munge",
                "openssh-server",
                "sudo",
                "procps",
                "iproute2",
                "less",
                "vim-tiny",
                "ca-certificates",
                "tini",
            ],
        ),
        ("slurm-controller", ["slurmctld", "slurm-client", "slurm-wlm-basic-plugins"]),
        (
            "slurm-worker",
            [
                "slurmd",
                "slurm-client",
                "openmpi-bin",
                "libopenmpi-dev",
                "mpich",
                "libmpich-dev",
                "libpmix2",
                "build-essential",
            ],
        ),
        ("slurmdbd", ["slurmdbd", "slurm-wlm-mysql-plugin"]),
        ("mariadb", ["mariadb-server"]),
    ],
)
def test_packages(role: str, packages: list[str]) -> None:
    text = containerfile(role)
    for package in packages:
        assert re.search(rf"^\s+{re.escape(package)} *\\?$", text, re.M), f"{role}: {package}"


def test_context_tar_holds_the_context() -> None:
    files = {**context_files("jupyter"), CONTEXT_FILE: b"pem"}
    with tarfile.open(fileobj=io.BytesIO(context_tar(files))) as archive:
        names = archive.getnames()
        member = archive.extractfile(CONTEXT_FILE)
        assert member is not None and member.read() == b"pem"
    assert sorted(names) == sorted(files)


def test_context_dir_writes_nested_files() -> None:
    files = {**context_files("jupyter"), CONTEXT_FILE: b"pem"}
    with context_dir(files) as path:
        assert (path / CONTEXT_FILE).read_bytes() == b"pem"
        assert (path / "hpcbox-singleuser").read_bytes() == files["hpcbox-singleuser"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", ""])
def test_context_paths_stay_inside(bad: str) -> None:
    with pytest.raises(ValueError, match="not a path inside"):
        context_tar({bad: b"x"})
    with pytest.raises(ValueError, match="not a path inside"), context_dir({bad: b"x"}):
        pass


def test_only_the_jupyter_install_stage_sees_the_host_ca() -> None:
    """pip and npm trust the bundle in a build stage; the image copies their results only."""
    stages = re.split(r"^FROM ", containerfile("jupyter"), flags=re.M)[1:]
    names = [stage.split("\n", 1)[0] for stage in stages]
    assert names == ["${BASE_IMAGE} AS system", "system AS install", "system"]
    install, final = stages[1], stages[2]
    assert "COPY hostca/ /hostca/" in install
    assert "PIP_CERT=/hostca/ca-certificates.crt" in install
    assert "NODE_EXTRA_CA_CERTS=/hostca/ca-certificates.crt" in install
    assert "hostca" not in final
    assert "COPY --from=install /opt/jupyter /opt/jupyter" in final
    for role in ROLES:
        if role not in ("jupyter", "operator"):
            assert "hostca" not in containerfile(role), role


def test_the_operator_image_holds_this_hpcbox_with_its_operator_extra() -> None:
    files = context_files("operator")
    text = containerfile("operator")
    name = f"wheels/{wheel_name()}"
    assert name in files and wheel_name() == f"hpcbox-{hpcbox.__version__}-py3-none-any.whl"
    assert '"/wheels/hpcbox-${HPCBOX_VERSION}-py3-none-any.whl[operator]"' in text
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "hpcbox.operator"]' in text
    # The chart runs it as 10001 with a read-only root filesystem.
    assert "USER 10001:10001" in text
    with zipfile.ZipFile(io.BytesIO(files[name])) as wheel:
        names = set(wheel.namelist())
        info = f"hpcbox-{hpcbox.__version__}.dist-info"
        assert {"hpcbox/operator/__main__.py", "hpcbox/core/version.py"} <= names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        meta = wheel.read(f"{info}/METADATA").decode()
        assert f"Version: {hpcbox.__version__}\n" in meta
        assert 'Requires-Dist: kopf>=1.45; extra == "operator"' in meta
        # The job engine finds its backends through this entry point.
        assert "[hpcbox.backends]" in wheel.read(f"{info}/entry_points.txt").decode()
        record = wheel.read(f"{info}/RECORD").decode()
        assert f"{info}/RECORD,,\n" in record and "hpcbox/operator/__main__.py,sha256=" in record
    pins = files["constraints.txt"].decode().splitlines()
    assert any(p.startswith("kopf==") for p in pins) and any(
        p.startswith("lightkube==") for p in pins
    )
    assert not any(p.startswith(("celery==", "pytest==", "hpcbox==")) for p in pins)
    # Deterministic: the digest (the image's tag) moves only when hpcbox does.
    assert hpcbox_wheel() == files[name]


def test_only_the_operator_install_stage_sees_the_host_ca() -> None:
    stages = re.split(r"^FROM ", containerfile("operator"), flags=re.M)[1:]
    assert [s.split("\n", 1)[0] for s in stages] == [
        "${DEBIAN_IMAGE} AS system",
        "system AS install",
        "system",
    ]
    assert "COPY hostca/ /hostca/" in stages[1] and "hostca" not in stages[2]
    assert "pip" not in stages[2]
