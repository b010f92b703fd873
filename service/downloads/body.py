"""Reading a response body straight from its socket, in a worker thread, into reused buffers.

Through httpx every block of a body costs a trip through the event loop, h11 and several copies;
for a large video on a fast link that, not the network, is the limit. When the connection is one
of :mod:`service.downloads.sockets` and nothing of the body has been read yet
(:func:`direct_body`), the body is read here instead: blocking ``recv_into`` calls in a worker
thread fill one buffer while the caller hashes and writes the other. It is the same connection,
the one the address guard checked, so nothing about where the bytes come from changes.

The socket is lent to the thread only while a buffer fills; cancelling (the attempt's deadline,
a worker shutting down) shuts the socket down, which wakes the thread, and waits for it. After
the body the connection is not reused: h11 never saw the body, so httpcore closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor

import httpx

from service.downloads.resume import content_length
from service.downloads.sockets import SocketStream

BLOCK_BYTES = 4 * 1024 * 1024
FILL_SECONDS = 0.25  # hand over what came after this long, so slow servers still show progress
# Threads of their own: a reader may wait for a slow server up to the read timeout, and must not
# hold up the default executor's other work (files, hashing) meanwhile.
_READERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="download-body")


class DirectBody:
    def __init__(self, sock: socket.socket, length: int, timeout: float | None) -> None:
        self._socket = sock
        self._remaining = length
        self._timeout = timeout
        self._buffers = [bytearray(BLOCK_BYTES), bytearray(BLOCK_BYTES)]

    async def blocks(self) -> AsyncGenerator[memoryview, None]:
        """The body, block by block, until its announced length or an error (raised after the
        block holding what came before it). A block is valid until the next one is asked for
        *after* the one following it: the caller may work on one block while the next fills."""
        turn = 0
        while self._remaining > 0:
            buffer = self._buffers[turn % 2]
            turn += 1
            filled, failure = await self._fill(buffer)
            self._remaining -= filled
            if filled:
                yield memoryview(buffer)[:filled]
            if failure is not None:
                raise failure
            if not filled:
                return  # the server closed the connection: the caller sees the body is short

    async def _fill(self, buffer: bytearray) -> tuple[int, httpx.TransportError | None]:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(_READERS, self._fill_blocking, buffer)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)  # wakes the thread's recv_into
            while not work.done():  # it must be done with the socket before anyone closes it
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([work])
            raise

    def _fill_blocking(self, buffer: bytearray) -> tuple[int, httpx.TransportError | None]:
        """Fill ``buffer`` (in a worker thread); how much came, and the error that stopped it."""
        view = memoryview(buffer)
        wanted = min(len(buffer), self._remaining)
        filled = 0
        give_up_at = time.monotonic() + FILL_SECONDS
        self._socket.settimeout(self._timeout)
        try:
            while filled < wanted:
                received = self._socket.recv_into(view[filled:wanted])
                if not received:
                    break
                filled += received
                if time.monotonic() >= give_up_at:
                    break
        except TimeoutError:
            return filled, httpx.ReadTimeout("timed out reading the body")
        except OSError as exc:
            return filled, httpx.ReadError(str(exc) or type(exc).__name__)
        finally:
            self._socket.setblocking(False)  # the event loop's again
        return filled, None


def direct_body(response: httpx.Response) -> DirectBody | None:
    """A :class:`DirectBody` for ``response`` if its body can be read from the socket: a plain
    connection of ours with nothing of the body read yet, and a plain ``Content-Length``."""
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, SocketStream) or not stream.at_head_end:
        return None
    if "Transfer-Encoding" in response.headers or response.http_version != "HTTP/1.1":
        return None
    length = content_length(response)  # None under a Content-Encoding
    if length is None:
        return None
    timeout = response.request.extensions.get("timeout", {}).get("read")
    return DirectBody(stream.socket, length, timeout)
