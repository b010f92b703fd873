"""Reading a notification body without ever holding more than the cap in memory."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

MAX_NOTIFICATION_BYTES = 1024 * 1024  # real ones are a few KB


class BodyTooLarge(Exception):
    """The body is (or announces itself as) larger than the cap."""


async def read_capped(scope: Scope, receive: Receive, limit: int = MAX_NOTIFICATION_BYTES) -> bytes:
    """The whole body, or :class:`BodyTooLarge` as soon as it is known to exceed ``limit``.

    A declared ``Content-Length`` over the cap is refused before a byte is read; a chunked body
    (no length) is counted as it arrives and refused at the first chunk past the cap.
    A client that leaves mid-body raises Starlette's ``ClientDisconnect``.

    Reads the ASGI messages itself rather than through a Starlette ``Request``: this runs for
    every callback, and the receiver's rate is what its benchmark measures.
    """
    declared = _declared_length(scope["headers"])
    # The length test first: int() refuses strings of thousands of digits (ValueError).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"content-length":
            return value.decode("latin-1").strip()
    return ""
