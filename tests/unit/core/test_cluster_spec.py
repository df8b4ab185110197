from __future__ import annotations

import pytest

from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec, parse_cluster_yaml
from hpcbox.core.errors import InvalidInputError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5 alice@laptop"


def test_defaults() -> None:
    spec = parse_cluster_yaml("name: demo\n")
    assert spec.workers.count == 2
    assert spec.mpi.value == "openmpi"
    assert not spec.accounting
    assert [p.name for p in spec.effective_partitions] == ["batch"]
    assert spec.effective_partitions[0].default
    assert spec.home_volume == "hpcbox-demo-home"
    assert spec.runtime.value == "auto"


def test_full_spec_round_trips() -> None:
    spec = parse_cluster_yaml(
        f"""
name: lab
runtime: podman
workers: {{count: 3, cpus: 2, memory: 2G}}
partitions:
  - {{name: short, max_time: "1:00:00"}}
  - {{name: long, default: true}}
mpi: mpich
accounting: true
storage: {{home_volume: lab-homes}}
users:
  - name: alice
    ssh_keys: ["{KEY}"]
  - name: bob
    uid: 2000
    password_hash: "$6$salt$abcdefghijklmnopqrstuv"
login: {{ssh_port: 2222}}
"""
    )
    assert spec.workers.memory == 2 * 1024**3
    assert spec.effective_partitions[1].default
    assert spec.partitions[0].max_time == 3600
    # bob keeps 2000, alice takes the next free uid.
    assert spec.user_ids() == {"alice": (2001, 2001), "bob": (2000, 2000)}
    again = ClusterSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec


def test_first_partition_becomes_default() -> None:
    spec = parse_cluster_yaml("name: x\npartitions: [{name: a}, {name: b}]\n")
    assert [p.default for p in spec.effective_partitions] == [True, False]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: Bad_Name", "name"),
        ("name: x\nworkers: {count: -1}", "workers.count"),
        ("name: x\nworkers: {memory: lots}", "workers.memory"),
        ("name: x\nmpi: lam", "mpi"),
        ("name: x\nruntime: lxc", "runtime"),
        ("name: x\nusers: [{name: root}]", "users.0.name"),
        ("name: x\nusers: [{name: 'a;b'}]", "users.0.name"),
        ("name: x\nusers: [{name: a, ssh_keys: ['not a key']}]", "users.0.ssh_keys"),
        ("name: x\nusers: [{name: a, password_hash: plain}]", "users.0.password_hash"),
        ("name: x\nusers: [{name: a}, {name: a}]", "spec"),
        ("name: x\npartitions: [{name: a, default: true}, {name: b, default: true}]", "spec"),
        ("name: x\npartitions: [{name: 'a b'}]", "partitions.0.name"),
        ("name: x\nlogin: {ssh_port: 70000}", "login.ssh_port"),
        ("name: x\nbogus: 1", "bogus"),
        ("- a\n- b", "spec"),
        ("name: [unclosed", "spec"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_cluster_yaml(text)
    assert info.value.field == field, info.value


def test_yaml_is_loaded_safely() -> None:
    with pytest.raises(InvalidInputError):
        parse_cluster_yaml("name: !!python/object/apply:os.system ['true']\n")


def test_parse_mapping() -> None:
    assert parse_cluster_spec({"name": "m"}).name == "m"
