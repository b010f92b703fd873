"""The asyncio network stream under httpcore (service.egress.stream) against raw loopback
servers: what reads return, bounded buffering, end of stream, resets and timeouts as httpcore's
errors, writes held until the answer is read, and what it tells the pool about an idle
connection."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest

from service.egress import GuardedTransport
from service.egress.stream import COALESCE_BYTES, HIGH_WATER, AsyncioBackend, AsyncioStream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    """A loopback server running ``handler`` for each connection; its port."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def connect(port: int) -> AsyncioStream:
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
    assert isinstance(stream, AsyncioStream)
    return stream


async def read_exactly(stream: AsyncioStream, size: int, max_bytes: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        piece = await stream.read(max_bytes, timeout=5)
        assert piece, "the stream ended early"
        assert len(piece) <= max_bytes
        received += piece
    return bytes(received)


async def test_reads_return_what_was_sent_in_pieces_of_at_most_max_bytes() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    async with serving(send) as port:
        stream = await connect(port)
        assert await read_exactly(stream, len(data), 65536) == data
        assert await stream.read(65536, timeout=5) == b""  # the server closed: end of stream
        await stream.aclose()


async def test_a_reader_that_falls_behind_holds_a_bounded_buffer() -> None:
    data = os.urandom(16 * HIGH_WATER)
    sent = asyncio.Event()

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        sent.set()

    async with serving(send) as port:
        stream = await connect(port)
        await asyncio.sleep(0.2)  # the server writes as fast as it can; nobody reads
        # reading paused once HIGH_WATER bytes waited: the rest stays in the kernel and the
        # server's buffers (one more socket read may have come in meanwhile)
        assert stream.buffered <= HIGH_WATER + 256 * 1024
        assert not sent.is_set()
        assert await read_exactly(stream, len(data), 65536) == data  # and it resumes
        await stream.aclose()


async def test_a_reset_connection_is_a_read_error() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # an RST, not a FIN

    async with serving(reset) as port:
        stream = await connect(port)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        with pytest.raises(httpcore.ReadError):
            while await stream.read(65536, timeout=5):
                pass
        await stream.aclose()


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with serving(silent) as port:
        stream = await connect(port)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(65536, timeout=0.1)
        await stream.aclose()


async def test_small_writes_go_out_together_when_the_answer_is_read() -> None:
    arrivals: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while piece := await reader.read(65536):
            arrivals.append(piece)
            if b"".join(arrivals).endswith(b"body"):
                writer.write(b"ok")
                await writer.drain()

    async with serving(record) as port:
        stream = await connect(port)
        await stream.write(b"head\r\n\r\n", timeout=5)
        await stream.write(b"body", timeout=5)
        await asyncio.sleep(0.05)
        assert arrivals == []  # held until the client reads
        assert await stream.read(65536, timeout=5) == b"ok"
        assert arrivals == [b"head\r\n\r\nbody"]  # one send, one segment
        await stream.aclose()


async def test_large_writes_are_not_held_back() -> None:
    received = asyncio.Event()

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(COALESCE_BYTES)
        received.set()

    async with serving(count) as port:
        stream = await connect(port)
        await stream.write(os.urandom(COALESCE_BYTES), timeout=5)
        await asyncio.wait_for(received.wait(), 5)  # arrived without a read
        await stream.aclose()


async def test_writing_to_a_closed_connection_is_a_write_error() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    async with serving(close_at_once) as port:
        stream = await connect(port)
        assert await stream.read(65536, timeout=5) == b""
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        await stream.aclose()


async def test_an_idle_connection_closed_by_the_server_is_readable() -> None:
    close = asyncio.Event()

    async def close_later(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await close.wait()

    async with serving(close_later) as port:
        stream = await connect(port)
        assert stream.get_extra_info("is_readable") is False  # open and quiet: reusable
        close.set()
        await asyncio.sleep(0.1)
        assert stream.get_extra_info("is_readable") is True  # the pool drops it
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        await stream.aclose()


async def test_connecting_to_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(httpcore.ConnectError):
            await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)


async def test_keep_alive_through_the_guarded_transport() -> None:
    """Requests reuse one connection; one the server closed while idle is replaced."""
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):  # two requests per connection, then it closes while idle
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with (
        serving(answer) as port,
        httpx.AsyncClient(transport=GuardedTransport(allow_private=True)) as http,
    ):
        for n in range(4):
            response = await http.post(f"http://127.0.0.1:{port}/", content=b"x" * n)
            assert response.status_code == 200 and response.content == b"ok"
            await asyncio.sleep(0.05)  # the server's close arrives while the connection idles
        assert connections == 2
