"""One delivery attempt over HTTP: a signed POST, judged by its answer, within one deadline.

The deadline (``OMNIHOOK_WEBHOOK_TIMEOUT``) covers the whole attempt: connecting, an answer
whose headers come slowly, and a body that trickles in. Only the first
:data:`RESPONSE_BODY_LIMIT` bytes of the answer are read and kept; the rest is never read.
Redirects are not followed (a ``3xx`` is a failure). The connection goes through the guarded
client (:mod:`service.downloads.destination`): the address actually connected is checked.

Through the guarded transport (what every process uses), an attempt is sent straight through
httpcore on the transport's pool for messages (:attr:`GuardedTransport.messages`), behind the
same address guard, not through httpx's client: the request is the attempt's own (no cookies
kept from one endpoint to the next, nor shared with downloads; no client defaults), and the
client's layers (request building, cookies, redirects, auth, response wrapping) and the
downloads' streams are skipped: ~350 µs of CPU per attempt on loopback instead of ~600. It
asks for an uncompressed answer (``accept-encoding: identity``); one that comes compressed all
the same is kept as it came. Any other transport (tests' mock transports) is used through the
client, with the same deadline, cap and judgement.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpcore
import httpx

from service.downloads.destination import DestinationRefused, GuardedTransport
from service.retry_after import parse_retry_after

RESPONSE_BODY_LIMIT = 4096  # bytes of an answer kept in the attempt log
USER_AGENT = "omnihook-webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    duration_ms: int
    status_code: int | None = None  # None: no answer
    error: str | None = None  # None: a 2xx answer, read in time
    response_body: str = ""
    response_truncated: bool = False
    retry_after: float | None = None  # seconds, from the answer's Retry-After

    @property
    def succeeded(self) -> bool:
        return self.error is None


async def post_signed(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    seconds: float,
) -> AttemptResult:
    """POST ``body`` with ``headers`` to ``url`` within ``seconds``; never raises for what
    the endpoint or the network does (the result says what happened)."""
    transport = _guarded(http)
    if transport is not None:
        return await _post_direct(transport.messages, url, body, headers, seconds=seconds)
    started = time.perf_counter()
    status: int | None = None
    received, truncated, retry_after = b"", False, None
    error: str | None
    request = http.build_request(
        "POST",
        url,
        content=body,
        headers={"content-type": "application/json", "user-agent": USER_AGENT, **headers},
        timeout=httpx.Timeout(seconds),
    )
    try:
        async with asyncio.timeout(seconds):
            response = await http.send(request, stream=True, follow_redirects=False)
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            try:
                received, truncated = await _read_capped(response)
            finally:
                await response.aclose()
        error = _judge(status)
    except (TimeoutError, httpx.TimeoutException):
        error = _timed_out(seconds, status)
    except DestinationRefused as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = _described(exc)
    return _result(started, status, error, received, truncated, retry_after)


def _guarded(http: httpx.AsyncClient) -> GuardedTransport | None:
    """The client's guarded transport, if it takes all of its requests (no mounts, which a
    client given its transport only has when asked for them)."""
    transport = getattr(http, "_transport", None)  # tests/webhooks fail loudly if it changes
    if isinstance(transport, GuardedTransport) and not getattr(http, "_mounts", None):
        return transport
    return None


@functools.lru_cache(maxsize=1024)
def _destination(url: str) -> tuple[httpcore.URL, bytes]:
    """The URL as httpcore takes it and the ``Host`` header, as httpx makes them (parsing and
    normalising the URL once per endpoint URL, not at every attempt). Raises InvalidURL."""
    parsed = httpx.URL(url)
    target = httpcore.URL(
        scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
    )
    return target, parsed.netloc


async def _post_direct(
    pool: httpcore.AsyncConnectionPool,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    seconds: float,
) -> AttemptResult:
    started = time.perf_counter()
    target, host = _destination(url)
    fields = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
    request = httpcore.Request(
        b"POST",
        target,
        headers=[
            (b"Host", host),
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"identity"),
            *((name.encode("ascii"), value.encode("ascii")) for name, value in fields.items()),
            (b"Content-Length", str(len(body)).encode("ascii")),
        ],
        content=body,
        extensions={"timeout": dict.fromkeys(("connect", "read", "write", "pool"), seconds)},
    )
    status: int | None = None
    received, truncated, retry_after = b"", False, None
    error: str | None
    try:
        async with asyncio.timeout(seconds):
            response = await pool.handle_async_request(request)
            status = response.status
            retry_after = parse_retry_after(_header(response.headers, b"retry-after"))
            try:
                received, truncated = await _capped(response.aiter_stream())
            finally:
                await response.aclose()
        error = _judge(status)
    except (TimeoutError, httpcore.TimeoutException):
        error = _timed_out(seconds, status)
    except DestinationRefused as exc:
        error = str(exc)
    except (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
        httpcore.ProxyError,
    ) as exc:  # the names httpx gives them too
        error = _described(exc)
    return _result(started, status, error, received, truncated, retry_after)


def _described(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _result(
    started: float,
    status: int | None,
    error: str | None,
    received: bytes,
    truncated: bool,
    retry_after: float | None,
) -> AttemptResult:
    """What an attempt that began at ``started`` (``time.perf_counter``) came to."""
    return AttemptResult(
        duration_ms=round((time.perf_counter() - started) * 1000),
        status_code=status,
        error=error,
        response_body=received.decode("utf-8", errors="replace"),
        response_truncated=truncated,
        retry_after=retry_after,
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _timed_out(seconds: float, status: int | None) -> str:
    return f"timed out after {seconds:g}s" + (
        f" reading the answer (HTTP {status})" if status is not None else ""
    )


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    return await _capped(response.aiter_bytes())


async def _capped(chunks: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """The first :data:`RESPONSE_BODY_LIMIT` bytes, and whether there were more (the rest is
    not read)."""
    kept = bytearray()
    async for chunk in chunks:
        kept += chunk
        if len(kept) > RESPONSE_BODY_LIMIT:
            return bytes(kept[:RESPONSE_BODY_LIMIT]), True
    return bytes(kept), False


def _judge(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"
