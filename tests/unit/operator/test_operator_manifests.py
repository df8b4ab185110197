"""deploy/kubernetes and examples/kubernetes: schema-valid, least privilege, and the CRD's
openAPIV3Schema accepts good SlurmJobs, refuses bad ones and describes the operator's status.

No API server can run here, so the CRD's rules for structural schemas are checked by
:func:`structural_problems` (the subset of apiextensions' rules this CRD can break)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hpcbox.jobs.model.job import Attempt, Job
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from hpcbox.operator import mapping
from hpcbox.operator.resource import GROUP, KIND, PLURAL, VERSION, ObjectRef

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "kubernetes"
EXAMPLES = ROOT / "examples" / "kubernetes"
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def documents(folder: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def crd() -> dict[str, Any]:
    (found,) = [d for d in documents(DEPLOY) if d["kind"] == "CustomResourceDefinition"]
    return found


def openapi_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def as_json_schema(node: Any) -> Any:
    """OpenAPI v3 -> JSON Schema: ``nullable`` becomes a null type; x- keys are dropped."""
    if isinstance(node, list):
        return [as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def structural_problems(node: dict[str, Any], path: str = "") -> list[str]:
    problems = []
    int_or_string = node.get("x-kubernetes-int-or-string")
    if (
        "type" not in node
        and not int_or_string
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        problems.append(f"{path or '/'}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    for combinator in ("oneOf", "anyOf", "allOf", "not"):
        branches = node.get(combinator)
        if branches is None:
            continue
        branches = branches if isinstance(branches, list) else [branches]
        if (
            int_or_string
            and combinator == "anyOf"
            and branches == [{"type": "integer"}, {"type": "string"}]
        ):
            continue
        for branch in branches:
            for forbidden in ("type", "description", "default", "nullable", "additionalProperties"):
                if forbidden in branch:
                    problems.append(f"{path}/{combinator}: {forbidden} inside a combinator")
    for name, child in (node.get("properties") or {}).items():
        problems.extend(structural_problems(child, f"{path}/{name}"))
    if isinstance(node.get("additionalProperties"), dict):
        problems.extend(structural_problems(node["additionalProperties"], f"{path}/*"))
    if isinstance(node.get("items"), dict):
        problems.extend(structural_problems(node["items"], f"{path}[]"))
    return problems


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_schema_valid(version: str) -> None:
    docs = documents(DEPLOY) + documents(EXAMPLES)
    builtin = [d for d in docs if d["kind"] != KIND]
    assert {d["kind"] for d in builtin} >= {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "PersistentVolumeClaim",
        "Secret",
        "ConfigMap",
    }
    for doc in builtin:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_crd_matches_the_operator() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"]) == (GROUP, KIND, PLURAL)
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["State"] == ".status.state" and columns["Job ID"] == ".status.jobId"
    assert columns["Partition"] == ".status.partition" and columns["User"] == ".status.user"
    assert columns["Time"] == ".status.elapsed" and columns["Age"] == ".metadata.creationTimestamp"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) >= {
        "state",
        "nativeState",
        "reason",
        "jobId",
        "partition",
        "user",
        "elapsed",
        "exitCode",
        "attempts",
        "message",
    }


def test_the_crd_schema_is_structural() -> None:
    assert structural_problems(openapi_schema()) == []
    # The checker does catch what the API server would refuse.
    broken = {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}, "b": {}}}
    assert structural_problems(broken) == [
        "/a: no type",
        "/a/oneOf: type inside a combinator",
        "/b: no type",
    ]


VALID = {
    "apiVersion": "hpcbox.io/v1alpha1",
    "kind": "SlurmJob",
    "metadata": {"name": "x"},
    "spec": {
        "target": {"host": "login.example.org", "user": "alice", "secretName": "s"},
        "scriptCode": "echo hi",
        "resources": {"memory": "1G", "time": 30, "nodes": 1},
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


INVALID = {
    "no target": with_spec(target=None),
    "no host": with_spec(target={"secretName": "s"}),
    "no secret": with_spec(target={"host": "h"}),
    "bad port": with_spec(target={"host": "h", "secretName": "s", "port": 70000}),
    "host with a space": with_spec(target={"host": "a b", "secretName": "s"}),
    "no script": with_spec(scriptCode=None),
    "both scripts": with_spec(scriptConfigMap={"name": "cm"}),
    "empty script": with_spec(scriptCode=""),
    "zero nodes": with_spec(resources={"nodes": 0}),
    "relative workdir": with_spec(workdir="tmp"),
    "bad partition": with_spec(resources={"partition": "a;b"}),
    "env not strings": with_spec(env={"A": 1}),
}


def test_valid_slurmjobs_pass() -> None:
    schema = as_json_schema(openapi_schema())
    samples = [VALID, with_spec(scriptCode=None, scriptConfigMap={"name": "cm", "key": "a.sh"})]
    samples += [d for d in documents(EXAMPLES) if d["kind"] == KIND]
    assert len(samples) >= 4
    for doc in samples:
        jsonschema.validate(doc, schema)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_slurmjobs_fail(name: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(INVALID[name], as_json_schema(openapi_schema()))


def test_the_operator_s_status_fits_the_schema() -> None:
    schema = as_json_schema(openapi_schema()["properties"]["status"])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ref = ObjectRef("ns", "x", "u")
    target = mapping.target_spec("ns", mapping.connection(VALID["spec"]), None)
    for state in JobState:
        attempt = Attempt(
            number=1,
            spec=parse_job_spec({"script": "true"}),
            state=state,
            native_state=None,
            reason=None,
            native_id=None,
            exit_code=None,
            signal=None,
            cpu_time=None,
            peak_memory=None,
            submitted_at=now,
            started_at=now,
            finished_at=None,
            run_dir=None,
        )
        job = Job(
            id=1, name="x", backend="slurm", target=target.name, created_at=now, attempts=(attempt,)
        )
        jsonschema.validate(mapping.status_of(job, ref, target=target, now=now), schema)


def test_rbac_is_least_privilege() -> None:
    docs = documents(DEPLOY)
    rules = {
        (d["kind"], res): sorted(rule["verbs"])
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        for rule in d["rules"]
        for res in rule["resources"]
    }
    assert rules == {
        ("ClusterRole", "customresourcedefinitions"): ["list", "watch"],
        ("ClusterRole", "namespaces"): ["list", "watch"],
        ("Role", "slurmjobs"): ["get", "list", "patch", "watch"],
        ("Role", "slurmjobs/status"): ["get", "patch"],
        ("Role", "secrets"): ["get"],
        ("Role", "configmaps"): ["get"],
        ("Role", "pods"): ["create", "delete", "get"],
        ("Role", "events"): ["create"],
    }
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert (
        deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    # The operator image (`hpcbox images build --role operator`), as the chart runs it.
    assert container["command"] == ["python", "-m", "hpcbox.operator"]
    assert container["args"][:2] == ["--namespace", "hpcbox"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
