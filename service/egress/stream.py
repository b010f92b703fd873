"""httpcore's public network interface on plain asyncio, instead of its anyio backend.

Why not httpcore's own :class:`httpcore.AnyIOBackend`: on asyncio, each of its reads yields to
the event loop even when data is waiting, arms and disarms a cancel scope, and resumes and
pauses the socket's reading around every wait, and reads are capped at 64 KiB by httpcore. For
a 100 MiB download that is thousands of loop turns and epoll registrations: the client's CPU,
not the network, set the speed (bench_download: ~0.4 s of CPU per 100 MiB against curl's 0.16).

Here a connection is an asyncio protocol that buffers what arrives (the socket's reading pauses
while :data:`HIGH_WATER` bytes wait, so memory stays bounded) and a read returns buffered bytes
at once, without a loop turn; it waits (and arms its timeout) only when nothing is buffered.
Small writes are held until the answer is read, so a request's head and body leave in one
``send`` (see :meth:`AsyncioStream.write`). TLS is asyncio's own (``loop.start_tls``), on the
same protocol.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import typing

import httpcore

HIGH_WATER = 1024 * 1024  # bytes buffered before the socket's reading pauses
LOW_WATER = 256 * 1024  # ... and resumes
COALESCE_BYTES = 64 * 1024  # writes held back to go out together (see AsyncioStream.write)


class _Connection(asyncio.Protocol):
    """What asyncio delivers for one connection, kept until read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()  # as received: no copy
        self.offset = 0  # bytes of the first chunk already read
        self.buffered = 0  # bytes received and not read yet
        self.ended = False  # the peer closed its side, or the connection is gone
        self.error: Exception | None = None
        self.reading_paused = False
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self.writing_paused = False

    # -- asyncio's callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self.ended = True
        self._wake_reader()
        return None  # let the transport close itself: HTTP has nothing to send after it

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = self.error or exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    # -- for the stream ----------------------------------------------------------------------

    async def wait_for_data(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._data_waiter = waiter
        try:
            await waiter
        finally:
            self._data_waiter = None

    async def wait_for_drain(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what is buffered: a received chunk itself when it fits, else
        one copy of a piece of it (httpcore reads 64 KiB at a time, the socket gives more)."""
        chunk, start = self.chunks[0], self.offset
        end = start + max_bytes
        if end >= len(chunk):
            self.chunks.popleft()
            self.offset = 0
            data = chunk[start:] if start else chunk
        else:
            self.offset = end
            data = chunk[start:end]
        self.buffered -= len(data)
        if self.reading_paused and self.buffered < LOW_WATER and self.transport:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def _wake_reader(self) -> None:
        if self._data_waiter is not None and not self._data_waiter.done():
            self._data_waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, connection: _Connection, transport: asyncio.Transport) -> None:
        self._connection = connection
        self._transport = transport
        self._unsent: list[bytes] = []  # written, held until the answer is read (see write)
        self._unsent_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return self._connection.buffered

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        self._send_unsent()
        connection = self._connection
        if not connection.buffered and not connection.ended:
            try:
                async with asyncio.timeout(timeout):
                    await connection.wait_for_data()
            except TimeoutError as exc:
                raise httpcore.ReadTimeout("timed out reading") from exc
        if connection.buffered:
            return connection.take(max_bytes)
        if connection.error is not None:
            raise httpcore.ReadError(str(connection.error) or type(connection.error).__name__)
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Small writes wait for the next read (or :data:`COALESCE_BYTES`) and go out as one.

        httpcore writes a request's head and its body separately and then reads the answer:
        sent as they come, a webhook would cost two ``send`` calls and two TCP segments,
        and the receiver two wake-ups. A client only ever reads after writing its request,
        so nothing waits on bytes held here."""
        if not buffer:
            return
        connection = self._connection
        if connection.error is not None or self._transport.is_closing():
            raise httpcore.WriteError(str(connection.error or "the connection is closed"))
        self._unsent.append(buffer)
        self._unsent_bytes += len(buffer)
        if self._unsent_bytes < COALESCE_BYTES:
            return
        self._send_unsent()
        if connection.writing_paused:
            try:
                async with asyncio.timeout(timeout):
                    await connection.wait_for_drain()
            except TimeoutError as exc:
                raise httpcore.WriteTimeout("timed out writing") from exc
            if connection.error is not None:
                raise httpcore.WriteError(str(connection.error))

    def _send_unsent(self) -> None:
        if self._unsent:
            unsent, self._unsent, self._unsent_bytes = self._unsent, [], 0
            self._transport.write(b"".join(unsent) if len(unsent) > 1 else unsent[0])

    async def aclose(self) -> None:
        self._send_unsent()
        # Like httpcore's anyio backend (``standard_compatible=False``): no TLS close_notify
        # exchange to wait for; what was written is still sent before the socket closes.
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        self._send_unsent()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._connection, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from exc
        except (OSError, EOFError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        assert transport is not None
        self._connection.transport = transport
        return AsyncioStream(self._connection, transport)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # What httpcore asks of an idle kept-alive connection: did the server close it (or
            # send something unasked)? The transport reads eagerly, so the protocol knows.
            connection = self._connection
            return bool(connection.buffered) or connection.ended
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP connections as :class:`AsyncioStream`."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, connection = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        # asyncio has set TCP_NODELAY already (requests go out whole, without Nagle's delay)
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(connection, transport)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
