"""A deliberately unreliable file server on loopback, built on raw asyncio sockets.

Honest by default: ``GET`` with ``ETag``, ``Content-Length``, single ``Range`` requests and
``If-Range``, like a CDN. Each request to a path can be scripted to misbehave instead: cut the
connection after N bytes of the file, lie about the range, serve another file (a changed ETag),
refuse (403), serve an HTML page as a 200, or go slowly. Every request is recorded, so tests can
assert what the downloader asked for.

    async with HostileServer() as server:
        url = server.add("/v.mp4", data)
        server.script("/v.mp4", Cut(at=1000), Honest())
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
CHUNK = 64 * 1024


@dataclass
class Served:
    """A file as the server holds it: bytes in memory or a file on disk."""

    data: bytes | Path
    etag: str | None = None  # None: computed (strong); "" : no ETag header at all
    content_type: str = "video/mp4"
    rate: float | None = None  # bytes per second for every honest answer; None: full speed

    @property
    def size(self) -> int:
        return self.data.stat().st_size if isinstance(self.data, Path) else len(self.data)

    def read(self, start: int, end: int) -> bytes:
        if isinstance(self.data, Path):
            with self.data.open("rb") as file:
                file.seek(start)
                return file.read(end - start)
        return self.data[start:end]

    def header_etag(self) -> str | None:
        if self.etag is not None:
            return self.etag or None
        if isinstance(self.data, Path):
            stat = self.data.stat()
            return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        return f'"{hashlib.sha256(self.data).hexdigest()[:20]}"'


@dataclass
class Request:
    path: str
    headers: dict[str, str]

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


# -- behaviours: what the server does for one request ------------------------------------------


@dataclass
class Honest:
    rate: float | None = None  # bytes per second; None: as fast as possible


@dataclass
class Cut:
    """Honest headers, then the connection dies once the file's byte ``at`` is reached."""

    at: int
    rate: float | None = None


@dataclass
class LyingRange:
    """Answers a range request with a 206 whose Content-Range is wrong."""

    start_shift: int = 0  # claim the range starts this many bytes later than asked
    total: int | None = None  # claim this total instead of the real one
    send_from: int | None = None  # actually send the file from this byte
    etag: str | None = None  # claim this ETag on the 206


@dataclass
class Status:
    code: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Html:
    """A 200 page, as CDNs answer expired signatures now and then."""

    content_type: str = "text/html"
    body: bytes = b"<!doctype html><html><body>Signature expired</body></html>"


@dataclass
class Replace:
    """From now on the path serves another file (another ETag), then answers honestly."""

    served: Served


Behaviour = Honest | Cut | LyingRange | Status | Html | Replace


