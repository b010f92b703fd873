"""A running job that only waits for a slow peer may give its worker slot back.

A delivery attempt to an endpoint that does not answer waits for its whole timeout: it costs
a socket and nothing else, yet it would hold one of the worker's few slots all that while, and
twenty such endpoints would hold them all. The worker running a job lets it *step aside*
(:func:`step_aside`, or :func:`stepping_aside_after` a delay): the job goes on (its lease is
still renewed, its outcome recorded as usual) but no longer counts against the worker's slots,
which start other jobs meanwhile. The worker bounds how many jobs may stand aside at once
(``OMNIHOOK_WEBHOOK_SLOW_ATTEMPTS``).

The worker hands each job's task its way to step aside through a context variable, which a task
inherits and nobody else sees; outside a worker, :func:`step_aside` does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_STEP_ASIDE: ContextVar[Callable[[], bool] | None] = ContextVar("step_aside", default=None)


def step_aside() -> bool:
    """Give the slot of the job running in this task back to its worker; False when the
    worker keeps it (as many jobs stand aside as it allows, or no worker runs this)."""
    release = _STEP_ASIDE.get()
    return release() if release is not None else False


@contextlib.contextmanager
def stepping_aside_after(seconds: float) -> Iterator[None]:
    """Within the block, the job steps aside once ``seconds`` have passed (a timer, not a
    task: a block that ends sooner costs nothing more)."""
    release = _STEP_ASIDE.get()
    if release is None:
        yield
        return
    timer = asyncio.get_running_loop().call_later(seconds, release)
    try:
        yield
    finally:
        timer.cancel()


def offer_step_aside(release: Callable[[], bool]) -> None:
    """Called by the worker in the task of a job: how that job steps aside."""
    _STEP_ASIDE.set(release)
