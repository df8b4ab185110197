"""The REST API: a thin FastAPI shell over :class:`hpcbox.jobs.engine.JobEngine`.

``/v1/...`` is hpcbox's own API. Errors are mapped once, by exception handlers:
every :class:`HpcboxError` becomes its ``http_status`` with a JSON ``detail``
(``Retry-After`` with a TransientError's 503), or Judge0's ``{"error"}`` under
``/judge0``; invalid specs answer 422 with one entry per offending field, as
FastAPI does.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpcbox import __version__
from hpcbox.api.auth import require_token
from hpcbox.api.judge0 import JUDGE0_PREFIX, judge0_error, judge0_router
from hpcbox.api.judge0_metrics import JudgeCollector
from hpcbox.api.metrics import Metrics
from hpcbox.api.submissions import submissions_router
from hpcbox.core.errors import HpcboxError, InvalidInputError
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import JobState
from hpcbox.judge.queue.queue import JudgeQueue

__all__ = ["JobSubmission", "RerunRequest", "TargetRequest", "create_app"]


class JobSubmission(JobSpec):
    """The body of ``POST /v1/jobs``: a JobSpec, plus where to run it."""

    target: str | None = Field(default=None, description="Target name; default: local")

    def spec(self) -> JobSpec:
        # JSON mode, so that sizes and durations validate back to the same values.
        return JobSpec.model_validate(self.model_dump(mode="json", exclude={"target"}))


class RerunRequest(BaseModel):
    """The optional body of ``POST /v1/jobs/{id}/rerun``."""

    model_config = ConfigDict(extra="forbid")
    script: str | None = Field(default=None, description="An edited script to run instead")


class TargetRequest(BaseModel):
    """The body of ``POST /v1/targets``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    url: str = Field(description="ssh://USER@HOST[:PORT]")
    key_path: str | None = None
    known_hosts: str | None = None
    host_key: str | None = None
    rate_limit: float | None = Field(
        default=None, description="SLURM commands per second (0: no limit; default: the setting)"
    )


def _error(exc: HpcboxError) -> JSONResponse:
    if isinstance(exc, InvalidInputError):
        loc = ["body", *(exc.field.split(".") if exc.field else [])]
        content: dict[str, Any] = {
            "detail": [{"loc": loc, "msg": exc.detail, "type": "value_error"}]
        }
    else:
        content = {"detail": exc.message, "error": type(exc).__name__}
    headers = {}
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(int(max(1, retry)))
    return JSONResponse(content, status_code=exc.http_status, headers=headers)


