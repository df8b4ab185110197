"""Callbacks: ``PUT`` the finished submission to the client's ``callback_url``.

Retried with exponential backoff (network errors and 5xx answers), signed with
``X-Hpcbox-Signature: sha256=<hex HMAC-SHA256 of the body>`` under the secret in
``HPCBOX_JUDGE_CALLBACK_SECRET`` (no header without a secret). Sent from a small
thread pool so that a slow client never holds up a judging thread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

__all__ = ["SIGNATURE_HEADER", "CallbackSender", "sign"]

SIGNATURE_HEADER = "X-Hpcbox-Signature"
_log = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CallbackSender:
    """Delivers callbacks in the background; :meth:`close` waits for those under way."""

    def __init__(
        self,
        *,
        secret: str | None,
        tries: int = 3,
        timeout: float = 5.0,
        backoff: float = 1.0,
        threads: int = 4,
    ) -> None:
        self._secret = secret
        self._tries = max(1, tries)
        self._timeout = timeout
        self._backoff = backoff
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="judge-callback")

    def submit(self, url: str, body: bytes) -> Future[bool]:
        """Deliver ``body`` to ``url`` in the background; the future says if it arrived."""
        return self._pool.submit(self.deliver, url, body)

    def deliver(self, url: str, body: bytes) -> bool:
        """PUT ``body`` to ``url``, retrying; True when the client answered 2xx.

        A 4xx answer is final (the client refused it); errors are logged without
        the body (it holds the program's output) and never raised.
        """
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        delay = self._backoff
        for attempt in range(1, self._tries + 1):
            try:
                response = httpx.put(url, content=body, headers=headers, timeout=self._timeout)
            except httpx.HTTPError as exc:
                _log.warning("callback try %d to %s failed: %s", attempt, url, type(exc).__name__)
            else:
                if response.is_success:
                    return True
                if response.status_code < 500:
                    _log.warning("callback to %s refused: HTTP %d", url, response.status_code)
                    return False
                _log.warning("callback try %d to %s: HTTP %d", attempt, url, response.status_code)
            if attempt < self._tries:
                time.sleep(delay)
                delay *= 2
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
