"""A real uvicorn, configured as ``omnihook serve`` configures it (:func:`server_config`), on an
ephemeral loopback port in the test's own event loop; and a raw-socket client for what httpx
will not do (send slowly, send past an answer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from urllib.parse import urlsplit

import uvicorn
from starlette.types import ASGIApp

from service.api.body_limits import api_body_limit
from service.http.limits import ServerLimits
from service.http.server import server_config
from service.loopback import base_url_of, bind_socket

STARTUP_TIMEOUT = 10.0


class _TestServer(uvicorn.Server):
    """Leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def guarded_server(app: ASGIApp, limits: ServerLimits) -> AsyncIterator[str]:
    """``app`` served behind the guards with ``limits``; yields its base URL."""
    sock = bind_socket("127.0.0.1", 0)
    config = server_config(
        app,
        host="127.0.0.1",
        port=0,
        body_limit=api_body_limit,
        limits=limits,
        log_config=None,
        lifespan="on",
    )
    server = _TestServer(config)
    runner = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while not server.started:
            assert not runner.done(), "the server stopped before it started"
            assert loop.time() < deadline, "the server did not start in time"
            await asyncio.sleep(0.01)
        yield base_url_of(sock)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(runner), 10)
        except TimeoutError:
            server.force_exit = True
            await runner
        sock.close()


class RawClient:
    """One TCP connection to the server, spoken to byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[RawClient]:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_server(self, within: float) -> bool:
        """Whether the server closes the connection within ``within`` seconds (whatever it
        sends before); False if it is still open then."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    async def answer(self, within: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """The status, headers (lower-cased names) and body of the next answer."""
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: omnihook.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
