"""kopf handlers for SlurmJob (thin): arguments in, :class:`SlurmJobController` call, errors out.

hpcbox errors map onto kopf's once, here: a TransientError, or a Secret or
ConfigMap that does not exist yet, becomes ``kopf.TemporaryError`` (kopf retries
the handler later); any other hpcbox error becomes ``kopf.PermanentError`` (kopf
stops retrying; the Event and the status say why). Handlers are registered on
:data:`registry`, not kopf's global one, so importing this module has no effect
on other kopf users in the same process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kopf

from hpcbox.core.errors import HpcboxError, NotFoundError, TransientError
from hpcbox.operator.controller import SlurmJobController
from hpcbox.operator.resource import GROUP, PLURAL, VERSION, ObjectRef

__all__ = ["controller_of", "kopf_error", "registry"]

log = logging.getLogger(__name__)

registry = kopf.OperatorRegistry()
#: Seconds before kopf retries a handler whose Secret or ConfigMap is missing.
MISSING_OBJECT_RETRY_S = 30.0


def controller_of(memo: Mapping[str, Any]) -> SlurmJobController:
    controller = memo.get("controller")
    if not isinstance(controller, SlurmJobController):
        raise kopf.PermanentError("the operator was started without its controller")
    return controller


def kopf_error(exc: HpcboxError) -> kopf.TemporaryError | kopf.PermanentError:
    """Whether kopf should retry: transient failures and objects that may yet appear."""
    if isinstance(exc, TransientError):
        return kopf.TemporaryError(str(exc), delay=max(exc.retry_after, 1.0))
    if isinstance(exc, NotFoundError):
        return kopf.TemporaryError(str(exc), delay=MISSING_OBJECT_RETRY_S)
    return kopf.PermanentError(str(exc))


@contextmanager
def _mapped(controller: SlurmJobController, ref: ObjectRef) -> Iterator[None]:
    try:
        yield
    except HpcboxError as exc:
        error = kopf_error(exc)
        controller.report(ref, exc, retrying=isinstance(error, kopf.TemporaryError))
        raise error from exc


def _ref(meta: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(namespace=str(meta["namespace"]), name=str(meta["name"]), uid=str(meta["uid"]))


@kopf.on.login(registry=registry)
def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own connection, as lightkube's: the Pod's service account, else the
    kubeconfig (``$KUBECONFIG``, ``~/.kube/config``). kopf's default login handlers
    live on its global registry (not :data:`registry`) and need the kubernetes or
    pykube-ng client, neither of which hpcbox installs: without this, kopf stops at
    once with "LoginError: Ran out of valid credentials"."""
    return kopf.login_with_service_account(
        settings=settings, **kwargs
    ) or kopf.login_with_kubeconfig(settings=settings, **kwargs)


@kopf.on.startup(registry=registry)
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations (the status is the user's), then start
    the one poller."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Handlers log through hpcbox's loggers; kopf's own messages are not turned into Events.
    settings.posting.enabled = False
    controller_of(memo).start()


@kopf.on.cleanup(registry=registry)
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    controller_of(memo).close()


@kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
@kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
def created(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, memo: kopf.Memo, **_: Any
) -> None:
    """Submit a new SlurmJob, or (on start-up) pick up where the last operator left."""
    controller, ref = controller_of(memo), _ref(meta)
    with _mapped(controller, ref):
        controller.ensure(ref, dict(spec), dict(status))


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
def edited(
    old: Any, new: Any, status: kopf.Status, meta: kopf.Meta, memo: kopf.Memo, **_: Any
) -> None:
    """An edit of the spec: a finished job reruns, an active one is left alone."""
    controller, ref = controller_of(memo), _ref(meta)
    with _mapped(controller, ref):
        controller.update(ref, dict(old or {}), dict(new or {}), dict(status))


@kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
def deleted(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, memo: kopf.Memo, **_: Any
) -> None:
    """scancel an active job; the finalizer stays until that has worked."""
    controller, ref = controller_of(memo), _ref(meta)
    with _mapped(controller, ref):
        controller.delete(ref, dict(spec), dict(status))
