"""Kubernetes through its own command-line tools: ``helm`` and ``kubectl`` as
subprocesses (argv lists, never a shell), found by :func:`find_tool`.

Thin adapters: :class:`Helm` and :class:`Kubectl` run one command each and turn
its failure into an :class:`~hpcbox.core.errors.HpcboxError`; what to install and
when a cluster is usable is :mod:`hpcbox.clusters.kube`'s business. The seams the
pillars program against are :class:`HelmApi` and :class:`KubectlApi`.
"""

from hpcbox.infra.kube.api import HelmApi, KubeContext, KubectlApi
from hpcbox.infra.kube.helm import Helm
from hpcbox.infra.kube.kubectl import Kubectl
from hpcbox.infra.kube.tools import BUILD_HINT, find_tool

__all__ = ["BUILD_HINT", "Helm", "HelmApi", "KubeContext", "Kubectl", "KubectlApi", "find_tool"]
