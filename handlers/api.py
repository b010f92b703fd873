"""What a handler plugin sees: ``@on``, :class:`Event`, :class:`DoNotRetry`, ``EVENT_TYPES``.

This module is the whole plugin contract, kept small on purpose (like datasette's
``hookspecs.py``): a plugin imports from :mod:`handlers` (which re-exports this module and the
payload types of :mod:`handlers.payloads`) and nothing else.

    from handlers import Event, on

    @on("video.downloaded")
    async def publish(event: Event) -> None:
        print(event.id, event.type, event.data["video"]["path"])

A handler is a plain function, sync or async, taking one :class:`Event`. Its return value is
ignored. ``@on`` only attaches a description to the function and returns it unchanged, so the
function stays importable and callable in the plugin's own tests. Which handlers exist, and when
they run, is decided by the app's :class:`handlers.registry.HandlerRegistry`.

How a handler runs (the guarantees a plugin can build on):

* **Durably, at least once.** Each (event, handler) pair is a job stored in the same
  transaction as the event; a crash or a restart never loses it, but may run it again. Use
  ``event.id`` as the idempotency key of effects that must happen exactly once.
* **Isolated.** An async handler runs on the worker's event loop: never block in it (no
  ``time.sleep``, no ``requests``), or write a sync handler instead: sync handlers run in a
  thread of their own, so blocking there is fine. Each run gets its own copy of ``event.data``.
  A handler that raises, hangs or blocks never delays the receiver or the other handlers.
* **Under a timeout.** Each attempt may take ``timeout`` seconds (``@on(..., timeout=)``, else
  ``OMNIHOOK_HANDLER_TIMEOUT``). An async handler is cancelled then; a sync one cannot be
  stopped and is abandoned, still running, so keep its own I/O under timeouts too.
* **Retried with backoff.** Raising any exception (or timing out) schedules the next attempt
  after the next delay of ``retries`` (``@on(..., retries=)``, else
  ``OMNIHOOK_HANDLER_RETRY_SCHEDULE``), each stretched or shrunk by up to 10% so failures that
  happened together do not retry together. Raise :class:`DoNotRetry` to fail for good at once.
  A run whose attempts are exhausted is marked ``failed`` with its last error, shown in
  ``GET /v1/tasks/{id}`` and ``GET /v1/handler-runs``, and can be run again with
  ``omnihook handlers retry``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

from handlers.payloads import EventData, TaskData, VideoData
from service.clock import isoformat

#: Every event type of CONTRACT.md "Events", in the order a task lives through them.
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "task.queued",
        "task.submitted",
        "task.processing",
        "task.succeeded",
        "task.failed",
        "video.downloaded",
        "video.download_failed",
        "task.completed",
        "task.timed_out",
    }
)

#: Subscribes a handler to every event type, present and future.
ALL_EVENTS: Final = "*"

# The attribute ``@on`` sets; the registry reads it. A dunder-ish name so it cannot clash with
# anything a plugin author would set on their own function.
SPEC_ATTRIBUTE: Final = "__omnihook_handler__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Event:
    """One event, as a handler receives it (CONTRACT.md "Events").

    Attributes:
        id: ``"evt_..."``, unique per event and the same on every attempt and every retry by
            hand: the idempotency key of the handler's effects. It is also the ``webhook-id``
            of the outgoing webhooks carrying the same event.
        type: one of ``EVENT_TYPES``:

            ========================= ================================================
            ``task.submitted``        the provider accepted the task
            ``task.processing``       the provider started it
            ``task.succeeded``        the provider finished; video URLs known
            ``task.failed``           the provider failed it (``status_message``)
            ``video.downloaded``      one video is stored (``video["path"]``)
            ``video.download_failed`` a video could not be stored (``video["error"]``)
            ``task.completed``        every video of a succeeded task is stored
            ``task.timed_out``        no final state in time (``OMNIHOOK_TASK_DEADLINE``)
            ========================= ================================================

            Each is announced once per task (once per video for ``video.*``).
        timestamp: when the event happened, a timezone-aware UTC ``datetime``.
        data: the event's JSON payload (:class:`handlers.payloads.EventData`):
            ``data["task"]`` always, ``data["video"]`` for the ``video.*`` events. They are the
            task and video objects of the HTTP API, as they were when the event happened.
        attempt: 1 on the first run of this handler for this event, 2 on its first retry, and
            so on (a retry by hand with ``omnihook handlers retry`` starts again at 1).
    """

    id: str
    type: str
    timestamp: datetime
    data: EventData
    attempt: int = 1

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            # A naive time is ambiguous; refusing it here beats a wrong hour in every plugin.
            raise ValueError("Event.timestamp must be timezone-aware (UTC)")
        if self.attempt < 1:
            raise ValueError(f"Event.attempt starts at 1, got {self.attempt}")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))

    @property
    def task(self) -> TaskData:
        """``data["task"]``: the task as ``GET /v1/tasks/{id}`` showed it at the event."""
        return self.data["task"]

    @property
    def video(self) -> VideoData | None:
        """``data["video"]`` for ``video.downloaded`` and ``video.download_failed``, else None."""
        return self.data.get("video")

    @property
    def is_retry(self) -> bool:
        """True from the second attempt on: an earlier attempt may have had partial effects."""
        return self.attempt > 1

    def to_dict(self) -> dict[str, Any]:
        """The event's contract JSON: ``{"id", "type", "timestamp", "data"}`` (no ``attempt``)."""
        return {
            "id": self.id,
            "type": self.type,
            "timestamp": isoformat(self.timestamp),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], *, attempt: int = 1) -> Event:
        """The inverse of :meth:`to_dict` (``timestamp`` as ISO 8601, ``Z`` accepted).

        Handy in a plugin's own tests, e.g. with an event copied from ``GET /v1/tasks/{id}/events``.
        """
        return cls(
            id=payload["id"],
            type=payload["type"],
            timestamp=datetime.fromisoformat(payload["timestamp"]),
            data=cast(EventData, dict(payload["data"])),
            attempt=attempt,
        )


