"""Where hpcbox's Helm charts are: ``HPCBOX_CHARTS``, else ``charts/`` of the source
checkout hpcbox runs from."""

from __future__ import annotations

from pathlib import Path

from hpcbox.clusters.render.helm import SLURM_CHART
from hpcbox.core.errors import UnavailableError
from hpcbox.core.settings import Settings

__all__ = ["charts_dir"]


def charts_dir(settings: Settings) -> Path:
    """The directory holding hpcbox-slurm, hpcbox-jupyter and hpcbox-operator."""
    configured = settings.kube.charts
    # Else this file's checkout: src/hpcbox/clusters/kube/charts.py -> charts/.
    folder = Path(configured) if configured else Path(__file__).resolve().parents[4] / "charts"
    if not (folder / SLURM_CHART / "Chart.yaml").is_file():
        raise UnavailableError(
            f"no Helm charts at {folder}: set HPCBOX_CHARTS to the charts/ folder of an "
            "hpcbox source checkout"
        )
    return folder
