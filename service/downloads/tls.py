"""TLS over a connected socket of :mod:`service.downloads.sockets`, through anyio.

Encrypted bodies are read the ordinary way (anyio's stream, then h11), in blocks of
:data:`~service.downloads.sockets.READ_BYTES` rather than httpcore's 64 KiB.
"""

from __future__ import annotations

import socket
import ssl
import typing

import anyio
import anyio.abc
import anyio.streams.tls
import httpcore

from service.downloads.stream import READ_BYTES, is_readable, mapped_errors

_BROKEN = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    ssl.SSLError,
    OSError,
)


class TLSStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: anyio.streams.tls.TLSStream) -> None:
        self._stream = stream

    @classmethod
    async def wrap(
        cls,
        sock: socket.socket,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,  # noqa: ASYNC109 - httpcore's interface
    ) -> TLSStream:
        plain = await anyio.abc.SocketStream.from_socket(sock)  # it owns the socket now
        try:
            with (
                mapped_errors(
                    timeout=httpcore.ConnectTimeout, error=httpcore.ConnectError, errors=_BROKEN
                ),
                anyio.fail_after(timeout),
            ):
                stream = await anyio.streams.tls.TLSStream.wrap(
                    plain,
                    ssl_context=ssl_context,
                    hostname=server_hostname,
                    standard_compatible=False,
                    server_side=False,
                )
        except BaseException:
            await anyio.aclose_forcefully(plain)
            raise
        return cls(stream)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        with (
            mapped_errors(timeout=httpcore.ReadTimeout, error=httpcore.ReadError, errors=_BROKEN),
            anyio.fail_after(timeout),
        ):
            try:
                return await self._stream.receive(max(max_bytes, READ_BYTES))
            except anyio.EndOfStream:
                return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        with (
            mapped_errors(timeout=httpcore.WriteTimeout, error=httpcore.WriteError, errors=_BROKEN),
            anyio.fail_after(timeout),
        ):
            await self._stream.send(buffer)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS inside TLS (an HTTPS proxy) is not supported")

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._stream.extra(anyio.streams.tls.TLSAttribute.ssl_object, None)
        if info == "client_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.local_address, None)
        if info == "server_addr":
            return self._stream.extra(anyio.abc.SocketAttribute.remote_address, None)
        if info == "socket":
            return self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if info == "is_readable":
            sock = self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
            return is_readable(sock)
        return None
