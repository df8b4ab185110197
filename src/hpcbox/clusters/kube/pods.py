"""What a pod's status says: ready, or why not (an image the cluster lacks, a crash)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "IMAGE_PROBLEMS",
    "LOAD_HINT",
    "component",
    "images_missing",
    "node_name",
    "pod_ready",
    "pod_state",
]

#: Waiting reasons that mean the node lacks the image (hpcbox loads nothing itself).
IMAGE_PROBLEMS = frozenset(
    {"ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName"}
)
LOAD_HINT = "scripts/kube.sh load"
COMPONENT = "app.kubernetes.io/component"


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Running, not being deleted, and its Ready condition true."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )


def pod_state(pod: Mapping[str, Any]) -> str:
    """One word for ``cluster status``: Ready, a waiting reason, the phase, Terminating."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    if pod_ready(pod):
        return "Ready"
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def images_missing(pod: Mapping[str, Any]) -> list[str]:
    """The images the pod's containers wait for because the node lacks them."""
    missing = []
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PROBLEMS:
            missing.append(str(container.get("image", "?")))
    return missing


def node_name(pod: Mapping[str, Any]) -> str:
    """The node's name as hpcbox (and SLURM) call it: the pod's hostname when it sets
    one (``controller``, ``hub``), else the pod's name (``worker-0``)."""
    spec = pod.get("spec") or {}
    return str(spec.get("hostname") or pod["metadata"]["name"])


def component(pod: Mapping[str, Any]) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return str(labels.get(COMPONENT, ""))