class HostileServer:
    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self.files: dict[str, Served] = {}
        self.requests: list[Request] = []
        self.body_bytes_sent = 0
        self._scripts: dict[str, deque[Behaviour]] = defaultdict(deque)
        self._server: asyncio.Server | None = None
        self.base_url = ""

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._tls)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def add(self, path: str, data: bytes | Path, **options: str | float | None) -> str:
        self.files[path] = Served(data, **options)  # type: ignore[arg-type]
        return self.base_url + path

    def script(self, path: str, *behaviours: Behaviour) -> None:
        """What the next requests to ``path`` get, in order; honest answers afterwards."""
        self._scripts[path].extend(behaviours)

    def requests_to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    # -- the protocol ----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1].split("?")[0]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        request = Request(path, headers)
        self.requests.append(request)
        script = self._scripts[path]
        behaviour = script.popleft() if script else Honest()
        try:
            await self._answer(request, behaviour, writer)
        except (ConnectionError, OSError):
            pass  # the client went away: fine for a hostile server
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _answer(
        self, request: Request, behaviour: Behaviour, writer: asyncio.StreamWriter
    ) -> None:
        if isinstance(behaviour, Replace):
            self.files[request.path] = behaviour.served
            behaviour = Honest()
        if isinstance(behaviour, Status):
            await self._send(writer, behaviour.code, behaviour.headers, behaviour.body)
            return
        if isinstance(behaviour, Html):
            await self._send(writer, 200, {"Content-Type": behaviour.content_type}, behaviour.body)
            return
        served = self.files.get(request.path)
        if served is None:
            await self._send(writer, 404, {}, b"no such file")
            return
        status, start, end = self._range(request, served)
        if status == 416:
            await self._send(writer, 416, {"Content-Range": f"bytes */{served.size}"}, b"")
            return
        headers = {"Content-Type": served.content_type, "Accept-Ranges": "bytes"}
        etag = served.header_etag()
        if etag:
            headers["ETag"] = etag
        send_from, send_to = start, end
        if status == 206:
            claimed_start, claimed_total = start, served.size
            if isinstance(behaviour, LyingRange):
                claimed_start += behaviour.start_shift
                claimed_total = behaviour.total if behaviour.total is not None else served.size
                if behaviour.etag is not None:
                    headers["ETag"] = behaviour.etag
                if behaviour.send_from is not None:
                    send_from = behaviour.send_from
                    send_to = min(served.size, send_from + (end - start))
            headers["Content-Range"] = (
                f"bytes {claimed_start}-{claimed_start + (end - start) - 1}/{claimed_total}"
            )
        headers["Content-Length"] = str(send_to - send_from)
        writer.write(_head(status, headers))
        cut = behaviour.at if isinstance(behaviour, Cut) else None
        rate = behaviour.rate if isinstance(behaviour, Honest | Cut) else None
        rate = rate or served.rate
        await self._body(writer, served, send_from, send_to, cut=cut, rate=rate)

    def _range(self, request: Request, served: Served) -> tuple[int, int, int]:
        size = served.size
        header = request.range
        if header is None:
            return 200, 0, size
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range != served.header_etag():
            return 200, 0, size  # the file changed: the whole new one
        match = _RANGE.match(header.replace(" ", ""))
        if match is None:
            return 200, 0, size
        start = int(match.group(1))
        end = int(match.group(2)) + 1 if match.group(2) else size
        if start >= size:
            return 416, 0, 0
        return 206, start, min(end, size)

    async def _body(
        self,
        writer: asyncio.StreamWriter,
        served: Served,
        start: int,
        end: int,
        *,
        cut: int | None,
        rate: float | None,
    ) -> None:
        stop = end if cut is None else max(start, min(end, cut))
        if isinstance(served.data, Path) and cut is None and rate is None:
            await writer.drain()
            loop = asyncio.get_running_loop()
            with served.data.open("rb") as file:
                await loop.sendfile(writer.transport, file, start, end - start)
            self.body_bytes_sent += end - start
            return
        with contextlib.ExitStack() as stack:
            source = None
            if isinstance(served.data, Path):
                source = stack.enter_context(served.data.open("rb"))
                source.seek(start)
            await self._paced(writer, served, source, start, stop, rate)
        if cut is not None and stop < end:
            writer.transport.abort()  # a reset mid-body, like a crashed edge server

    async def _paced(
        self,
        writer: asyncio.StreamWriter,
        served: Served,
        source: BinaryIO | None,
        start: int,
        stop: int,
        rate: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        began, position = loop.time(), start
        while position < stop:
            size = min(stop, position + CHUNK) - position
            if source is not None:
                block = source.read(size)
            else:
                block = served.read(position, position + size)
            writer.write(block)
            await writer.drain()
            position += len(block)
            self.body_bytes_sent += len(block)
            if rate:  # paced against the clock, so sleeping's overhead does not slow it more
                await asyncio.sleep(max(0.0, began + (position - start) / rate - loop.time()))

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        writer.write(_head(status, {**headers, "Content-Length": str(len(body))}) + body)
        await writer.drain()


_REASONS = {
    200: "OK",
    206: "Partial Content",
    403: "Forbidden",
    404: "Not Found",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
