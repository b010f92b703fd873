"""Running one handler on one event, once, isolated, under a timeout.

The worker turns each (event, handler) pair into a durable job and owns retrying; this module
only runs an attempt and reports how it ended, as one of the exceptions of
:mod:`handlers.errors`:

* returns: the run succeeded;
* :class:`HandlerFailed`: it raised (the original exception is ``__cause__``): retry;
* :class:`HandlerTimedOut`: it ran too long: retry;
* :class:`HandlerGaveUp`: it raised ``DoNotRetry``: record, never retry.

Async handlers are awaited on the event loop. Sync handlers run in a thread, so a blocking call
(``time.sleep``, ``requests.get``) stalls neither the loop nor the other handlers.

A sync handler that times out **cannot be killed**: Python has no way to stop a thread. Its
thread is abandoned, keeps running until the function returns on its own, and its outcome is
discarded. That is why each sync run gets its own daemon thread instead of going through
``asyncio.to_thread``: the loop's shared default executor would be starved by a few hung
handlers, and ``asyncio.run``, like interpreter exit, waits for that executor's threads, so a
hung handler would prevent the worker from ever shutting down. A daemon thread is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from handlers.api import DoNotRetry, Event
from handlers.errors import HandlerFailed, HandlerGaveUp, HandlerTimedOut
from handlers.registry import Handler

logger = logging.getLogger(__name__)


async def run_handler(handler: Handler, event: Event, *, default_timeout: float) -> None:
    """Run ``handler`` on ``event`` once, within its timeout (else ``default_timeout``).

    Returns on success; raises ``HandlerFailed``, ``HandlerTimedOut`` or ``HandlerGaveUp``.
    A sync handler that times out keeps running in its abandoned thread (see the module doc).
    Retrying is the caller's business: this never runs the handler twice.
    """
    timeout = handler.timeout if handler.timeout is not None else default_timeout
    # Each run gets its own copy of the payload: a handler that mutates event.data must not
    # change what the other handlers of the same event see.
    own_event = dataclasses.replace(event, data=copy.deepcopy(event.data))
    about = f"handler {handler.name} on {event.type} {event.id} (attempt {event.attempt})"
    context = {"handler": handler.name, "event_id": event.id, "event_type": event.type}
    started = time.monotonic()
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            await _call(handler, own_event)
    except DoNotRetry as exc:
        reason = _describe(exc)
        raise HandlerGaveUp(f"{about} gave up: {reason}", reason=reason, **context) from exc
    except (Exception, SystemExit) as exc:
        # A TimeoutError the handler raised itself (its own HTTP call...) is an ordinary failure.
        if isinstance(exc, TimeoutError) and deadline.expired():
            if not inspect.iscoroutinefunction(handler.func):
                logger.warning(
                    "%s timed out after %ss; its thread cannot be stopped and is abandoned",
                    about,
                    timeout,
                    extra={"action": "handler_thread_abandoned", **context},
                )
            reason = f"timed out after {timeout}s"
            raise HandlerTimedOut(f"{about} {reason}", reason=reason, **context) from exc
        reason = _describe(exc)
        raise HandlerFailed(f"{about} failed: {reason}", reason=reason, **context) from exc
    logger.debug(
        "%s succeeded in %.3fs",
        about,
        time.monotonic() - started,
        extra={"action": "handler_succeeded", **context},
    )


async def _call(handler: Handler, event: Event) -> None:
    # await_me_maybe: a sync callable may still hand back an awaitable (a callable object with
    # an async __call__, a lambda returning a coroutine); await it on the loop.
    if inspect.iscoroutinefunction(handler.func):
        result: Any = handler.func(event)
    else:
        result = await _in_daemon_thread(handler.func, event, name=handler.name)
    if inspect.isawaitable(result):
        await result


def _in_daemon_thread(
    func: Callable[[Event], Any], event: Event, *, name: str
) -> asyncio.Future[Any]:
    """Start ``func(event)`` in a new daemon thread; a future of its outcome (see module doc)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()  # as asyncio.to_thread does: keep contextvars

    def settle(outcome: Any, failure: BaseException | None) -> None:
        if future.done():  # cancelled by the timeout: the outcome is discarded
            return
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(outcome)

    def work() -> None:
        outcome: Any = None
        failure: BaseException | None = None
        try:
            outcome = context.run(func, event)
        except BaseException as exc:  # delivered to the awaiting coroutine, not lost
            failure = exc
        # RuntimeError: the loop closed while an abandoned handler was still running.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome, failure)

    threading.Thread(target=work, name=f"omnihook-handler {name}", daemon=True).start()
    return future


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
