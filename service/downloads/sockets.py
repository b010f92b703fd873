"""The network backend of the guarded clients: plain sockets driven by the event loop.

httpcore's default backend reads through anyio, whose transport reads ahead into a queue of its
own, and h11 keeps whatever it was given beyond what it parsed. A large body can only be read
straight from the socket (:mod:`service.downloads.body`, no event loop and no parser per block)
if no byte of it waits in either place. So this backend's plain-TCP stream keeps no buffer at
all, and while a response's head is awaited it never reads past the head's blank line: once
httpx has parsed the head (and :attr:`SocketStream.at_head_end` still holds), every byte of the
body is still in the socket. Reads are otherwise large (:data:`READ_BYTES`, not httpcore's
64 KiB): the only reader is h11 (HTTP/1.1; HTTP/2 is not enabled), which takes any size.

TLS connections are handed to anyio (:mod:`service.downloads.tls`) and read the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import typing

import httpcore

from service.downloads.stream import READ_BYTES, is_readable, mapped_errors
from service.downloads.tls import TLSStream

# h11 ends a head at the first blank line, accepting bare LF line endings: the same rule here.
_BLANK_LINE = re.compile(b"\n\r?\n")


class SocketBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        options = list(socket_options or ())
        with mapped_errors(timeout=httpcore.ConnectTimeout, error=httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                infos = await _addresses(host, port)
                failure: OSError | None = None
                for family, kind, proto, _, address in infos:
                    sock = socket.socket(family, kind, proto)
                    try:
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        for option in options:
                            sock.setsockopt(*option)
                        if local_address is not None:
                            sock.bind((local_address, 0))
                        await loop.sock_connect(sock, address)
                    except OSError as exc:
                        sock.close()
                        failure = exc
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return SocketStream(sock)
                raise failure or OSError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SocketStream(httpcore.AsyncNetworkStream):
    """A connected plain-TCP socket (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self._in_head = False  # a response head is awaited: do not read past its end
        self._head_tail = b""  # the head's last bytes read so far (a blank line may straddle)
        self._head_ended = False  # the last read ended exactly at a head's blank line
        self._only_heads = True  # nothing but heads was ever read from this connection

    @property
    def at_head_end(self) -> bool:
        """Nothing but response heads was ever read from this connection, each to its blank
        line, and the last read ended one: h11 holds nothing past them (not even bytes a server
        sent beyond an earlier response), so the next byte in the socket is the body's first."""
        return self._only_heads and self._head_ended

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        size = max(max_bytes, READ_BYTES)
        with mapped_errors(timeout=httpcore.ReadTimeout, error=httpcore.ReadError):
            async with asyncio.timeout(timeout):
                if not self._in_head:
                    self._head_ended = self._only_heads = False
                    return await loop.sock_recv(self.socket, size)
                while True:
                    await _readable(self.socket)
                    with contextlib.suppress(BlockingIOError):  # woken for nothing after all
                        return self._read_head_part(size)

    def _read_head_part(self, size: int) -> bytes:
        """Up to ``size`` bytes of the head, never beyond its end (the socket is readable)."""
        peeked = self.socket.recv(size, socket.MSG_PEEK)
        seen = self._head_tail + peeked
        blank = _BLANK_LINE.search(seen)
        wanted = len(peeked) if blank is None else blank.end() - len(self._head_tail)
        data = self.socket.recv(wanted) if wanted else b""  # bytes already in the socket
        self._head_tail = (self._head_tail + data)[-2:]
        self._in_head = blank is None and bool(data)
        self._head_ended = blank is not None
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        self._in_head, self._head_tail, self._head_ended = True, b"", False
        loop = asyncio.get_running_loop()
        with mapped_errors(timeout=httpcore.WriteTimeout, error=httpcore.WriteError):
            async with asyncio.timeout(timeout):
                await loop.sock_sendall(self.socket, buffer)

    async def aclose(self) -> None:
        self.socket.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return await TLSStream.wrap(self.socket, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self.socket
        if info == "is_readable":
            return is_readable(self.socket)
        with contextlib.suppress(OSError):
            if info == "client_addr":
                return self.socket.getsockname()
            if info == "server_addr":
                return self.socket.getpeername()
        return None


async def _addresses(host: str, port: int) -> list[typing.Any]:
    """Where to connect to: a literal address (what the guard hands over) needs no resolver,
    so no trip through a thread; a name is resolved by the event loop's resolver."""
    try:
        return socket.getaddrinfo(
            host.encode("ascii"), port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except (UnicodeEncodeError, socket.gaierror):
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
