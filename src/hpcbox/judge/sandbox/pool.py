"""The warm pool: boxes started ahead per key (a language), refilled in the background.

A box taken from the pool is never returned to it: each serves one run and is
destroyed (:class:`~hpcbox.judge.sandbox.box.WarmBox` is one-shot), so no
state can leak from one run to the next. When a key's pool is empty, a box is
started on demand (cold start) instead of waiting.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Collection, Mapping

from hpcbox.judge.sandbox.box import WarmBox
from hpcbox.judge.sandbox.factory import UntrustedSandbox

__all__ = ["WarmPool"]

log = logging.getLogger(__name__)


class WarmPool:
    """Keeps up to ``sizes[key]`` ready boxes per key (0 disables warming for a key).

    Thread-safe. One background thread refills every key. Boxes of the keys in
    ``forked`` come from the factory's fork-server, the others each from a bwrap of
    its own (one rootfs for all); the keys let sizes follow each language's demand
    and let occupancy be reported per language.
    """

    def __init__(
        self,
        factory: UntrustedSandbox,
        sizes: Mapping[str, int],
        *,
        forked: Collection[str] = (),
    ) -> None:
        self._factory = factory
        self._sizes = dict(sizes)
        #: Keys whose boxes come from the factory's fork-server.
        self._forked = frozenset(forked)
        self._ready: dict[str, collections.deque[WarmBox]] = {
            k: collections.deque() for k in self._sizes
        }
        self._cond = threading.Condition()
        self._closed = False
        self._failures = 0
        self._thread = threading.Thread(
            target=self._refill_loop, name="hpcbox-warm-pool", daemon=True
        )
        self._thread.start()

    def occupancy(self) -> dict[str, int]:
        """Ready boxes per key, now."""
        with self._cond:
            return {k: len(v) for k, v in self._ready.items()}

    def take(self, key: str) -> WarmBox:
        """A ready box for ``key`` (or a freshly started one if none is ready).

        The caller owns it and must destroy it after its one run.
        """
        with self._cond:
            ready = self._ready.get(key)
            box = ready.popleft() if ready else None
            self._cond.notify_all()
        if box is not None:
            return box
        return self._factory.prepare(forked=key in self._forked)

    def _wanted(self) -> str | None:
        for key, size in self._sizes.items():
            if len(self._ready[key]) < size:
                return key
        return None

    def _refill_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._wanted() is None:
                    self._cond.wait()
                if self._closed:
                    return
                key = self._wanted()
            if key is None:
                continue
            try:
                box = self._factory.prepare(forked=key in self._forked)
            except Exception as exc:
                # Back off (up to 5 s) so that a broken setup does not spin.
                self._failures += 1
                log.warning("warm pool cannot start a sandbox: %s", exc)
                with self._cond:
                    self._cond.wait(min(5.0, 0.1 * 2**self._failures))
                continue
            self._failures = 0
            with self._cond:
                if self._closed:
                    box.destroy()
                    return
                self._ready[key].append(box)

    def wait_ready(self, timeout: float) -> bool:
        """Block until every key's pool is full (True) or ``timeout`` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._wanted() is None, timeout)

    def close(self) -> None:
        """Stop refilling and destroy every ready box."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            boxes = [b for q in self._ready.values() for b in q]
            for q in self._ready.values():
                q.clear()
        for box in boxes:
            with contextlib.suppress(Exception):
                box.destroy()
