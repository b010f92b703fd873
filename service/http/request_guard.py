"""Request-level guards, as pure ASGI middleware around the whole app (outside even Starlette's).

For each HTTP request, :class:`RequestGuard`:

- bounds the body's reads: no pause over ``body_idle_timeout`` between two, and the whole body
  within ``body_timeout``. A body that misses either is answered ``408`` (the app is told the
  client left; whatever it answers to that is replaced) and the connection is closed;
- caps a capped route's body (``body_limit``: the API's) as it streams in: a declared length
  over the cap is answered ``413`` before the app runs, a streamed body past it as soon as it
  passes (the app is told the client left, its answer is replaced);
- lingers before an early answer: when an answer starts while the client is still sending its
  body (a 413, a 401, a 404...), up to ``linger_bytes`` more of the body are read and thrown
  away, for at most ``linger_seconds``, before the answer is sent, and the connection is closed
  after it unless the body was then read whole. Closing a socket with unread data makes the
  kernel send a reset, which a client that is still sending sees *instead of* the answer.

Only reads of the body are timed: once it is whole, the app's further ``receive`` calls (a
streaming answer waiting for a disconnect) go straight through, however long they wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.limits import ServerLimits

log = logging.getLogger(__name__)

_DISCONNECT: Message = {"type": "http.disconnect"}
_CLOSE = (b"connection", b"close")


class Refusal(NamedTuple):
    status: int
    code: str
    message: str


def _too_large(cap: int) -> Refusal:
    return Refusal(413, "body_too_large", f"the request body is too large (over {cap} bytes)")


_TOO_SLOW = Refusal(408, "request_timeout", "the request body did not arrive in time")


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: ServerLimits,
        body_limit: Callable[[Scope], int | None],
    ) -> None:
        self.app = app
        self._limits = limits
        self._body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self._limits, self._body_limit(scope), scope, receive, send)
        await exchange.run(self.app)


class _Exchange:
    """One request: what of its body has been read, and whether the guard answers it."""

    __slots__ = (
        "_cap",
        "_deadline",
        "_declared",
        "_expects_continue",
        "_limits",
        "_loop",
        "_receive",
        "_scope",
        "_send",
        "answered",
        "body_pending",
        "read_any",
        "received",
        "refusal",
        "started",
    )

    def __init__(
        self, limits: ServerLimits, cap: int | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self._limits = limits
        self._cap = cap
        self._scope = scope
        self._receive = receive
        self._send = send
        self._declared, chunked, self._expects_continue = _body_headers(scope["headers"])
        self.body_pending = chunked or bool(self._declared)
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + limits.body_timeout
        self.read_any = False  # the app asked for the body (so a 100 Continue was sent)
        self.received = 0
        self.refusal: Refusal | None = None
        self.started = False  # the app's answer has started going out
        self.answered = False  # the guard answered itself: the app's answer is dropped

    async def run(self, app: ASGIApp) -> None:
        if self._cap is not None and self._declared is not None and self._declared > self._cap:
            self.refusal = _too_large(self._cap)
            await self._answer_refusal()
            return
        try:
            await app(self._scope, self.receive, self.send)
        except ClientDisconnect:
            if self.refusal is None:  # the client really left
                raise
            # else the app gave up on the body the guard cut off: the refusal is the answer
        if self.refusal is not None and not self.answered and not self.started:
            await self._answer_refusal()

    async def receive(self) -> Message:
        if self.refusal is not None:
            return _DISCONNECT
        if not self.body_pending:
            return await self._receive()
        self.read_any = True
        wait = min(self._limits.body_idle_timeout, self._deadline - self._loop.time())
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                message = await self._receive()
        except TimeoutError:
            self.refusal = _TOO_SLOW
            log.info(
                "cut off a request body that came too slowly: %s %s",
                self._scope["method"],
                self._scope["path"],
                extra={"action": "http.body_timeout"},
            )
            return _DISCONNECT
        if message["type"] != "http.request":  # the client left
            self.body_pending = False
            return message
        self.received += len(message.get("body", b""))
        if not message.get("more_body", False):
            self.body_pending = False
        if self._cap is not None and self.received > self._cap:
            self.refusal = _too_large(self._cap)
            return _DISCONNECT
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return  # the app's answer to a request the guard answered itself
        if message["type"] == "http.response.start":
            if self.refusal is not None:
                await self._answer_refusal()
                return
            if self.body_pending:  # an early answer: the client is still sending
                await self._linger()
                if self.body_pending or message["status"] == 413:
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            self.started = True
        await self._send(message)

    async def _linger(self) -> None:
        """Read and drop what comes of the body, within the linger bounds."""
        if self._expects_continue and not self.read_any:
            return  # the client waits for a go-ahead before sending the body: none is given
        drained = 0
        try:
            async with asyncio.timeout(self._limits.linger_seconds):
                while self.body_pending and drained < self._limits.linger_bytes:
                    message = await self._receive()
                    if message["type"] != "http.request":
                        self.body_pending = False
                        break
                    drained += len(message.get("body", b""))
                    self.body_pending = message.get("more_body", False)
        except TimeoutError:
            pass

    async def _answer_refusal(self) -> None:
        assert self.refusal is not None
        self.answered = True
        if self.refusal.status == 413:  # a fast client still sending: let it read the answer
            await self._linger()
        body = json.dumps({"error": self.refusal.code, "message": self.refusal.message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            _CLOSE,
        ]
        await self._send(
            {"type": "http.response.start", "status": self.refusal.status, "headers": headers}
        )
        await self._send({"type": "http.response.body", "body": body})


def _body_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[int | None, bool, bool]:
    """The declared length (if readable), whether the body is chunked, whether the client
    waits for ``100 Continue``, in one pass."""
    declared: int | None = None
    chunked = expects_continue = False
    for name, value in headers:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:  # the server refuses such a request before the app sees it
                declared = None
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expects_continue = value.strip().lower() == b"100-continue"
    return declared, chunked, expects_continue
