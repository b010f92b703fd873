"""Reading a notification body without ever holding more than the cap in memory."""

from __future__ import annotations

from starlette.requests import Request

MAX_NOTIFICATION_BYTES = 1024 * 1024  # real ones are a few KB


class BodyTooLarge(Exception):
    """The body is (or announces itself as) larger than the cap."""


async def read_capped(request: Request, limit: int = MAX_NOTIFICATION_BYTES) -> bytes:
    """The whole body, or :class:`BodyTooLarge` as soon as it is known to exceed ``limit``.

    A declared ``Content-Length`` over the cap is refused before a byte is read; a chunked body
    (no length) is counted as it arrives and refused at the first chunk past the cap.
    Starlette's ``ClientDisconnect`` passes through.
    """
    declared = (request.headers.get("content-length") or "").strip()
    # The length test first: int() refuses strings of thousands of digits (ValueError).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
