"""Manifests as YAML text: one multi-document stream, or one file per manifest.

Internal; re-exported by :mod:`hpcbox.clusters.render.kubernetes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

__all__ = ["manifest_files", "manifests_yaml"]


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (configuration files) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def manifests_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    """One multi-document YAML text (``---`` before each document), keys in
    the order the manifests were built, so equal input gives equal text."""
    return yaml.dump_all(
        [dict(m) for m in manifests],
        Dumper=_Dumper,
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def manifest_files(manifests: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """One YAML text per manifest, keyed by a file name whose number keeps the
    apply order (``kubectl apply -f DIR`` reads files sorted by name):
    ``00-namespace-hpcbox-demo.yaml``, ``01-secret-munge-key.yaml``, ...
    """
    width = max(2, len(str(len(manifests) - 1)))
    files = {}
    for index, manifest in enumerate(manifests):
        kind = str(manifest["kind"]).lower()
        name = str(manifest["metadata"]["name"])
        files[f"{index:0{width}d}-{kind}-{name}.yaml"] = manifests_yaml([manifest])
    return files
