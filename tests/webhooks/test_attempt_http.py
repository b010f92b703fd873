"""Attempts through the guarded transport (:mod:`service.webhooks.attempt`,
:mod:`service.egress`), against real servers on loopback: what is sent, kept-alive
connections, the deadline, the cap, redirects, Retry-After, failures of the connection, TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from service.egress import GuardedTransport
from service.webhooks.attempt import RESPONSE_BODY_LIMIT, USER_AGENT, post_signed

Handler = Callable[["Exchange"], Awaitable[None]]
BODY = b'{"id":"evt_1","type":"task.succeeded"}'
HEADERS = {"webhook-id": "evt_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,x"}


@dataclass
class Server:
    url: str
    requests: list[tuple[int, bytes, dict[str, str], bytes]] = field(default_factory=list)
    connections: int = 0


@dataclass
class Exchange:
    """One connection to the test server, from its side."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: Server
    number: int  # this connection's order among the server's connections

    async def request(self) -> tuple[bytes, dict[str, str], bytes]:
        """The next request's head line, headers and body."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers: dict[str, str] = {}
        for text in lines:
            name, _, value = text.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return line.encode(), headers, body

    async def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        fields = {"content-length": str(len(body)), **headers}
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()


@asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """A raw HTTP/1.1 server on loopback: ``handler`` runs once per connection."""
    tasks: set[asyncio.Task[None]] = set()
    server_state = Server("")

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        server_state.connections += 1
        try:
            await handler(Exchange(reader, writer, server_state, server_state.connections))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(connected, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    server_state.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield server_state
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def recording(status: int = 204, **headers: str) -> Handler:
    """Answers every request of the connection with ``status``, noting what came."""

    async def handler(exchange: Exchange) -> None:
        while True:
            line, fields, body = await exchange.request()
            exchange.server.requests.append((exchange.number, line, fields, body))
            await exchange.answer(status, b"", **headers)

    return handler


@asynccontextmanager
async def client(**options: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = GuardedTransport(allow_private=True, **options)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as http:
        yield http


async def test_the_request_sent_and_a_kept_alive_connection() -> None:
    async with serve(recording()) as server, client() as http:
        first = await post_signed(http, f"{server.url}/hook?x=1", BODY, HEADERS, seconds=5)
        second = await post_signed(http, f"{server.url}/hook?x=1", BODY, HEADERS, seconds=5)
    assert first.succeeded and second.succeeded and first.status_code == 204
    assert server.connections == 1  # both on one connection
    [(_, line, fields, body), (number, *_)] = server.requests
    assert number == 1
    assert line == b"POST /hook?x=1 HTTP/1.1" and body == BODY
    port = server.url.rsplit(":", 1)[1]
    assert fields["host"] == f"127.0.0.1:{port}"
    assert fields["content-type"] == "application/json"
    assert fields["user-agent"] == USER_AGENT
    assert fields["accept-encoding"] == "identity"
    assert {name: fields[name] for name in HEADERS} == HEADERS
    assert "cookie" not in fields


async def test_a_kept_alive_connection_the_server_closed_is_not_reused() -> None:
    async def once(exchange: Exchange) -> None:
        await exchange.request()
        await exchange.answer(204)  # then closes the connection, as an idle server does

    async with serve(once) as server, client() as http:
        first = await post_signed(http, f"{server.url}/h", BODY, HEADERS, seconds=5)
        await asyncio.sleep(0.05)  # the close has arrived
        second = await post_signed(http, f"{server.url}/h", BODY, HEADERS, seconds=5)
    assert first.succeeded and second.succeeded and server.connections == 2


async def test_a_large_request_body_arrives_whole() -> None:
    large = b'{"pad":"' + b"x" * 300_000 + b'"}'
    async with serve(recording()) as server, client() as http:
        result = await post_signed(http, f"{server.url}/h", large, HEADERS, seconds=5)
    assert result.succeeded and server.requests[0][3] == large


async def test_the_deadline_covers_slow_headers_and_a_trickling_body() -> None:
    async def silent(exchange: Exchange) -> None:
        await exchange.request()
        await asyncio.sleep(30)

    async def trickling(exchange: Exchange) -> None:
        await exchange.request()
        exchange.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(100):
            exchange.writer.write(b".")
            await exchange.writer.drain()
            await asyncio.sleep(0.05)

    async with serve(silent) as quiet, serve(trickling) as slow, client() as http:
        started = asyncio.get_running_loop().time()
        no_answer = await post_signed(http, f"{quiet.url}/h", BODY, HEADERS, seconds=0.3)
        took = asyncio.get_running_loop().time() - started
        cut = await post_signed(http, f"{slow.url}/h", BODY, HEADERS, seconds=0.3)
    assert no_answer.error == "timed out after 0.3s" and no_answer.status_code is None
    assert 0.25 <= took < 2
    assert cut.error == "timed out after 0.3s reading the answer (HTTP 200)"
    assert cut.status_code == 200 and not cut.succeeded


async def test_only_the_start_of_a_large_answer_is_read_and_kept() -> None:
    async def chatty(exchange: Exchange) -> None:
        await exchange.request()
        size = 50 * 1024 * 1024
        exchange.writer.write(f"HTTP/1.1 500 X\r\ncontent-length: {size}\r\n\r\n".encode())
        for _ in range(size // 65536):
            exchange.writer.write("é".encode() * 32768)
            await exchange.writer.drain()

    async with serve(chatty) as server, client() as http:
        result = await post_signed(http, f"{server.url}/h", BODY, HEADERS, seconds=5)
    assert result.status_code == 500 and result.error == "HTTP 500"
    assert result.response_truncated and result.response_body.startswith("éé")
    assert len(result.response_body.encode()) <= RESPONSE_BODY_LIMIT + 3


async def test_redirects_are_not_followed_and_retry_after_is_read() -> None:
    async with (
        serve(recording(302, location="/elsewhere")) as moved,
        serve(recording(503, **{"retry-after": "7"})) as busy,
        serve(recording(410)) as gone,
        client() as http,
    ):
        redirected = await post_signed(http, f"{moved.url}/h", BODY, HEADERS, seconds=5)
        later = await post_signed(http, f"{busy.url}/h", BODY, HEADERS, seconds=5)
        ended = await post_signed(http, f"{gone.url}/h", BODY, HEADERS, seconds=5)
    assert redirected.error == "HTTP 302: redirects are not followed"
    assert len(moved.requests) == 1
    assert (later.status_code, later.error, later.retry_after) == (503, "HTTP 503", 7.0)
    assert (ended.status_code, ended.error) == (410, "HTTP 410")


async def test_failures_of_the_connection_are_results() -> None:
    async def hang_up(exchange: Exchange) -> None:
        await exchange.request()
        exchange.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await exchange.writer.drain()
        exchange.writer.transport.abort()

    async def garbage(exchange: Exchange) -> None:
        await exchange.request()
        exchange.writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await exchange.writer.drain()

    async with serve(hang_up) as cut, serve(garbage) as bad, client() as http:
        broken = await post_signed(http, f"{cut.url}/h", BODY, HEADERS, seconds=5)
        nonsense = await post_signed(http, f"{bad.url}/h", BODY, HEADERS, seconds=5)
        closed_port = cut.url.rsplit(":", 1)[1]
    async with client() as http:
        refused = await post_signed(
            http, f"http://127.0.0.1:{closed_port}/h", BODY, HEADERS, seconds=5
        )
    assert broken.status_code == 200 and broken.error is not None
    assert broken.error.startswith(("RemoteProtocolError", "ReadError"))
    assert nonsense.status_code is None and nonsense.error is not None
    assert nonsense.error.startswith("RemoteProtocolError")
    assert refused.status_code is None and refused.error is not None
    assert refused.error.startswith("ConnectError")


async def test_https_endpoints(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_side, client_side = tls_contexts
    async with serve(recording(), tls=server_side) as server:
        async with client(ssl_context=client_side) as http:
            first = await post_signed(http, f"{server.url}/h", BODY, HEADERS, seconds=5)
            second = await post_signed(http, f"{server.url}/h", BODY, HEADERS, seconds=5)
        async with client() as http:  # does not trust the test certificate
            untrusted = await post_signed(http, f"{server.url}/h", BODY, HEADERS, seconds=5)
    assert first.succeeded and second.succeeded and server.connections == 1  # kept alive
    assert [body for *_, body in server.requests] == [BODY, BODY]
    assert untrusted.error is not None and untrusted.error.startswith("ConnectError")
