"""One delivery attempt over HTTP: a signed POST, judged by its answer, within one deadline.

The deadline (``OMNIHOOK_WEBHOOK_TIMEOUT``) covers the whole attempt: connecting, an answer
whose headers come slowly, and a body that trickles in. Only the first
:data:`RESPONSE_BODY_LIMIT` bytes of the answer are read and kept; the rest is never read.
Redirects are not followed (a ``3xx`` is a failure). The request goes through the client it is
given; in every process that is the guarded one (:mod:`service.egress`), so the address
actually connected is checked. It asks for an uncompressed answer
(``accept-encoding: identity``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from service.egress.guard import DestinationRefused
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
    started = time.perf_counter()
    status: int | None = None
    received, truncated, retry_after = b"", False, None
    error: str | None
    request = http.build_request(
        "POST",
        url,
        content=body,
        headers={
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            **headers,
        },
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


def _timed_out(seconds: float, status: int | None) -> str:
    return f"timed out after {seconds:g}s" + (
        f" reading the answer (HTTP {status})" if status is not None else ""
    )


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    """The first :data:`RESPONSE_BODY_LIMIT` bytes, and whether there were more (the rest is
    not read)."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
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
