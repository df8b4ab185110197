"""An asyncio event loop on a daemon thread, callable from any other thread.

asyncssh is asynchronous and the transport API is not. Running one private
loop per transport on its own thread lets synchronous callers on any thread
(engine workers, CLI, a FastAPI threadpool) share one SSH connection: they
hand coroutines over with ``run_coroutine_threadsafe`` and block on the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from hpcbox.core.errors import PermanentError

__all__ = ["LoopThread"]

T = TypeVar("T")

#: How long ``stop`` waits for the loop thread to finish its cleanup.
_JOIN_TIMEOUT_S = 10.0


class LoopThread:
    """Owns one event loop running forever on one daemon thread until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        # Guards _stopping, so that no coroutine is handed over after the
        # loop's stop was scheduled: such a coroutine would never run and its
        # caller would wait forever.
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            # Whatever is still pending was abandoned by its caller; cancel it
            # so that no task is destroyed while pending.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it finishes; return or raise its outcome.

        Raises:
            PermanentError: called from the loop's own thread (that would
                deadlock) or after :meth:`stop`.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise PermanentError("a transport call was made from inside its own event loop")
        with self._lock:
            if self._stopping:
                coro.close()
                raise PermanentError("transport is closed")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError as exc:
            raise PermanentError("transport was closed while the call was running") from exc
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): do not leave the
            # coroutine running for nobody.
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop after cancelling what is left, and wait for its thread."""
        if threading.current_thread() is self._thread:
            raise PermanentError("a transport cannot be closed from inside its own event loop")
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_JOIN_TIMEOUT_S)
