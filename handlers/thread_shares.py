"""Each handler's share of the sync handlers' thread pool (:mod:`handlers.host`).

Once two sync handlers or more have run, one handler holds at most its share of the threads at
once, so a handler that hangs cannot take the whole pool. A run claims a share before it is
handed to a thread and gives it back exactly once, whichever side ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Callable


class _ShareState(enum.Enum):
    PENDING = "pending"
    STARTED = "started"
    OVER = "over"


class ThreadShare:
    """One sync run's claim on its handler's share of the pool, given back exactly once: by
    its thread when the function returns (abandoned or not), or by its caller when it never
    started. Both sides may race (a timeout as the thread picks the run up): a lock decides."""

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back = give_back
        self._lock = threading.Lock()
        self._state = _ShareState.PENDING

    def start(self) -> bool:
        """In the thread, before the function: False when it must not run any more."""
        return self._move(_ShareState.PENDING, _ShareState.STARTED)

    def end(self) -> None:
        """In the thread, once the function returned."""
        self._move(_ShareState.STARTED, _ShareState.OVER, give_back=True)

    def drop(self) -> None:
        """By the caller, once it stopped waiting: gives back a run that never started."""
        self._move(_ShareState.PENDING, _ShareState.OVER, give_back=True)

    def _move(self, source: _ShareState, target: _ShareState, *, give_back: bool = False) -> bool:
        with self._lock:
            if self._state is not source:
                return False
            self._state = target
        if give_back:
            self._give_back()
        return True


class ThreadShares:
    """How many pool threads each sync handler holds (runs in progress, abandoned ones
    included): at most ``cap`` each, once two handlers or more share the pool (a lone handler
    may use all of it: nobody else needs a thread). None: no cap. Claimed on the caller's
    loop, given back from any thread."""

    def __init__(self, cap: int | None) -> None:
        if cap is not None and cap < 1:
            raise ValueError("a handler's share of the thread pool is at least one thread")
        self.cap = cap
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._sharing: set[str] = set()  # the sync handlers that ran: bounded by the registry
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}

    def held(self, handler: str) -> int:
        with self._lock:
            return self._held.get(handler, 0)

    async def claim(self, handler: str) -> ThreadShare:
        """A share of ``handler``'s, once it holds fewer than ``cap`` threads."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                self._sharing.add(handler)
                if self._has_room(handler):
                    self._held[handler] = self._held.get(handler, 0) + 1
                    return ThreadShare(lambda: self._give_back(handler))
                waiter: asyncio.Future[None] = loop.create_future()
                entry = (loop, waiter)
                self._waiters.setdefault(handler, []).append(entry)
            try:
                await waiter
            finally:
                with self._lock:
                    waiting = self._waiters.get(handler, [])
                    with contextlib.suppress(ValueError):
                        waiting.remove(entry)
                    if not waiting:
                        self._waiters.pop(handler, None)

    def _has_room(self, handler: str) -> bool:
        """Under the lock."""
        if self.cap is None or len(self._sharing) < 2:
            return True
        return self._held.get(handler, 0) < self.cap

    def _give_back(self, handler: str) -> None:
        with self._lock:
            left = self._held[handler] - 1
            if left:
                self._held[handler] = left
            else:
                del self._held[handler]
            waiters = self._waiters.pop(handler, [])
        for loop, waiter in waiters:  # every waiting run of it looks for room again
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
                loop.call_soon_threadsafe(_release, waiter)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
