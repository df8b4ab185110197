"""The one Settings model: every HPCBOX_* variable, read into its group, documented
in docs/configuration.md (generated from the model and compared here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.settings import (
    ENV_PREFIX,
    REGENERATE,
    ApiSettings,
    ImagesSettings,
    JobsSettings,
    JudgeSettings,
    Settings,
    SlurmSettings,
    configuration_page,
    env_table,
    env_variables,
    reveal,
)

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "configuration.md"

#: A value for every variable, and what the setting then holds. A variable added to
#: the model without a line here fails test_every_variable_is_read_into_its_setting.
SAMPLES: dict[str, tuple[str, Any]] = {
    "HPCBOX_HOME": ("/srv/hpcbox", Path("/srv/hpcbox")),
    "HPCBOX_DATABASE_URL": (
        "postgresql+psycopg://u:pw@db/hpcbox",
        "postgresql+psycopg://u:pw@db/hpcbox",
    ),
    "HPCBOX_CPUS": ("6", 6),
    "HPCBOX_MEMORY": ("2G", 2 * 1024**3),
    "HPCBOX_AGENT_IDLE_SECONDS": ("4.5", 4.5),
    "HPCBOX_SLURM_RATE_LIMIT": ("0.5", 0.5),
    "HPCBOX_SLURM_RATE_BURST": ("3", 3),
    "HPCBOX_SSH_PASSWORD": ("common-pw", "common-pw"),
    "HPCBOX_SSH_PASSWORD_<TARGET>": ("own-pw", {"MY_CLUSTER": "own-pw"}),
    "HPCBOX_BROKER_URL": ("redis://:pw@127.0.0.1:6379/0", "redis://:pw@127.0.0.1:6379/0"),
    "HPCBOX_JUDGE_THREADS": ("3", 3),
    "HPCBOX_JUDGE_POOL_SIZE": ("python3=3,*=1", {"python3": 3, "*": 1}),
    "HPCBOX_JUDGE_LEASE_SECONDS": ("2", 2.0),
    "HPCBOX_JUDGE_RETENTION_SECONDS": ("60", 60),
    "HPCBOX_JUDGE_MAX_QUEUE": ("1000", 1000),
    "HPCBOX_JUDGE_CALLBACK_SECRET": ("callback-secret", "callback-secret"),
    "HPCBOX_JUDGE_CALLBACK_TRIES": ("5", 5),
    "HPCBOX_JUDGE_CALLBACK_TIMEOUT": ("2.5", 2.5),
    "HPCBOX_JUDGE_CALLBACK_BACKOFF": ("0.2", 0.2),
    "HPCBOX_JUDGE_CACHE": ("/var/tmp/hpcbox-test-judge", Path("/var/tmp/hpcbox-test-judge")),
    "HPCBOX_SYSTEM_CACHE_DIR": ("/srv/cache", Path("/srv/cache")),
    "HPCBOX_API_TOKEN": ("api-token", "api-token"),
    "HPCBOX_IMAGES_HOST_CA": ("none", "none"),
    "HPCBOX_HELM": ("/opt/bin/helm", "/opt/bin/helm"),
    "HPCBOX_KUBECTL": ("/opt/bin/kubectl", "/opt/bin/kubectl"),
    "HPCBOX_CHARTS": ("/srv/charts", "/srv/charts"),
}


def _at(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split(".")[1:]:
        value = getattr(value, part)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in value.items()
        }
    return value


def _env(name: str, raw: str) -> dict[str, str]:
    key = name.replace("<TARGET>", "MY_CLUSTER")
    return {"HPCBOX_HOME": "/srv/hpcbox", key: raw}


# -- the page -----------------------------------------------------------------------


def test_the_docs_page_is_the_one_the_model_generates() -> None:
    generated = configuration_page()
    on_disk = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    assert on_disk == generated, (
        f"docs/configuration.md is not what the settings model generates; run:\n  {REGENERATE}"
    )


def test_the_module_prints_the_page() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcbox.core.settings"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert proc.stdout == configuration_page()
    assert REGENERATE in proc.stdout


def test_every_variable_is_one_row_named_with_the_prefix() -> None:
    names = [row.name for row in env_variables()]
    assert len(names) == len(set(names))
    assert all(name.startswith(ENV_PREFIX) for name in names)
    table = env_table()
    for name in names:
        assert table.count(f"| `{name}` |") == 1, name
    # Every group's variables are in the one table, under the group's path.
    for group in (JobsSettings, SlurmSettings, JudgeSettings, ApiSettings, ImagesSettings):
        for row in env_variables(group):
            assert row.setting.startswith(f"settings.{group.group}."), row
            assert f"| `{row.name}` | `{row.setting}` |" in table


def test_every_hpcbox_variable_in_the_tree_is_on_the_page() -> None:
    page = configuration_page()
    names: dict[str, Path] = {}
    word = re.compile(r"HPCBOX_[A-Z0-9_]+")
    for base in (ROOT / "src" / "hpcbox", ROOT / "scripts"):
        for path in base.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for name in word.findall(text):
                if not name.endswith("_"):  # a prefix (HPCBOX_JUDGE_*), not a variable
                    names.setdefault(name, path)
    read = re.compile(r"""(?:environ\.get\(|getenv\(|environ\[)["'](HPCBOX_[A-Z0-9_]+)""")
    for base in (ROOT / "tests", ROOT / "bench"):
        for path in base.rglob("*.py"):
            for name in read.findall(path.read_text(encoding="utf-8")):
                names.setdefault(name, path)
    missing = {name: str(path.relative_to(ROOT)) for name, path in names.items()}
    missing = {name: where for name, where in missing.items() if f"`{name}`" not in page}
    assert not missing, (
        f"HPCBOX_ variables missing from docs/configuration.md: {missing}; add them to "
        f"hpcbox.core.settings (a setting, SET_BY_HPCBOX or DEVELOPMENT), then run {REGENERATE}"
    )


# -- reading ------------------------------------------------------------------------


def test_every_variable_is_read_into_its_setting() -> None:
    rows = {row.name: row for row in env_variables()}
    assert set(rows) == set(SAMPLES)
    for name, (raw, expected) in SAMPLES.items():
        settings = Settings.from_env(_env(name, raw))
        assert _at(settings, rows[name].setting) == expected, name


def test_unset_and_empty_variables_leave_the_defaults(tmp_path: Path) -> None:
    defaults = Settings(home=tmp_path)
    empty = {name.replace("<TARGET>", "EMPTY"): "" for name in SAMPLES}
    for env in ({}, empty):
        assert Settings.from_env({**env, "HPCBOX_HOME": str(tmp_path)}) == defaults
    assert defaults.jobs == JobsSettings()
    assert (defaults.jobs.cpus, defaults.jobs.agent_idle_seconds) == (None, 30.0)
    assert defaults.jobs.default_pids_limit == 4096
    assert (defaults.slurm.rate_limit, defaults.slurm.rate_burst) == (2.0, 10)
    assert defaults.judge.threads is None and defaults.judge.max_queue == 100
    assert defaults.api.token is None and defaults.images.host_ca is None


def test_the_default_home_follows_xdg_and_home() -> None:
    assert Settings.from_env({"HOME": "/home/ann"}).home == Path("/home/ann/.local/share/hpcbox")
    xdg = {"HOME": "/home/ann", "XDG_DATA_HOME": "/data/ann"}
    assert Settings.from_env(xdg).home == Path("/data/ann/hpcbox")
    assert Settings.from_env({"HPCBOX_HOME": "~/state", "HOME": "/x"}).home.is_absolute()


def test_os_environ_is_read_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPCBOX_HOME", str(tmp_path))
    monkeypatch.setenv("HPCBOX_CPUS", "3")
    monkeypatch.setenv("HPCBOX_DATABASE_URL", "postgresql+psycopg://u:pw@db/x")
    assert Settings.from_env().jobs.cpus == 3
    assert JobsSettings.from_env().cpus == 3
    # Built in Python: what it was given and the defaults, never the shell's.
    built = Settings(home=tmp_path / "other")
    assert built.jobs.cpus is None and built.database_url is None
    assert JobsSettings().cpus is None


def test_a_group_reads_only_its_own_variables() -> None:
    env = {"HPCBOX_CPUS": "many", "HPCBOX_SSH_PASSWORD": "pw"}
    assert reveal(SlurmSettings.from_env(env).ssh_password) == "pw"
    with pytest.raises(InvalidInputError, match="HPCBOX_CPUS"):
        Settings.from_env(env)


def test_ssh_passwords_per_target_then_the_common_one() -> None:
    env = {"HPCBOX_SSH_PASSWORD": "common", "HPCBOX_SSH_PASSWORD_MY_CLUSTER": "own"}
    slurm = SlurmSettings.from_env(env)
    assert reveal(slurm.ssh_password_for("my-cluster")) == "own"
    assert reveal(slurm.ssh_password_for("other")) == "common"
    assert SlurmSettings.from_env({}).ssh_password_for("my-cluster") is None


# -- errors and secrets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HPCBOX_CPUS", "four"),
        ("HPCBOX_MEMORY", "lots"),
        ("HPCBOX_AGENT_IDLE_SECONDS", "soon"),
        ("HPCBOX_SLURM_RATE_LIMIT", "nan"),
        ("HPCBOX_SLURM_RATE_BURST", "0"),
        ("HPCBOX_JUDGE_THREADS", "x"),
        ("HPCBOX_JUDGE_POOL_SIZE", "python3=-1"),
        ("HPCBOX_JUDGE_MAX_QUEUE", "1.5"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        Settings.from_env({"HPCBOX_HOME": "/srv/hpcbox", name: value})
    assert err.value.field == name
    assert str(err.value).startswith(f"{name}: ")


def test_secrets_never_show() -> None:
    secrets = {row.name for row in env_variables() if row.secret}
    assert secrets == {
        "HPCBOX_DATABASE_URL",
        "HPCBOX_SSH_PASSWORD",
        "HPCBOX_SSH_PASSWORD_<TARGET>",
        "HPCBOX_BROKER_URL",
        "HPCBOX_JUDGE_CALLBACK_SECRET",
        "HPCBOX_API_TOKEN",
    }
    env = {"HPCBOX_HOME": "/srv/hpcbox"}
    for name in secrets:
        env[name.replace("<TARGET>", "T")] = f"clear-{name}"
    settings = Settings.from_env(env)
    shown = [repr(settings), str(settings), settings.model_dump_json()]
    assert not [text for text in shown if "clear-" in text]
    assert reveal(settings.api.token) == "clear-HPCBOX_API_TOKEN"
    assert settings.effective_database_url() == "clear-HPCBOX_DATABASE_URL"


def test_the_error_shows_the_value_it_refused() -> None:
    with pytest.raises(InvalidInputError) as err:
        Settings.from_env({"HPCBOX_HOME": "/h", "HPCBOX_CPUS": "four"})
    assert "'four'" in str(err.value)


# -- Python callers -------------------------------------------------------------------


def test_the_flat_names_of_the_first_model_still_work(tmp_path: Path) -> None:
    flat = Settings(
        home=tmp_path,
        cpus=2,
        memory_bytes=4 * 1024**3,
        agent_idle_seconds=2.0,
        default_pids_limit=None,
        slurm_rate_limit=None,
        slurm_rate_burst=3,
    )
    grouped = Settings(
        home=tmp_path,
        jobs=JobsSettings(
            cpus=2, memory_bytes=4 * 1024**3, agent_idle_seconds=2.0, default_pids_limit=None
        ),
        slurm=SlurmSettings(rate_limit=None, rate_burst=3),
    )
    assert flat == grouped
    assert (flat.cpus, flat.memory_bytes, flat.agent_idle_seconds) == (2, 4 * 1024**3, 2.0)
    assert (flat.default_pids_limit, flat.slurm_rate_limit, flat.slurm_rate_burst) == (
        None,
        None,
        3,
    )
    # A flat name beside its group adds to the group.
    mixed = Settings(home=tmp_path, jobs=JobsSettings(cpus=2), agent_idle_seconds=2.0)
    assert (mixed.jobs.cpus, mixed.jobs.agent_idle_seconds) == (2, 2.0)
    with pytest.raises(ValueError, match="frozen"):
        flat.home = tmp_path  # type: ignore[misc]


def test_to_env_rebuilds_the_settings_a_child_needs(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url="postgresql+psycopg://u:pw@db/x",
        cpus=2,
        memory_bytes=4 * 1024**3,
        agent_idle_seconds=2.0,
        slurm_rate_limit=0.5,
        slurm_rate_burst=3,
        api=ApiSettings(token="t"),
    )
    env = settings.to_env()
    assert env == {
        "HPCBOX_HOME": str(tmp_path),
        "HPCBOX_AGENT_IDLE_SECONDS": "2.0",
        "HPCBOX_DATABASE_URL": "postgresql+psycopg://u:pw@db/x",
        "HPCBOX_CPUS": "2",
        "HPCBOX_MEMORY": f"{4 * 1024**2}K",
        "HPCBOX_SLURM_RATE_LIMIT": "0.5",
        "HPCBOX_SLURM_RATE_BURST": "3",
    }
    child = Settings.from_env(env)
    assert child.model_copy(update={"api": ApiSettings(token="t")}) == settings
    assert Settings.from_env(Settings(home=tmp_path).to_env()) == Settings(home=tmp_path)


def test_env_name_names_the_variable_of_a_field() -> None:
    assert ImagesSettings.env_name("host_ca") == "HPCBOX_IMAGES_HOST_CA"
    assert JudgeSettings.env_name("cache") == "HPCBOX_JUDGE_CACHE"
    with pytest.raises(KeyError):
        JobsSettings.env_name("default_pids_limit")
