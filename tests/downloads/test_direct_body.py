"""Bodies read straight from the socket: the guarded clients' plain sockets, exact heads, and
:class:`~service.downloads.body.DirectBody` (block boundaries, short and broken bodies,
timeouts, cancellation), then whole downloads that take that path or must not."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from service.downloads import GuardedTransport, body
from service.downloads.body import DirectBody, direct_body
from service.downloads.sockets import SocketBackend, SocketStream
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


async def connected(script: Script) -> AsyncIterator[SocketStream]:
    server, port = await raw_server(script)
    stream = await SocketBackend().connect_tcp("127.0.0.1", port, timeout=5)
    assert isinstance(stream, SocketStream)
    try:
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        yield stream
    finally:
        await stream.aclose()
        server.close()


def rest_of(stream: SocketStream, size: int) -> bytes:
    """What is still in the socket (nothing of it was read by the stream)."""
    stream.socket.settimeout(5)
    data = b""
    while len(data) < size:
        data += stream.socket.recv(size - len(data))
    return data


# -- the plain socket stream: heads are read exactly -------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [
        [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"],
        [b"HTTP/1.1 200 OK\nContent-Length: 4\n\nbody"],  # bare LF, as h11 accepts
        [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n", 0.05, b"\r\nbody"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r", 0.05, b"\n\r\nbody"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r", 0.05, b"\nbody"],
    ],
    ids=["one-segment", "bare-lf", "split-between-lines", "split-in-line-end", "split-in-blank"],
)
async def test_a_head_is_read_to_its_blank_line_and_no_further(parts: list[bytes | float]) -> None:
    whole = b"".join(part for part in parts if isinstance(part, bytes))
    head = whole.removesuffix(b"body")
    async for stream in connected(sends(*parts)):
        read = b""
        while not stream.at_head_end:
            read += await stream.read(65536, timeout=5)
        assert read == head
        assert rest_of(stream, 4) == b"body"


async def test_after_an_informational_head_reads_go_past_the_next_head() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    async for stream in connected(sends(early + final)):
        assert await stream.read(65536, timeout=5) == early
        assert stream.at_head_end
        assert await stream.read(65536, timeout=5) == final
        assert not stream.at_head_end  # so h11 may hold body bytes: no direct read


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_connects_to_a_literal_address_or_a_name(host: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"pong")
        await writer.drain()

    server, port = await raw_server(answer)
    try:
        stream = await SocketBackend().connect_tcp(host, port, timeout=5)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await stream.read(10, timeout=5) == b"pong"
        assert stream.get_extra_info("server_addr")[1] == port
        await stream.aclose()
    finally:
        server.close()


async def test_a_refused_connection_is_a_connect_error() -> None:
    import httpcore

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(httpcore.ConnectError):
            await SocketBackend().connect_tcp("127.0.0.1", port, timeout=5)


async def test_once_a_body_was_read_through_h11_no_head_counts_as_exact() -> None:
    """h11 may keep bytes a server sent past an earlier response on a kept-alive connection."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    async for stream in connected(sends(answer + b"body", 0.1, answer + b"next")):
        assert await stream.read(65536, timeout=5) == answer and stream.at_head_end
        assert await stream.read(65536, timeout=5) == b"body"
        await stream.write(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await stream.read(65536, timeout=5) == answer
        assert not stream.at_head_end


async def test_reads_time_out_as_httpcore_expects() -> None:
    import httpcore

    async for stream in connected(sends()):
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(65536, timeout=0.1)


# -- DirectBody ----------------------------------------------------------------------------------


async def blocks_of(stream: SocketStream, length: int, timeout: float = 5) -> list[bytes]:
    blocks: list[bytes] = []
    async for block in DirectBody(stream.socket, length, timeout).blocks():
        blocks.append(bytes(block))  # copied: the buffer is reused
    return blocks


async def at_body(script: Script) -> AsyncIterator[SocketStream]:
    async for stream in connected(script):
        while not stream.at_head_end:
            await stream.read(65536, timeout=5)
        yield stream


def head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()


async def test_blocks_cover_the_body_across_partial_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body, "BLOCK_BYTES", 1000)  # block boundaries inside the pieces
    data = os.urandom(10_000)
    pieces: list[bytes | float] = [head(len(data))]
    for start in range(0, len(data), 777):
        pieces += [data[start : start + 777], 0.002]
    async for stream in at_body(sends(*pieces, b"not part of the body")):
        blocks = await blocks_of(stream, len(data))
    assert b"".join(blocks) == data
    assert all(0 < len(block) <= 1000 for block in blocks)


async def test_a_body_that_ends_early_stops_with_what_came() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(100) + b"x" * 60)
        await writer.drain()  # and the connection closes

    async for stream in at_body(short):
        blocks = await blocks_of(stream, 100)
    assert b"".join(blocks) == b"x" * 60  # the caller sees the body is short


async def test_a_reset_raises_after_what_came() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(100) + b"x" * 60)
        await writer.drain()
        await asyncio.sleep(0.05)
        linger = struct.pack("ii", 1, 0)  # close with a reset, like a crashed edge server
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        writer.transport.abort()

    async for stream in at_body(reset):
        received: list[bytes] = []
        with pytest.raises(httpx.ReadError):
            async for block in DirectBody(stream.socket, 100, 5).blocks():
                received.append(bytes(block))
    assert b"".join(received) == b"x" * 60


async def test_a_stalled_body_times_out_after_what_came() -> None:
    async for stream in at_body(sends(head(100) + b"x" * 10)):
        received: list[bytes] = []
        with pytest.raises(httpx.ReadTimeout):
            async for block in DirectBody(stream.socket, 100, 0.2).blocks():
                received.append(bytes(block))
    assert b"".join(received) == b"x" * 10


async def test_cancelling_wakes_the_reading_thread() -> None:
    async for stream in at_body(sends(head(100))):
        reading = asyncio.create_task(blocks_of(stream, 100, timeout=30))
        await asyncio.sleep(0.1)  # the thread is blocked in recv_into
        started = time.monotonic()
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert time.monotonic() - started < 2  # not the 30-second timeout
        assert stream.socket.recv(10) == b""  # shut down, and the thread let go of it


# -- whole downloads ------------------------------------------------------------------------------


async def test_downloads_read_their_bodies_from_the_socket(
    server: HostileServer, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[DirectBody | None] = []

    def recording(response: httpx.Response) -> DirectBody | None:
        used.append(direct_body(response))
        return used[-1]

    monkeypatch.setattr("service.downloads.fetch.direct_body", recording)
    result = await run(server.add("/v.mp4", DATA))
    assert result.sha256 == sha256(DATA)
    assert len(used) == 1 and used[0] is not None


async def test_an_informational_answer_first_falls_back_to_httpx(run: Runner) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    answer = head(len(DATA)).replace(b"OK\r\n", b"OK\r\nContent-Type: video/mp4\r\n") + DATA
    server, port = await raw_server(sends(early + answer))
    try:
        result = await run(f"http://127.0.0.1:{port}/v.mp4")
    finally:
        server.close()
    assert (result.size, result.sha256) == (len(DATA), sha256(DATA))


async def test_a_chunked_body_falls_back_to_httpx(run: Runner) -> None:
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


async def test_the_deadline_stops_a_direct_read_and_keeps_what_came(
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


async def test_disk_full_on_a_direct_read(server: HostileServer, run: Runner) -> None:
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
