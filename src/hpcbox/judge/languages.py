"""The language registry: languages as data (``languages.yaml``), easy to extend.

Names carry the version really installed in the runtime root filesystem: the
registry file holds a template (``"Python ({version})"``) and the package whose
version fills it (see :func:`hpcbox.judge.rootfs.installed_versions`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import yaml

from hpcbox.core.errors import InvalidInputError

__all__ = ["Language", "expand_argv", "load_registry", "name_with_versions"]

_OPTIONS = "{options}"


@dataclass(frozen=True)
class Language:
    """One language: how to compile (optional) and run a source file in ``/box``."""

    key: str
    name: str
    judge0_id: int | None
    source_file: str
    compile_cmd: tuple[str, ...] | None
    run_cmd: tuple[str, ...]
    package: str = ""
    smoke_source: str = ""
    env: tuple[tuple[str, str], ...] = ()
    #: Boxes forked from the sandbox fork-server (see ``judge/sandbox/_zygote.py``):
    #: worth it where a run is mostly an interpreter's start, as for Python.
    fork_server: bool = False


def load_registry(path: Path | None = None) -> dict[str, Language]:
    """Read the registry (the packaged ``languages.yaml`` by default).

    Raise InvalidInputError naming the entry and field that is malformed.
    """
    if path is None:
        text = resources.files("hpcbox.judge").joinpath("languages.yaml").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
        raise InvalidInputError("the registry needs a 'languages' mapping", field="languages")
    return {str(k): _parse(str(k), v) for k, v in data["languages"].items()}


def _argv(key: str, field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise InvalidInputError(f"language {key}: {field} must be a list of strings", field=field)
    return tuple(value)


def _parse(key: str, entry: object) -> Language:
    if not isinstance(entry, dict):
        raise InvalidInputError(f"language {key} must be a mapping", field=key)
    for field in ("name", "source_file", "run"):
        if field not in entry:
            raise InvalidInputError(f"language {key} lacks {field!r}", field=field)
    judge0_id = entry.get("judge0_id")
    if judge0_id is not None and not isinstance(judge0_id, int):
        raise InvalidInputError(f"language {key}: judge0_id must be an integer", field="judge0_id")
    source = str(entry["source_file"])
    if "/" in source or source.startswith("."):
        raise InvalidInputError(f"language {key}: bad source_file {source!r}", field="source_file")
    compile_cmd = entry.get("compile")
    env = entry.get("env") or {}
    if not isinstance(env, dict):
        raise InvalidInputError(f"language {key}: env must be a mapping", field="env")
    fork_server = entry.get("fork_server", False)
    if not isinstance(fork_server, bool):
        raise InvalidInputError(
            f"language {key}: fork_server must be a boolean", field="fork_server"
        )
    return Language(
        key=key,
        name=str(entry["name"]),
        judge0_id=judge0_id,
        source_file=source,
        compile_cmd=None if compile_cmd is None else _argv(key, "compile", compile_cmd),
        run_cmd=_argv(key, "run", entry["run"]),
        package=str(entry.get("package") or ""),
        smoke_source=str(entry.get("smoke") or ""),
        env=tuple((str(k), str(v)) for k, v in env.items()),
        fork_server=fork_server,
    )


def name_with_versions(lang: Language, versions: Mapping[str, str]) -> Language:
    """``lang`` with ``{version}`` in its name replaced by its package's version."""
    version = versions.get(lang.package, "unknown")
    return replace(lang, name=lang.name.replace("{version}", version))


def expand_argv(argv: tuple[str, ...], *, options: str = "", memory_bytes: int = 0) -> list[str]:
    """``argv`` with ``{options}`` replaced by ``options`` split shell-like (never run
    by a shell) and ``{memory_mb}`` by the memory limit. InvalidInputError if
    ``options`` is not valid shell-like syntax (e.g. an unclosed quote)."""
    try:
        extra = shlex.split(options)
    except ValueError as exc:
        raise InvalidInputError(f"cannot split options: {exc}", field="compiler_options") from exc
    out: list[str] = []
    for arg in argv:
        if arg == _OPTIONS:
            out += extra
        else:
            out.append(arg.replace("{memory_mb}", str(max(1, memory_bytes // (1024 * 1024)))))
    return out