class _MeasureRequests:
    """Counts and times every HTTP request for ``/metrics``, by route template.

    Plain ASGI on purpose: ``@app.middleware("http")`` (Starlette's
    BaseHTTPMiddleware) runs every request through an extra task and memory
    streams, about 0.4 ms of CPU a request, which a Judge0 client polling a
    submission pays on every poll.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router writes the matched route into this same scope.
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def create_app(
    engine: JobEngine, *, token: str | None = None, judge_queue: JudgeQueue | None = None
) -> FastAPI:
    """Build the app around ``engine``; ``token`` enables bearer auth on ``/v1``.
    With ``judge_queue``, the judge's routes too (``/v1/submissions``, ``/judge0``)."""
    app = FastAPI(
        title="hpcbox",
        version=__version__,
        description="Batch jobs, clusters and sandboxes: hpcbox's REST API.",
    )
    metrics = Metrics(engine.store.count_by_state)
    auth = [Depends(require_token(token))]
    if judge_queue is not None:
        metrics.registry.register(JudgeCollector(judge_queue))
        app.include_router(submissions_router(judge_queue, token=token))
        app.include_router(judge0_router(judge_queue, token=token))

    @app.exception_handler(HpcboxError)
    async def _hpcbox_error(request: Request, exc: HpcboxError) -> JSONResponse:
        # The route that raised, as the router matched it (mount points aside).
        route = getattr(request.scope.get("route"), "path", "")
        if route == JUDGE0_PREFIX or route.startswith(JUDGE0_PREFIX + "/"):
            return judge0_error(exc)
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own handler, but ASCII-escaped: the errors echo the input, and
        # a lone surrogate ("\ud800" is valid JSON) cannot be encoded as UTF-8 (500).
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    app.add_middleware(_MeasureRequests, metrics=metrics)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness and the store's reachability; with the judge, whether it is
        ``ready``, ``starting`` or ``failed`` (its start is tried again), never
        waiting for it."""
        engine.store.count(states={JobState.RUNNING})
        body: dict[str, Any] = {"status": "ok", "version": __version__}
        if judge_queue is not None:
            judge = judge_queue.status()
            body["judge"] = judge.readiness.value
            if judge.message:
                body["judge_error"] = judge.message
        return body

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/jobs", status_code=201, dependencies=auth, tags=["jobs"])
    def submit(body: JobSubmission) -> JSONResponse:
        """Queue a job; answers 201 with the job's JSON."""
        job = engine.submit(body.spec(), target=body.target)
        metrics.submitted.inc()
        return JSONResponse(
            job.to_json(), status_code=201, headers={"Location": f"/v1/jobs/{job.id}"}
        )

    @app.get("/v1/jobs", dependencies=auth, tags=["jobs"])
    def list_jobs(
        response: Response,
        state: Annotated[list[JobState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        before: Annotated[int | None, Query(ge=1)] = None,
    ) -> list[dict[str, Any]]:
        """A page of jobs, newest first. When more remain, ``X-Next-Before`` and a
        ``Link: rel="next"`` header give the next page."""
        jobs = engine.list_jobs(states=set(state) if state else None, limit=limit, before=before)
        if len(jobs) == limit:
            last = jobs[-1].id
            response.headers["X-Next-Before"] = str(last)
            response.headers["Link"] = f'</v1/jobs?limit={limit}&before={last}>; rel="next"'
        return [job.to_json() for job in jobs]

    @app.get("/v1/jobs/{job_id}", dependencies=auth, tags=["jobs"])
    def show(job_id: int) -> dict[str, Any]:
        """One job with its attempts."""
        return engine.get(job_id).to_json()

    @app.delete("/v1/jobs/{job_id}", dependencies=auth, tags=["jobs"])
    def cancel(job_id: int) -> dict[str, Any]:
        """Cancel a job (its whole process tree); a finished job is left as it is."""
        return engine.cancel(job_id).to_json()

    @app.post("/v1/jobs/{job_id}/rerun", status_code=201, dependencies=auth, tags=["jobs"])
    def rerun(job_id: int, body: Annotated[RerunRequest | None, Body()] = None) -> dict[str, Any]:
        """Run a finished job again as a new attempt, optionally with an edited script."""
        return engine.rerun(job_id, script=body.script if body else None).to_json()

    @app.get("/v1/jobs/{job_id}/events", dependencies=auth, tags=["jobs"])
    def events(job_id: int) -> list[dict[str, Any]]:
        """Every state change of every attempt."""
        return [event.to_json() for event in engine.events(job_id)]

    @app.get("/v1/jobs/{job_id}/logs", dependencies=auth, tags=["jobs"])
    def logs(
        request: Request,
        job_id: int,
        stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=8 * 1024 * 1024)] = 1024 * 1024,
        attempt: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        """Output from ``offset``. JSON by default (``data`` decoded as UTF-8 with
        replacement, ``next_offset``, ``eof``); the raw bytes with
        ``Accept: text/plain`` or ``application/octet-stream``, offsets in headers."""
        chunk = engine.logs(job_id, stream=stream, offset=offset, limit=limit, attempt=attempt)
        headers = {"X-Next-Offset": str(chunk.next_offset), "X-EOF": str(chunk.eof).lower()}
        accept = request.headers.get("accept", "")
        if "text/plain" in accept or "application/octet-stream" in accept:
            media = (
                "text/plain; charset=utf-8"
                if "text/plain" in accept
                else "application/octet-stream"
            )
            return Response(chunk.data, media_type=media, headers=headers)
        return JSONResponse(
            {
                "job_id": job_id,
                "stream": stream,
                "offset": chunk.offset,
                "next_offset": chunk.next_offset,
                "eof": chunk.eof,
                "data": chunk.data.decode("utf-8", errors="replace"),
            },
            headers=headers,
        )

    @app.get("/v1/targets", dependencies=auth, tags=["targets"])
    def list_targets() -> list[dict[str, Any]]:
        """SLURM clusters reached over SSH (clusters hpcbox brought up included)."""
        return [t.to_json() for t in engine.targets.list_targets()]

    @app.post("/v1/targets", status_code=201, dependencies=auth, tags=["targets"])
    def add_target(body: TargetRequest) -> dict[str, Any]:
        """Register a target; no secrets are accepted (a key is a path on the server)."""
        return engine.targets.add(
            body.name,
            body.url,
            key_path=body.key_path,
            known_hosts=body.known_hosts,
            host_key=body.host_key,
            rate_limit=body.rate_limit,
        ).to_json()

    @app.get("/v1/targets/{name}", dependencies=auth, tags=["targets"])
    def show_target(name: str) -> dict[str, Any]:
        return engine.targets.get(name).to_json()

    @app.delete("/v1/targets/{name}", status_code=204, dependencies=auth, tags=["targets"])
    def remove_target(name: str) -> Response:
        engine.targets.remove(name)
        return Response(status_code=204)

    return app
