"""Docker SDK and connection errors become hpcbox errors, chained to the original."""

from __future__ import annotations

import docker.errors
import pytest
import requests
import requests.exceptions

from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from hpcbox.infra.runtimes.translate import engine_errors


def api_error(status: int, explanation: str = "why") -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls("message", response=response, explanation=explanation)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (api_error(404), NotFoundError),
        (docker.errors.ImageNotFound("no image"), NotFoundError),
        (api_error(409), ConflictError),
        (api_error(403, "network n has active endpoints"), ConflictError),
        (api_error(400), InvalidInputError),
        (api_error(500), PermanentError),
        # Podman 4.3's words for conflicts it reports as 500:
        (api_error(500, 'the container name "x" is already in use by 52e'), ConflictError),
        (
            api_error(
                500, "can only create exec sessions on running containers: container state improper"
            ),
            ConflictError,
        ),
        (
            api_error(500, '"n" has associated containers with it: network is being used'),
            ConflictError,
        ),
        (api_error(503), TransientError),
        (requests.exceptions.ConnectionError("refused"), TransientError),
        (requests.exceptions.ReadTimeout("slow"), TransientError),
        (ConnectionResetError("reset"), TransientError),
        (docker.errors.DockerException("odd"), PermanentError),
    ],
)
def test_mapping(exc: Exception, expected: type[HpcboxError]) -> None:
    with pytest.raises(expected) as caught, engine_errors("start node-1"):
        raise exc
    assert str(caught.value).startswith("start node-1")
    assert caught.value.__cause__ is exc


def test_hpcbox_errors_pass_unchanged() -> None:
    original = ConflictError("mine")
    with pytest.raises(ConflictError) as caught, engine_errors("x"):
        raise original
    assert caught.value is original


def test_long_engine_messages_are_clipped() -> None:
    with pytest.raises(PermanentError) as caught, engine_errors("build"):
        raise api_error(500, "x" * 10_000)
    assert len(str(caught.value)) < 1000


def test_bytes_explanations_are_decoded() -> None:
    with pytest.raises(ConflictError, match="in use"), engine_errors("remove network n"):
        raise api_error(409, b"network is in use")  # type: ignore[arg-type]
