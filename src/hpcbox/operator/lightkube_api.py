"""The real :class:`~hpcbox.operator.kube.KubeApi`, on the lightkube client.

kopf talks to the API server for its own needs (watching SlurmJobs, finalizers,
its annotations) but offers no public call to read a Secret or create a Pod, so
the operator's own calls go through lightkube, a small typed client. The
connection comes from the in-cluster service account, else ``$KUBECONFIG`` /
``~/.kube/config`` (lightkube's ``KubeConfig.from_env``).

Run against a real API server (Kubernetes v1.34, ``scripts/kube.sh``) by
tests/integration/kube/test_operator_chart.py: Secrets read, statuses patched, Events
posted, log Pods created and read. The logic above this seam is tested with a fake.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, Client
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Event, Pod, Secret
from lightkube.types import PatchType

from hpcbox.core.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
    UnavailableError,
)
from hpcbox.operator.kube import EventType
from hpcbox.operator.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION, ObjectRef

__all__ = ["LightkubeApi"]

SlurmJobResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
_T = TypeVar("_T")
COMPONENT = "hpcbox-operator"


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """lightkube's and httpx's errors -> hpcbox's, once, at the boundary."""
    try:
        yield
    except ApiError as exc:
        code = exc.status.code or 0
        # The API server's message names the object; it never carries a Secret's data.
        message = f"{what}: {exc.status.message or exc.status.reason or code}"[:1000]
        if code == 404:
            raise NotFoundError(message) from exc
        if code == 409:
            raise ConflictError(message) from exc
        if code == 429 or code >= 500:
            raise TransientError(message, retry_after=5.0) from exc
        raise PermanentError(message) from exc
    except httpx2.HTTPError as exc:
        raise TransientError(f"{what}: Kubernetes API unreachable: {exc}", retry_after=5.0) from exc


class LightkubeApi:
    """KubeApi over one lightkube :class:`Client` (thread-safe, connection-pooled)."""

    def __init__(self, client: Client | None = None) -> None:
        if client is None:
            try:
                client = Client(field_manager=COMPONENT)
            except ConfigError as exc:
                raise UnavailableError(
                    f"no Kubernetes configuration: {exc} (run in a Pod with a service "
                    "account, or set KUBECONFIG)"
                ) from exc
        self.client = client

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        with _translated(what):
            return fn()

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes]:
        secret = self._call(
            f"Secret {namespace}/{name}",
            lambda: self.client.get(Secret, name, namespace=namespace),
        )
        try:
            return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        except (binascii.Error, ValueError) as exc:
            raise PermanentError(f"Secret {namespace}/{name}: data is not base64") from exc

    def read_config_map(self, namespace: str, name: str) -> dict[str, str]:
        config = self._call(
            f"ConfigMap {namespace}/{name}",
            lambda: self.client.get(ConfigMap, name, namespace=namespace),
        )
        return dict(config.data or {})

    def patch_status(self, ref: ObjectRef, status: Mapping[str, Any]) -> None:
        self._call(
            f"SlurmJob {ref}",
            lambda: self.client.patch(
                SlurmJobResource.Status,
                ref.name,
                {"status": dict(status)},
                namespace=ref.namespace,
                patch_type=PatchType.MERGE,
            ),
        )

    def post_event(self, ref: ObjectRef, *, type: EventType, reason: str, message: str) -> None:
        now = datetime.now(UTC)
        event = Event(
            metadata=ObjectMeta(generateName=f"{ref.name}.", namespace=ref.namespace),
            involvedObject=ObjectReference(
                apiVersion=API_VERSION,
                kind=KIND,
                name=ref.name,
                namespace=ref.namespace,
                uid=ref.uid,
            ),
            type=type,
            reason=reason,
            message=message[:1024],
            source=EventSource(component=COMPONENT),
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        self._call(f"Event for SlurmJob {ref}", lambda: self.client.create(event))

    def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            pod = self._call(
                f"Pod {namespace}/{name}", lambda: self.client.get(Pod, name, namespace=namespace)
            )
        except NotFoundError:
            return None
        meta = pod.metadata
        return {
            "name": name,
            "labels": dict((meta.labels if meta else None) or {}),
            "annotations": dict((meta.annotations if meta else None) or {}),
        }

    def create_pod(self, manifest: Mapping[str, Any]) -> None:
        pod = Pod.from_dict(dict(manifest))
        if not isinstance(pod, Pod):  # from_dict is typed loosely
            raise PermanentError("the log Pod manifest is not a Pod")
        meta = manifest["metadata"]
        self._call(
            f"Pod {meta['namespace']}/{meta['name']}",
            lambda: self.client.create(pod, namespace=meta["namespace"]),
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self._call(
                f"Pod {namespace}/{name}",
                lambda: self.client.delete(Pod, name, namespace=namespace, grace_period=0),
            )
        except NotFoundError:
            return
