"""The background thread that finishes destroyed boxes: waits for their processes
to end and removes their cgroups, so that a caller's destroy() returns at once."""

from __future__ import annotations

import queue
import threading
from typing import Protocol

__all__ = ["Reapable", "Reaper"]


class Reapable(Protocol):
    """A destroyed box, killed already: what is left is waiting and cleaning up."""

    def reap(self) -> None: ...


class Reaper:
    """Reaps boxes in the order given, on one thread started on first use."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Reapable | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def reap_later(self, box: Reapable) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="hpcbox-box-reaper", daemon=True
                )
                self._thread.start()
        self._queue.put(box)

    def _loop(self) -> None:
        while True:
            box = self._queue.get()
            if box is None:
                return
            box.reap()

    def close(self) -> None:
        """Return once every box given so far is reaped (the thread then ends)."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join()
