"""Supervised loops: a long-running loop that fails is logged and started again, with backoff.

A worker's loops (leasing, renewing leases, reconciling) must outlive any one failure: before,
an exception escaping one of them ended the worker for good while the process went on
acknowledging callbacks. :func:`supervise` runs a loop's body; when the body raises, it logs
the failure (a :class:`StorageError` is expected, a warning; anything else is a bug, logged with
its traceback), waits a backoff that doubles at each failure in a row (reset once the body ran
fine for a while) and runs the body again. Cancellation is never caught: it stops the loop.
What the loop holds lives outside its body (the worker's jobs), so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.errors import StorageError
from service.worker_health import LoopHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``first``, multiplied by ``factor`` at each failure in a row,
    at most ``ceiling``; a body that ran ``reset_after`` seconds before failing starts again
    from ``first``."""

    first: float
    ceiling: float
    factor: float = 2.0
    reset_after: float = 60.0

    def next_delay(self, previous: float | None, ran_for: float) -> float:
        if previous is None or ran_for >= self.reset_after:
            return self.first
        return min(max(previous * self.factor, self.first), self.ceiling)


# A bug: back off up to half a minute, so that a loop failing at once does not spin the CPU.
CRASH_BACKOFF = Backoff(first=0.1, ceiling=30.0)
# The database is away: retried more often, so that the worker is back soon after it is.
STORAGE_BACKOFF = Backoff(first=0.5, ceiling=5.0)

Sleep = Callable[[float], Awaitable[None]]


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    health: LoopHealth,
    crash_backoff: Backoff = CRASH_BACKOFF,
    storage_backoff: Backoff = STORAGE_BACKOFF,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``body`` until it returns (a loop that ends on purpose) or is cancelled, starting
    it again after each failure. ``health`` records the failures and restarts (the body beats
    it itself, at each round it completes)."""
    delay: float | None = None
    while True:
        started = clock()
        try:
            await body()
            return
        except StorageError as exc:
            delay = storage_backoff.next_delay(delay, clock() - started)
            health.failed(f"{type(exc).__name__}: {exc}")
            log.warning(
                "worker loop %s: storage failed (%s); again in %.1fs",
                name,
                exc,
                delay,
                extra={"action": "worker.loop_storage_failed", "loop": name},
            )
        except Exception as exc:
            delay = crash_backoff.next_delay(delay, clock() - started)
            health.failed(f"{type(exc).__name__}: {exc}")
            log.exception(
                "worker loop %s crashed; restarting in %.1fs",
                name,
                delay,
                extra={"action": "worker.loop_crashed", "loop": name},
            )
        await sleep(delay)
        health.restarted()
        log.info(
            "worker loop %s restarted",
            name,
            extra={"action": "worker.loop_restarted", "loop": name},
        )
