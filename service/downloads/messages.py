"""The network backend of short messages (webhook deliveries) over kept-alive connections.

A delivery is one small request and one small answer. The downloads' backend
(:mod:`service.downloads.sockets`) is built for large bodies read straight from the socket, so
it never reads past a response's head: it asks the event loop to watch the socket and stops
watching it again at every read, peeks before it reads, and polls an idle connection before
reusing it. A message stream does less per request:

- the connection's socket is watched by the event loop for as long as it lives (an
  :class:`asyncio.Protocol`): what arrives is kept until httpcore reads it (reading from the
  socket pauses beyond :data:`_KEEP_BYTES`), and an idle connection the server closed is known
  without a system call;
- a request is sent in one piece: what httpcore writes (the head, the body) is held until it
  first reads, which it does once the whole request is written, for the answer; then it is
  written at once. One write instead of two, and the endpoint gets one segment, not two.

Connections are made by :class:`service.downloads.sockets.SocketBackend`, under the address
guard (:class:`service.downloads.destination.GuardedBackend`, which hands it the checked
address); this module only takes over the connected socket. TLS goes through the event loop's
``start_tls``, on the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import typing
from collections import deque

import httpcore

from service.downloads.sockets import SocketBackend
from service.downloads.stream import mapped_errors

# Writes held until the next read (the request's end) up to this size: a large body is written
# on as it comes
_HOLD_BYTES = 64 * 1024
# Received and not yet read: beyond this, the socket is no longer read from until it is (an
# endpoint that streams a large answer fills the kernel's buffers, not this process's memory)
_KEEP_BYTES = 256 * 1024


class MessageBackend(SocketBackend):
    """The sockets backend's connections (and its refusals of unix sockets), each then handed
    to the event loop as a :class:`MessageStream`."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        connected = await super().connect_tcp(
            host, port, timeout, local_address=local_address, socket_options=socket_options
        )
        sock = connected.get_extra_info("socket")
        try:
            loop = asyncio.get_running_loop()
            with mapped_errors(timeout=httpcore.ConnectTimeout, error=httpcore.ConnectError):
                transport, protocol = await loop.create_connection(_Protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        return MessageStream(transport, protocol)


class _Protocol(asyncio.Protocol):
    """What arrived on the connection, until it is read; and whether it ended."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received: deque[bytes] = deque()
        self.kept = 0  # bytes in received
        self.reading = True
        self.ended = False  # the server closed its side (or the connection was lost)
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self.kept += len(data)
        if self.kept > _KEEP_BYTES and self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()
        self._wake()

    def take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of what was received (some is, when called)."""
        data = self.received.popleft()
        if len(data) > max_bytes:
            self.received.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        self.kept -= len(data)
        if not self.reading and self.kept <= _KEEP_BYTES // 2 and self.transport is not None:
            self.reading = True
            self.transport.resume_reading()
        return data

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class MessageStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._held: list[bytes] = []
        self._held_bytes = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        with mapped_errors(timeout=httpcore.ReadTimeout, error=httpcore.ReadError):
            if self._held:
                await self._flush(timeout)
            if not protocol.received and not protocol.ended:
                async with asyncio.timeout(timeout):
                    while not protocol.received and not protocol.ended:
                        waiter = protocol.waiter = asyncio.get_running_loop().create_future()
                        await waiter
        if protocol.received:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        self._held.append(buffer)
        self._held_bytes += len(buffer)
        if self._held_bytes >= _HOLD_BYTES:
            with mapped_errors(timeout=httpcore.WriteTimeout, error=httpcore.WriteError):
                await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:  # noqa: ASYNC109
        held = self._held
        data = held[0] if len(held) == 1 else b"".join(held)
        self._held, self._held_bytes = [], 0
        protocol = self._protocol
        if self._transport.is_closing():
            return  # lost: what the server sent before is still read, then the end
        self._transport.write(data)  # a failure here ends the connection (connection_lost)
        if protocol.paused:
            async with asyncio.timeout(timeout):
                while protocol.paused:
                    drained = protocol.drained = asyncio.get_running_loop().create_future()
                    await drained

    async def aclose(self) -> None:
        self._held = []
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        with mapped_errors(timeout=httpcore.ConnectTimeout, error=httpcore.ConnectError):
            try:  # (ssl.SSLError is an OSError)
                async with asyncio.timeout(timeout):
                    transport = await loop.start_tls(
                        self._transport,
                        self._protocol,
                        ssl_context,
                        server_hostname=server_hostname,
                    )
            except BaseException:
                self._transport.close()
                raise
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return MessageStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":  # idle, with data or an end waiting: the server closed it
            protocol = self._protocol
            return protocol.ended or bool(protocol.received) or self._transport.is_closing()
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        with contextlib.suppress(OSError):
            if info == "client_addr":
                return self._transport.get_extra_info("sockname")
            if info == "server_addr":
                return self._transport.get_extra_info("peername")
        return None
