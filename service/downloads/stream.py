"""The network stream of the downloads client: reads in large blocks.

httpcore asks its stream for 64 KiB at a time. For a video of hundreds of megabytes that is
thousands of trips through the event loop and the HTTP parser, and on a busy machine it halves
the throughput (``tests/benchmarks/bench_download.py``). This wrapper asks the socket for up to
:data:`READ_BYTES` instead. It is safe because the only reader of this stream is h11 (HTTP/1.1;
HTTP/2 is not enabled on the downloads client), which accepts data in blocks of any size; TLS
streams are wrapped the same way.
"""

from __future__ import annotations

import typing

import httpcore

READ_BYTES = 1024 * 1024


class LargeReads(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max(max_bytes, READ_BYTES), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return LargeReads(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)
