"""What a handler plugin sees: ``@on``, :class:`Event`, :class:`DoNotRetry`, ``EVENT_TYPES``.

This module is the whole plugin contract, kept small on purpose (like datasette's
``hookspecs.py``): a plugin imports from here (re-exported by :mod:`handlers`) and nothing else.

    from handlers import on

    @on("video.downloaded")
    async def publish(event):
        print(event.id, event.type, event.data["video"]["path"])

A handler is a plain function, sync or async, taking one :class:`Event`. Its return value is
ignored. ``@on`` only attaches a description to the function and returns it unchanged, so the
function stays importable and callable in the plugin's own tests. Which handlers exist, and when
they run, is decided by the app's :class:`handlers.registry.HandlerRegistry`.

Each (event, handler) pair runs at least once and is retried with backoff when it raises or times
out, so a handler must tolerate running again: use ``event.id`` as the idempotency key for
effects that must happen exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from service.clock import isoformat

#: Every event type of CONTRACT.md "Events", in the order a task lives through them.
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "task.submitted",
        "task.processing",
        "task.succeeded",
        "task.failed",
        "video.downloaded",
        "video.download_failed",
        "task.completed",
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
    """One event, as a handler receives it.

    Attributes:
        id: ``"evt_..."``, the same on every retry: the idempotency key of the handler's effects.
        type: one of ``EVENT_TYPES`` (e.g. ``"video.downloaded"``).
        timestamp: when the event happened, timezone-aware UTC.
        data: the event's JSON payload: ``{"task": {...}}`` plus ``"video": {...}`` for the
            ``video.*`` events; the task and video objects are those of the HTTP API
            (``data["video"]["path"]`` is the absolute path of the stored file).
        attempt: 1 on the first run of this handler for this event, 2 on its first retry...
    """

    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]
    attempt: int = 1

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            # A naive time is ambiguous; refusing it here beats a wrong hour in every plugin.
            raise ValueError("Event.timestamp must be timezone-aware (UTC)")
        if self.attempt < 1:
            raise ValueError(f"Event.attempt starts at 1, got {self.attempt}")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))

    @property
    def task(self) -> dict[str, Any]:
        """``data["task"]``: the task as ``GET /v1/tasks/{id}`` shows it."""
        task: dict[str, Any] = self.data["task"]
        return task

    @property
    def video(self) -> dict[str, Any] | None:
        """``data["video"]`` for the ``video.*`` events, else None."""
        video: dict[str, Any] | None = self.data.get("video")
        return video

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
        """The inverse of :meth:`to_dict` (``timestamp`` as ISO 8601, ``Z`` accepted)."""
        return cls(
            id=payload["id"],
            type=payload["type"],
            timestamp=datetime.fromisoformat(payload["timestamp"]),
            data=dict(payload["data"]),
            attempt=attempt,
        )


class DoNotRetry(Exception):
    """Raise it from a handler to fail this run for good: it is recorded, never retried.

    For failures that another attempt cannot fix (a malformed payload, a refused request).
    Any other exception means "try again later".
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
        event_types: one or more of ``EVENT_TYPES``, or ``"*"``. Unknown names are reported when
            the plugin is loaded, naming the plugin.
        timeout: seconds one run may take; default: the service's handler timeout.
        retries: delays in seconds between attempts (its length is the number of retries);
            default: ``OMNIHOOK_HANDLER_RETRY_SCHEDULE``. ``()`` means never retry.

    The function is returned unchanged.
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
