"""slurm.conf, cgroup.conf and slurmdbd.conf: properties the golden files do not spell out."""

from __future__ import annotations

import re

import pytest

from hpcbox.clusters.render.slurm import (
    CONTROLLER_HOST,
    DB_HOST,
    DBD_HOST,
    WORKER_PREFIX,
    mpi_default,
    render_cgroup_conf,
    render_slurm_conf,
    render_slurmdbd_conf,
    slurmd_conf_arg,
    worker_name,
)
from hpcbox.clusters.spec import ClusterSpec, MpiFlavour, parse_cluster_spec
from hpcbox.core.errors import InvalidInputError

from .specs import SPECS, accounting, basic, mpich

# What SLURM's parser accepts on a line: a comment, blank, or Key=Value pairs.
_CONF_LINE = re.compile(r"^(#.*|$|[A-Za-z]+=\S+( [A-Za-z]+=\S+)*)$")


def _settings(text: str) -> dict[str, str]:
    """First Key=Value of each non-comment line (NodeSet/PartitionName lines by key)."""
    result = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            result.setdefault(key, value)
    return result


def test_names_are_fixed() -> None:
    assert (CONTROLLER_HOST, DBD_HOST, DB_HOST, WORKER_PREFIX) == (
        "controller",
        "slurmdbd",
        "mariadb",
        "worker",
    )
    assert worker_name(1) == "worker1"
    assert worker_name(12) == "worker12"
    with pytest.raises(ValueError, match="start at 1"):
        worker_name(0)


def test_slurmd_conf_arg_offers_the_spec_not_the_host() -> None:
    assert slurmd_conf_arg(basic()) == "CPUs=2 RealMemory=1024 Feature=dyn"
    assert slurmd_conf_arg(mpich()) == "CPUs=1 RealMemory=1536 Feature=dyn"


@pytest.mark.parametrize("case", sorted(SPECS))
def test_every_line_is_something_slurm_parses(case: str) -> None:
    spec = SPECS[case]()
    for text in (render_slurm_conf(spec), render_cgroup_conf(spec)):
        assert text.endswith("\n")
        for line in text.splitlines():
            assert _CONF_LINE.match(line), line
            assert len(line) < 1024


@pytest.mark.parametrize("case", sorted(SPECS))
def test_workers_are_dynamic_nodes(case: str) -> None:
    spec = SPECS[case]()
    text = render_slurm_conf(spec)
    settings = _settings(text)
    assert "NodeName" not in settings, "dynamic nodes are never listed"
    assert settings["SlurmctldHost"] == "controller"
    assert settings["TreeWidth"] == "65533"
    assert int(settings["MaxNodeCount"]) >= 64
    assert settings["SelectType"] == "select/cons_tres"
    assert settings["SelectTypeParameters"] == "CR_Core_Memory"
    assert "NodeSet=dyn Feature=dyn" in text.splitlines()
    assert "cloud_dns" not in settings.get("SlurmctldParameters", ""), "it disables alias lists"
    partitions = [line for line in text.splitlines() if line.startswith("PartitionName=")]
    assert len(partitions) == len(spec.effective_partitions)
    assert all(" Nodes=dyn " in line for line in partitions)
    assert sum(" Default=YES " in line for line in partitions) == 1


def test_slurm_conf_does_not_change_when_workers_scale() -> None:
    """Scaling needs no `scontrol reconfigure`: the file is the same for any count."""
    data = basic().model_dump()
    texts = set()
    for count in (0, 1, 2, 5, 64):
        data["workers"]["count"] = count
        texts.add(render_slurm_conf(parse_cluster_spec(data)))
    assert len(texts) == 1


def test_accounting_switches_the_storage_plugin() -> None:
    off = _settings(render_slurm_conf(basic()))
    on = _settings(render_slurm_conf(accounting()))
    assert "AccountingStorageType" not in off
    assert off["JobCompType"] == "jobcomp/none"
    assert on["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert on["AccountingStorageHost"] == "slurmdbd"
    assert on["JobAcctGatherType"] == "jobacct_gather/linux"


def test_mpi_default_follows_the_flavour() -> None:
    assert mpi_default(MpiFlavour.OPENMPI) == "pmix"
    assert mpi_default(MpiFlavour.MPICH) == "pmi2"
    assert _settings(render_slurm_conf(basic()))["MpiDefault"] == "pmix"
    assert _settings(render_slurm_conf(mpich()))["MpiDefault"] == "pmi2"


@pytest.mark.parametrize(
    ("max_time", "rendered"),
    [
        (None, "INFINITE"),
        ("30s", "00:01:00"),  # SLURM counts minutes: rounded up, never down
        ("90s", "00:02:00"),
        ("1:30:00", "01:30:00"),
        ("1d", "1-00:00:00"),
        ("2-12:30:00", "2-12:30:00"),
    ],
)
def test_partition_time_limits(max_time: str | None, rendered: str) -> None:
    spec = parse_cluster_spec({"name": "t", "partitions": [{"name": "p", "max_time": max_time}]})
    assert f"PartitionName=p Nodes=dyn Default=YES MaxTime={rendered} State=UP" in (
        render_slurm_conf(spec).splitlines()
    )


def test_memory_per_cpu_default_shares_a_worker() -> None:
    spec = accounting()  # 4 CPUs, 3 GiB
    assert _settings(render_slurm_conf(spec))["DefMemPerCPU"] == "768"


def test_cgroup_conf_constrains_nothing() -> None:
    settings = _settings(render_cgroup_conf(basic()))
    assert settings["IgnoreSystemd"] == "yes"
    assert settings["CgroupAutomount"] == "no"
    assert all(settings[k] == "no" for k in settings if k.startswith("Constrain"))


def test_slurmdbd_conf_points_at_mariadb_and_holds_the_password_once() -> None:
    text = render_slurmdbd_conf(accounting(), db_password="s3cr3t-Pass_word")
    settings = _settings(text)
    assert settings["DbdHost"] == "slurmdbd"
    assert settings["StorageHost"] == "mariadb"
    assert settings["StorageUser"] == "slurm"
    assert settings["StorageType"] == "accounting_storage/mysql"
    assert text.count("s3cr3t-Pass_word") == 1
    assert settings["StoragePass"] == "s3cr3t-Pass_word"


@pytest.mark.parametrize(
    "password", ["", "two words", "hash#comment", 'quo"te', "back\\slash", "new\nline", "tab\t"]
)
def test_slurmdbd_conf_refuses_passwords_slurm_would_misread(password: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        render_slurmdbd_conf(accounting(), db_password=password)
    assert info.value.field == "db_password"
    if password:
        assert password not in str(info.value), "the password must not appear in the message"


def test_rendering_is_deterministic() -> None:
    spec: ClusterSpec = accounting()
    assert render_slurm_conf(spec) == render_slurm_conf(accounting())