class DoNotRetry(Exception):
    """Raise it from a handler to fail this run for good: recorded as failed, never retried.

    For failures another attempt cannot fix: a payload the handler cannot use, a request the
    remote side refused for good (a 4xx). Its message becomes the run's ``last_error``, so say
    what was wrong::

        raise DoNotRetry(f"no customer id in metadata of task {event.task['id']}")

    Any other exception (or a timeout) means "try again later", on the handler's schedule.
    """


@dataclass(frozen=True)
class HandlerSpec:
    """What ``@on`` attached to a function; the registry turns it into a ``Handler``."""

    event_types: frozenset[str]
    timeout: float | None
    retries: tuple[float, ...] | None


def on(
    *event_types: str,
    timeout: float | None = None,
    retries: Sequence[float] | None = None,
) -> Callable[[F], F]:
    """Declare the decorated function a handler of ``event_types`` (``"*"``: every event).

    Args:
        event_types: one or more of ``EVENT_TYPES``, or ``"*"`` for every event. An unknown
            name stops the service at start-up with a message naming the plugin and the type.
        timeout: seconds one attempt may take (positive); default ``OMNIHOOK_HANDLER_TIMEOUT``
            (60). A longer attempt counts as a failure and is retried.
        retries: the delays in seconds before each retry, e.g. ``[5, 60, 600]`` (three retries,
            four attempts in all); default ``OMNIHOOK_HANDLER_RETRY_SCHEDULE``. ``[]`` means a
            single attempt. Each delay gets up to 10% of random jitter.

    The function is returned unchanged, so it stays callable in the plugin's own tests::

        @on("task.failed", "video.download_failed", timeout=10, retries=[5, 60])
        def alert(event: Event) -> None:
            ...
    """
    if not event_types:
        raise TypeError(
            '@on needs at least one event type, e.g. @on("video.downloaded") or @on("*")'
        )
    for event_type in event_types:
        if not isinstance(event_type, str) or not event_type:
            raise TypeError(f"@on: event types are non-empty strings, got {event_type!r}")
    spec = HandlerSpec(
        event_types=frozenset(event_types),
        timeout=_checked_timeout(timeout),
        retries=_checked_retries(retries),
    )

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@on decorates a function, got {func!r}")
        if getattr(func, SPEC_ATTRIBUTE, None) is not None:
            # Stacked decorators would silently disagree on timeout/retries: one @on per function.
            raise TypeError(f"{func!r} is already decorated with @on; list every type in one @on")
        setattr(func, SPEC_ATTRIBUTE, spec)
        return func

    return decorate


def spec_of(func: object) -> HandlerSpec | None:
    """The ``@on`` spec of ``func``, or None when it is not a handler."""
    spec = getattr(func, SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, HandlerSpec) else None


def _checked_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"@on: timeout is a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"@on: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _checked_retries(retries: Sequence[float] | None) -> tuple[float, ...] | None:
    if retries is None:
        return None
    if isinstance(retries, str | bytes):
        raise TypeError(f"@on: retries is a sequence of delays in seconds, got {retries!r}")
    delays: list[float] = []
    for delay in retries:
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise TypeError(f"@on: retry delays are numbers of seconds, got {delay!r}")
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"@on: retry delays must be >= 0 seconds, got {delay!r}")
        delays.append(float(delay))
    return tuple(delays)
