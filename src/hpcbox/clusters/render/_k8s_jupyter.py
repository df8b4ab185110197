"""Kubernetes manifests of a ``jupyter`` cluster (internal to :mod:`.kubernetes`).

- ConfigMaps ``jupyterhub-config`` (``jupyterhub_config.py``), ``users``
  (passwd, group) and ``node-setup`` (the nodes' one start-up script, roles
  ``hub`` and ``engines``); Secret ``users-shadow`` (the hashed passwords).
- The hub: a one-replica Deployment with hostname ``hub`` running
  ipcontroller and JupyterHub; a headless Service ``hub`` (engines and clients
  reach the controller's ports, which it picks itself, at the pod's address),
  a Service ``hub-http`` and an Ingress in front of the proxy.
- The engines: a Deployment ``engines``, one pod per worker, each running
  ``engines_per_worker`` ipengines (``kubectl scale deployment/engines``
  adds or removes them; clients see the new count).
- Homes: the ``home`` claim (made by the caller), where the controller's
  connection files live too.
"""

from __future__ import annotations

from typing import Any

from hpcbox.clusters.render import _k8s
from hpcbox.clusters.render._k8s import Manifest, Names
from hpcbox.clusters.render.accounts import accounts, group_lines, passwd_lines, shadow_lines
from hpcbox.clusters.render.jupyter import (
    HUB_HOST,
    HUB_PORT,
    HUB_STATE_DIR,
    render_jupyterhub_config,
)
from hpcbox.clusters.render.layout import HOME_ROOT
from hpcbox.clusters.render.node import ACCOUNTS_DIR
from hpcbox.clusters.spec import ClusterSpec

__all__ = ["ENGINES_DEPLOYMENT", "jupyter_manifests"]

ENGINES_DEPLOYMENT = "engines"


def _container(
    names: Names, name: str, image: str, role: str, resources: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": _k8s.node_command(role),
        "env": _k8s.node_env(names, role),
        "resources": resources,
        "volumeMounts": [
            _k8s.setup_mount(),
            _k8s.mount("accounts", ACCOUNTS_DIR, read_only=True),
            _k8s.mount("home", HOME_ROOT),
        ],
    }


def _volumes() -> list[dict[str, Any]]:
    return [
        _k8s.setup_volume(),
        {
            "name": "accounts",
            "projected": {
                # Owner-only: the script (root) merges them into /etc.
                "defaultMode": 0o400,
                "sources": [
                    {"configMap": {"name": "users"}},
                    {"secret": {"name": "users-shadow"}},
                ],
            },
        },
        {"name": "home", "persistentVolumeClaim": {"claimName": "home"}},
    ]


def _hub(names: Names, image: str) -> Manifest:
    container = _container(
        names, "jupyterhub", image, "hub", {"requests": {"cpu": "500m", "memory": "1Gi"}}
    )
    container["ports"] = _k8s.container_ports([("http", HUB_PORT)])
    container["readinessProbe"] = {
        "httpGet": {"path": "/hub/api", "port": HUB_PORT},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    container["volumeMounts"] += [
        _k8s.mount("hub-config", "/etc/jupyterhub", read_only=True),
        # The hub's database and cookie secret: lost with the pod, so users log
        # in again after a restart; their homes and notebooks are on the claim.
        _k8s.mount("hub-state", HUB_STATE_DIR),
    ]
    volumes = [
        *_volumes(),
        {"name": "hub-config", "configMap": {"name": "jupyterhub-config"}},
        {"name": "hub-state", "emptyDir": {}},
    ]
    template = _k8s.pod_template(names, "hub", container, volumes, hostname=HUB_HOST)
    return _k8s.deployment(names, HUB_HOST, "hub", template)


def _engines(names: Names, spec: ClusterSpec, image: str) -> Manifest:
    cpus = str(spec.workers.cpus)
    memory = f"{spec.workers.memory // 1024**2}Mi"
    container = _container(
        names,
        "ipengine",
        image,
        "engines",
        # Guaranteed QoS, as for SLURM workers.
        {"requests": {"cpu": cpus, "memory": memory}, "limits": {"cpu": cpus, "memory": memory}},
    )
    container["env"].append({"name": "HPCBOX_ENGINES", "value": str(spec.engines_per_worker)})
    template = _k8s.pod_template(names, "engines", container, _volumes())
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.meta(ENGINES_DEPLOYMENT, "engines"),
        "spec": {
            "replicas": spec.workers.count,
            "selector": {"matchLabels": names.selector("engines")},
            "template": template,
        },
    }


def _ingress(names: Names, host: str | None) -> Manifest:
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "hub-http", "port": {"number": HUB_PORT}}},
                }
            ]
        }
    }
    if host is not None:
        rule = {"host": host, **rule}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": names.meta("hub", "hub"),
        "spec": {"rules": [rule]},
    }


def jupyter_manifests(
    names: Names, spec: ClusterSpec, image: str, *, ingress_host: str | None = None
) -> list[Manifest]:
    """Secrets, ConfigMaps, Services, the hub and engine Deployments and the Ingress
    (the namespace and the ``home`` claim come from the caller). ``image`` is the
    jupyter image's full reference; ``ingress_host`` a checked DNS name or None."""
    users = accounts(spec)
    return [
        _k8s.secret(names, "users-shadow", "cluster", {"shadow": shadow_lines(users)}),
        _k8s.config_map(
            names, "users", "cluster", {"passwd": passwd_lines(users), "group": group_lines(users)}
        ),
        _k8s.config_map(
            names,
            "jupyterhub-config",
            "hub",
            {"jupyterhub_config.py": render_jupyterhub_config(spec)},
        ),
        _k8s.node_setup(names),
        _k8s.service(names, HUB_HOST, "hub", [("http", HUB_PORT)], headless=True),
        _k8s.service(names, "hub-http", "hub", [("http", HUB_PORT)]),
        _hub(names, image),
        _engines(names, spec, image),
        _ingress(names, ingress_host),
    ]
