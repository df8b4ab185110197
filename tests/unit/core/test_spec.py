from __future__ import annotations

import json

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.model.spec import MAX_SCRIPT_BYTES, JobSpec, parse_job_spec

HOSTILE = [
    'it\'s "quoted"',
    "a; rm -rf /",
    "$(touch /tmp/pwned) `id`",
    "line1\nline2\r\n",
    "ünïcødé ✓ 漢字 🚀",
    "x" * 4000,
]


def test_json_form_is_stable_and_round_trips() -> None:
    spec = parse_job_spec(
        {
            "name": "demo",
            "script": "#!/bin/bash\necho hi\n",
            "resources": {"cpus_per_task": 2, "memory": "512M", "time_limit": "1:30:00"},
            "env": {"A": "1"},
        }
    )
    data = json.loads(spec.model_dump_json())
    assert data == {
        "name": "demo",
        "script": "#!/bin/bash\necho hi\n",
        "command": None,
        "resources": {
            "nodes": 1,
            "ntasks": 1,
            "cpus_per_task": 2,
            "memory": "512M",
            "time_limit": "01:30:00",
            "partition": None,
        },
        "workdir": None,
        "env": {"A": "1"},
    }
    assert JobSpec.model_validate(data) == spec
    assert spec.resources.memory == 512 * 1024**2
    assert spec.resources.time_limit == 5400
    assert spec.resources.cpus == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"script": "x", "resources": {"memory": "lots"}}, "resources.memory"),
        ({"script": "x", "resources": {"time_limit": "soon"}}, "resources.time_limit"),
        ({"script": "x", "resources": {"cpus_per_task": 0}}, "resources.cpus_per_task"),
        ({"script": "x", "resources": {"nodes": -1}}, "resources.nodes"),
        ({"script": "x", "resources": {"partition": "a b"}}, "resources.partition"),
        ({"script": "x", "resources": {"gpus": 1}}, "resources.gpus"),
        ({"script": "x", "workdir": "relative/dir"}, "workdir"),
        ({"script": "x", "env": {"1BAD": "v"}}, "env"),
        ({"script": "x", "env": {"A": "nul\x00"}}, "env"),
        ({"script": "   "}, "script"),
        ({"command": []}, "command"),
        ({"command": [""]}, "command"),
        ({"script": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_values_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_job_spec(data)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize("data", [{}, {"script": "x", "command": ["true"]}])
def test_exactly_one_of_script_and_command(data: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="exactly one"):
        parse_job_spec(data)


def test_script_size_is_capped() -> None:
    with pytest.raises(InvalidInputError, match="larger than"):
        parse_job_spec({"script": "#" * (MAX_SCRIPT_BYTES + 1)})


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_kept_verbatim(text: str) -> None:
    spec = parse_job_spec({"name": text, "command": ["echo", text], "env": {"V": text}})
    again = JobSpec.model_validate_json(spec.model_dump_json())
    assert again.name == text
    assert again.command == ["echo", text]
    assert again.env["V"] == text


def test_display_name_and_with_script() -> None:
    assert parse_job_spec({"command": ["/usr/bin/python3", "-V"]}).display_name() == "python3"
    spec = parse_job_spec({"name": "n", "command": ["true"]})
    edited = spec.with_script("echo edited")
    sized = parse_job_spec({"command": ["true"], "resources": {"memory": "256M", "time_limit": 5}})
    resized = sized.with_script("x")
    assert resized.resources.memory == 256 * 1024**2
    assert resized.resources.time_limit == 300
    assert edited.script == "echo edited"
    assert edited.command is None
    assert edited.name == "n"
