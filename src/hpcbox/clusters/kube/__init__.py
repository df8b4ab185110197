"""Clusters on Kubernetes: a ClusterSpec installed as a release of hpcbox's Helm chart
for its kind (``hpcbox cluster up --runtime kubernetes``), then status, scale, exec and
down as on Podman.

- :mod:`.placement`: which Kubernetes cluster and namespace a cluster lives in;
- :mod:`.charts`: where the charts are;
- :mod:`.pods`: what a pod's status says (ready, or why not);
- :mod:`.manager`: :class:`KubeClusters`, over the helm/kubectl seams of
  :mod:`hpcbox.infra.kube`.
"""

from hpcbox.clusters.kube.charts import charts_dir
from hpcbox.clusters.kube.manager import KubeClusters, ToolsFactory, default_tools
from hpcbox.clusters.kube.placement import KubePlacement
from hpcbox.clusters.kube.render import render_manifests

__all__ = [
    "KubeClusters",
    "KubePlacement",
    "ToolsFactory",
    "charts_dir",
    "default_tools",
    "render_manifests",
]
