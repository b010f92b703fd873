"""The guarded transport against real servers on loopback: connections, short, broken and
stalled bodies as httpx errors, then whole downloads through it (informational answers,
chunked bodies, the deadline, a full disk, TLS)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from service.egress import GuardedTransport
from service.errors import DownloadRetryable
from tests.downloads.conftest import Runner, sha256, video_bytes
from tests.downloads.hostile import Honest, HostileServer

DATA = video_bytes(700_000)
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_server(script: Script) -> tuple[asyncio.Server, int]:
    """A loopback server that reads one request head, then runs ``script``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def sends(*parts: bytes | float) -> Script:
    """Writes ``parts`` one by one (a float: sleep that long first), then stays open 5 s."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        await asyncio.sleep(5)

    return script


def head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()


@asynccontextmanager
async def answered(script: Script, host: str = "127.0.0.1") -> AsyncIterator[httpx.Response]:
    """The streamed response of a GET to a server running ``script``."""
    server, port = await raw_server(script)
    transport = GuardedTransport(allow_private=True)
    try:
        async with (
            httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5, read=0.3)) as http,
            http.stream("GET", f"http://{host}:{port}/v.mp4") as response,
        ):
            yield response
    finally:
        server.close()


async def read_all(response: httpx.Response, received: list[bytes]) -> None:
    async for chunk in response.aiter_raw():
        received.append(chunk)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_connects_to_a_literal_address_or_a_name(host: str) -> None:
    async with answered(sends(head(4) + b"pong"), host) as response:
        assert await response.aread() == b"pong"


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
        transport = GuardedTransport(allow_private=True)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")


async def test_a_body_that_ends_early_is_a_protocol_error_after_what_came() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(100) + b"x" * 60)
        await writer.drain()  # and the connection closes

    received: list[bytes] = []
    async with answered(short) as response:
        with pytest.raises(httpx.RemoteProtocolError):
            await read_all(response, received)
    assert b"".join(received) == b"x" * 60


async def test_a_reset_raises_after_what_came() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(100) + b"x" * 60)
        await writer.drain()
        await asyncio.sleep(0.05)
        linger = struct.pack("ii", 1, 0)  # close with a reset, like a crashed edge server
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        writer.transport.abort()

    received: list[bytes] = []
    async with answered(reset) as response:
        with pytest.raises(httpx.ReadError):
            await read_all(response, received)
    assert b"".join(received) == b"x" * 60


async def test_a_stalled_body_times_out_after_what_came() -> None:
    received: list[bytes] = []
    async with answered(sends(head(100) + b"x" * 10)) as response:
        with pytest.raises(httpx.ReadTimeout):
            await read_all(response, received)
    assert b"".join(received) == b"x" * 10


# -- whole downloads ------------------------------------------------------------------------------


async def test_an_informational_answer_first(run: Runner) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    answer = head(len(DATA)).replace(b"OK\r\n", b"OK\r\nContent-Type: video/mp4\r\n") + DATA
    server, port = await raw_server(sends(early + answer))
    try:
        result = await run(f"http://127.0.0.1:{port}/v.mp4")
    finally:
        server.close()
    assert (result.size, result.sha256) == (len(DATA), sha256(DATA))


async def test_a_chunked_body(run: Runner) -> None:
    chunks = b"".join(
        f"{len(DATA[i : i + 50_000]):x}\r\n".encode() + DATA[i : i + 50_000] + b"\r\n"
        for i in range(0, len(DATA), 50_000)
    )
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: video/mp4\r\n\r\n"
    server, port = await raw_server(sends(answer + chunks + b"0\r\n\r\n"))
    try:
        result = await run(f"http://127.0.0.1:{port}/v.mp4")
    finally:
        server.close()
    assert (result.size, result.sha256) == (len(DATA), sha256(DATA))


async def test_the_deadline_stops_a_read_and_keeps_what_came(
    server: HostileServer, run: Runner
) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Honest(rate=400_000))
    with pytest.raises(DownloadRetryable, match="deadline"):
        await run(url, deadline=0.6)
    kept = (run.partial_dir / "task-1%2F0.part").read_bytes()
    assert 0 < len(kept) < len(DATA) and kept == DATA[: len(kept)]
    result = await run(url)  # and the next attempt resumes from it
    assert result.sha256 == sha256(DATA) and result.resumed_from == len(kept)


async def test_disk_full_while_reading(server: HostileServer, run: Runner) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    run.partial_dir.mkdir(parents=True)
    (run.partial_dir / "task-1%2F0.part").symlink_to("/dev/full")
    with pytest.raises(DownloadRetryable, match="disk full"):
        await run(server.add("/v.mp4", DATA))
    assert run.stored() == [] and run.leftovers() == []


async def test_https_downloads_through_the_guarded_transport(
    run: Runner, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_side, client_side = tls_contexts
    async with HostileServer(tls=server_side) as server:
        url = server.add("/v.mp4", DATA)
        transport = GuardedTransport(allow_private=True, ssl_context=client_side)
        result = await run(url, transport=transport)
    assert (result.size, result.sha256) == (len(DATA), sha256(DATA))


async def test_an_untrusted_certificate_is_refused(
    run: Runner, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_side, _ = tls_contexts
    async with HostileServer(tls=server_side) as server:
        with pytest.raises(DownloadRetryable, match="ConnectError"):
            await run(server.add("/v.mp4", DATA))
