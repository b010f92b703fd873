"""The peers omnihook talks to in a chaos scenario, besides the simulated provider itself: a
healthy webhook sink that records what it received, endpoints that accept and never answer, and
an adapter that makes the provider hand out video links through a proxy of their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class HealthySink:
    """A webhook endpoint that answers 200 at once and records each ``webhook-id`` it got with
    a valid signature (the endpoint's secret is known once the endpoint is registered)."""

    secret: str | None = None
    received: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    badly_signed: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        webhook_id = request.headers.get("webhook-id", "")
        if self.secret is not None and self._signed(request, webhook_id, body):
            self.received[webhook_id] += 1
        else:
            self.badly_signed.append(webhook_id)
        return Response(status_code=200)

    def _signed(self, request: Request, webhook_id: str, body: bytes) -> bool:
        assert self.secret is not None
        try:
            moment = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
        except (KeyError, ValueError):
            return False
        expected = Webhook(self.secret).sign(webhook_id, moment, body.decode())
        return expected in request.headers.get("webhook-signature", "").split(" ")


@dataclass
class HungEndpoint:
    """``async with HungEndpoint() as url``: accepts connections and reads what comes, never
    answering, until the client gives up (a webhook endpoint whose app is stuck)."""

    connections: int = 0
    _server: asyncio.Server | None = None
    _held: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._held):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._held.add(writer)
        try:
            with contextlib.suppress(OSError):
                while await reader.read(4096):
                    pass
        finally:
            self._held.discard(writer)
            writer.transport.abort()


class MediaThrough:
    """Wraps the simulated provider's app so that the video links it hands out name
    ``media_host`` (a fault proxy in front of the same app) instead of the host it was reached
    at: the provider's API and its "CDN" then sit behind proxies of their own, as in real life.

    The simulator builds a video link from the request's base URL, which Starlette takes from
    the ``Host`` header; only that header is replaced."""

    def __init__(self, app: ASGIApp, media_host: str) -> None:
        self.app = app
        self.media_host = media_host.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(("/media/", "/_sim/")):
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", self.media_host)]}
        await self.app(scope, receive, send)
