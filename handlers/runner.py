"""Running one handler on one event, once, isolated, under a timeout.

The worker turns each (event, handler) pair into a durable job and owns retrying; this module
only runs an attempt and reports how it ended, as one of the exceptions of
:mod:`handlers.errors`:

* returns: the run succeeded;
* :class:`HandlerFailed`: it raised (the original exception is ``__cause__``): retry;
* :class:`HandlerTimedOut`: it ran too long (or, ``HandlerThreadsBusy``, waited that long for a
  thread, or for its handler's share of them): retry;
* :class:`HandlerGaveUp`: it raised ``DoNotRetry``: record, never retry.

Where the handler's code runs is the :class:`~handlers.host.HandlerHost`'s business: each
async handler on a loop of its own, in its own thread, never on the caller's loop (the one that
answers callbacks) nor another handler's; sync handlers in its bounded pool of threads, of which
one handler holds at most its share. So neither a blocking call in a sync handler
(``time.sleep``, ``requests.get``) nor one inside an ``async def`` stalls the receiver or the
other handlers: it delays only that handler's own runs. The timeout is kept here, on the
caller's loop: it fires even while the handler's loop is blocked.

A sync handler that times out **cannot be killed**: Python has no way to stop a thread. Its
thread is abandoned, keeps running until the function returns on its own, and its outcome is
discarded; the pool bounds how many such threads there are (:mod:`handlers.threads`), and the
handler's share how many of them one handler holds.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time

from handlers.api import DoNotRetry, Event
from handlers.errors import HandlerFailed, HandlerGaveUp, HandlerThreadsBusy, HandlerTimedOut
from handlers.host import HandlerHost
from handlers.hosted_run import HostedRun, Stage
from handlers.registry import Handler

logger = logging.getLogger(__name__)


async def run_handler(
    handler: Handler, event: Event, *, default_timeout: float, host: HandlerHost | None = None
) -> None:
    """Run ``handler`` on ``event`` once, within its timeout (else ``default_timeout``), in
    ``host`` (the process's, ``Services.handler_host``; None: a host of its own, for this one
    run, as a one-off tool or a test may want).

    Returns on success; raises ``HandlerFailed``, ``HandlerTimedOut`` or ``HandlerGaveUp``.
    A sync handler that times out keeps running in its abandoned thread (see the module doc).
    Retrying is the caller's business: this never runs the handler twice.
    """
    if host is None:
        async with HandlerHost() as own_host:
            await run_handler(handler, event, default_timeout=default_timeout, host=own_host)
        return
    timeout = handler.timeout if handler.timeout is not None else default_timeout
    # Each run gets its own copy of the payload: a handler that mutates event.data must not
    # change what the other handlers of the same event see.
    own_event = dataclasses.replace(event, data=copy.deepcopy(event.data))
    run = HostedRun(handler.name, event.id, event.type, event.attempt, timeout)
    started = time.monotonic()
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            await host.call(handler.func, own_event, run)
    except DoNotRetry as exc:
        reason = _describe(exc)
        raise HandlerGaveUp(
            f"{run.about} gave up: {reason}", reason=reason, **run.log_context
        ) from exc
    except (Exception, SystemExit) as exc:
        # A TimeoutError the handler raised itself (its own HTTP call...) is an ordinary failure.
        if isinstance(exc, TimeoutError) and deadline.expired():
            raise await _timed_out(host, run) from exc
        reason = _describe(exc)
        raise HandlerFailed(
            f"{run.about} failed: {reason}", reason=reason, **run.log_context
        ) from exc
    logger.debug(
        "%s succeeded in %.3fs",
        run.about,
        time.monotonic() - started,
        extra={"action": "handler_succeeded", **run.log_context},
    )


async def _timed_out(host: HandlerHost, run: HostedRun) -> HandlerTimedOut:
    """The error of a run past its timeout, once the host has accounted for it."""
    stage = run.stage
    await host.timed_out(run)
    if stage is Stage.WAITING_FOR_SHARE:
        reason = (
            f"timed out after {run.timeout}s waiting for a handler thread: its earlier runs "
            f"hold its share of them already ({host.thread_share}; abandoned ones still run)"
        )
        return HandlerThreadsBusy(f"{run.about} {reason}", reason=reason, **run.log_context)
    if stage is Stage.WAITING_FOR_THREAD:
        reason = (
            f"timed out after {run.timeout}s waiting for a free handler thread "
            f"({host.snapshot().threads_abandoned} abandoned by earlier timeouts still run)"
        )
        return HandlerThreadsBusy(f"{run.about} {reason}", reason=reason, **run.log_context)
    if stage is Stage.IN_THREAD:
        logger.warning(
            "%s timed out after %ss; its thread cannot be stopped and is abandoned",
            run.about,
            run.timeout,
            extra={"action": "handler_thread_abandoned", **run.log_context},
        )
    reason = f"timed out after {run.timeout}s"
    return HandlerTimedOut(f"{run.about} {reason}", reason=reason, **run.log_context)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
