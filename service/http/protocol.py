"""Connection-level guards: a deadline on each request head, and a cap on open connections.

uvicorn (0.55, h11) gives a connection no deadline until its first response is sent: one that
opens and sends nothing, or a request head a byte at a time, is held for ever (slowloris), and
nothing bounds how many such connections are open. Its configuration has no option for either
(``timeout_keep_alive`` starts after a response; ``limit_concurrency`` answers 503 only once a
head has arrived, and never stops accepting). uvicorn's one public extension point for this is
the ``http=`` protocol class, so :class:`GuardedH11Protocol` subclasses its ``H11Protocol`` and
overrides only methods it calls from outside the class (``connection_made``, ``data_received``,
``connection_lost`` from asyncio; ``on_response_complete`` from the request cycle), always
calling the original, and reads none of its state: what it needs (where a head ends) it finds
in the bytes themselves, and what it keeps is its own (attributes prefixed ``_guard``).

Where a head ends is the first blank line (``CRLF CRLF``) after the request's first byte: a head
cannot contain one, and h11 itself caps a head's size (a 400 past 16 KiB). The deadline starts
when the connection opens, then, after each response, with the first read that does not hold
the next head whole (so the usual request, whose head comes in one read, arms no timer; an
idle keep-alive connection is closed by uvicorn's own keep-alive timer). A request pipelined behind
another, whose head came in the same read as the previous request, is never timed: no byte of
it arrives after the previous response, so no deadline starts.

The body's deadlines are applied per request by :mod:`service.http.request_guard`, which sees
the request's reads; this module only sees bytes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from service.http.limits import ServerLimits

log = logging.getLogger(__name__)

_END_OF_HEAD = b"\r\n\r\n"
# A connection over the cap gets this and is closed: it has sent no request yet, so a complete
# answer without reading one is all it can be given.
_OVERLOADED_BODY = b'{"error":"overloaded","message":"too many open connections; retry soon"}'
_OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_OVERLOADED_BODY), _OVERLOADED_BODY)
)


class ConnectionBudget:
    """How many connections one server has open, against its cap (one event loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._warned = False

    def take(self) -> bool:
        if self.open >= self.limit:
            if not self._warned:  # once per overload, not once per refused connection
                self._warned = True
                log.warning(
                    "refusing connections: %d are open, the limit",
                    self.open,
                    extra={"action": "http.connections_full"},
                )
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1
        if self._warned and self.open < self.limit * 0.9:
            self._warned = False
            log.info(
                "accepting connections again: %d are open",
                self.open,
                extra={"action": "http.connections_available"},
            )


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on request heads and a cap on connections.

    Use :func:`guarded_protocol` for a class bound to one server's limits and budget.
    """

    guard_limits: ClassVar[ServerLimits]
    guard_budget: ClassVar[ConnectionBudget]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_transport = transport
        self._guard_timer: asyncio.TimerHandle | None = None
        self._guard_awaiting_head = True
        self._guard_tail = b""  # the last bytes of the head so far: CRLF CRLF may span two reads
        self._guard_counted = self.guard_budget.take()
        if not self._guard_counted:
            transport.write(_OVERLOADED)
            transport.close()
            return
        self._guard_start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard_stop_head_deadline()
        if self._guard_counted:
            self._guard_counted = False
            self.guard_budget.give_back()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._guard_awaiting_head:  # else, one test per read: the body costs nothing more
            self._guard_read_head(data)
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head is timed from its first byte (see the module docstring).
        self._guard_awaiting_head = True
        self._guard_tail = b""

    def _guard_read_head(self, data: bytes) -> None:
        if _END_OF_HEAD in data or _END_OF_HEAD in self._guard_tail + data[:3]:
            self._guard_awaiting_head = False
            self._guard_tail = b""
            self._guard_stop_head_deadline()
            return
        if self._guard_timer is None:  # not for a head whole in one read: the usual case
            self._guard_start_head_deadline()
        self._guard_tail = (self._guard_tail + data)[-3:]

    def _guard_start_head_deadline(self) -> None:
        loop = asyncio.get_running_loop()
        self._guard_timer = loop.call_later(self.guard_limits.head_timeout, self._guard_head_late)

    def _guard_stop_head_deadline(self) -> None:
        if self._guard_timer is not None:
            self._guard_timer.cancel()
            self._guard_timer = None

    def _guard_head_late(self) -> None:
        self._guard_timer = None
        if not self._guard_awaiting_head or self._guard_transport.is_closing():
            return
        log.debug(
            "closed a connection whose request head took over %s s",
            self.guard_limits.head_timeout,
            extra={"action": "http.head_timeout"},
        )
        # No answer: nothing of a request was understood (nginx closes silently too).
        self._guard_transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server: its limits, and a connection budget of its own."""

    class ServerProtocol(GuardedH11Protocol):
        guard_limits = limits
        guard_budget = ConnectionBudget(limits.max_connections)

    return ServerProtocol
