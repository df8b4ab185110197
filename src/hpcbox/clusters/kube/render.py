"""``hpcbox cluster render --target kubernetes``: the chart's own manifests for a spec
(``helm template`` with the values of :mod:`hpcbox.clusters.render.helm`), so that
plain manifests and ``helm install`` never differ: one source of truth, the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpcbox.clusters.render.helm import HelmOptions, chart_name, helm_values
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.infra.kube import HelmApi

__all__ = ["render_manifests"]


def render_manifests(
    spec: ClusterSpec,
    helm: HelmApi,
    charts: Path,
    *,
    namespace: str | None = None,
    options: HelmOptions | None = None,
) -> list[dict[str, Any]]:
    """The manifests ``helm install`` of ``spec`` would apply, release named after the
    cluster, in ``namespace`` (default ``hpcbox-<name>``). Secrets the chart generates
    (the munge key, an SSH host key, the database password) are fresh at each render."""
    text = helm.template(
        spec.name,
        str(charts / chart_name(spec)),
        namespace or f"hpcbox-{spec.name}",
        helm_values(spec, options),
    )
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
