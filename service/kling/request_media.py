"""Checks on the media a submission points at: URLs, and images sent inline as base64.

Kling fetches URLs itself, so all we can say about one is whether it is an http(s) URL. An inline
image is in our hands, though, and a cheap look at it saves a paid round trip that would end in
"Image pixel is invalid": it must decode, be JPEG or PNG, weigh at most 10 MB and, when its header
tells us its size, be at least 300 px on each side with an aspect ratio between 1:2.5 and 2.5:1.
Each function returns what is wrong as a message, or ``None``.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_SIDE = 300
MAX_IMAGE_ASPECT = 2.5

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# JPEG start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_BARE = frozenset({0x01, *range(0xD0, 0xD9)})


def http_url_problem(value: str) -> str | None:
    """``None`` when ``value`` is an absolute http(s) URL with a host."""
    if any(c.isspace() for c in value):
        return "must be an http(s) URL without spaces"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return "must be a valid http(s) URL"
    if parts.scheme.lower() not in ("http", "https") or not host:
        return "must be an http(s) URL"
    return None


def image_source_problem(value: str) -> str | None:
    """``None`` when ``value`` is an http(s) URL or a usable raw base64 JPEG/PNG."""
    if not value:
        return "must not be empty: an http(s) URL or raw base64 image data"
    if value.lower().startswith("data:"):
        # Kling takes the bare base64 text; a data: URI prefix makes it unreadable there.
        return "send raw base64 image data, without the data: URI prefix"
    if "://" in value or value.lower().startswith(("http:", "https:")):
        return http_url_problem(value)
    return _base64_image_problem(value)


def _base64_image_problem(value: str) -> str | None:
    compact = "".join(value.split())
    # Refuse before decoding: 4 base64 characters carry 3 bytes.
    if len(compact) > (MAX_IMAGE_BYTES + 2) // 3 * 4:
        return "image is larger than 10 MB"
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return "must be an http(s) URL or raw base64 image data (this is neither)"
    if len(data) > MAX_IMAGE_BYTES:
        return "image is larger than 10 MB"
    if data.startswith(_PNG_MAGIC):
        size = _png_size(data)
    elif data.startswith(_JPEG_MAGIC):
        size = _jpeg_size(data)
    else:
        return "image must be JPEG or PNG"
    return None if size is None else _dimensions_problem(*size)


def _dimensions_problem(width: int, height: int) -> str | None:
    if min(width, height) < MIN_IMAGE_SIDE:
        return f"image is {width}x{height} px; both sides must be at least {MIN_IMAGE_SIDE} px"
    if max(width, height) > MAX_IMAGE_ASPECT * min(width, height):
        return f"image is {width}x{height} px; its aspect ratio must be between 1:2.5 and 2.5:1"
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the IHDR chunk, which PNG requires to come first."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment; ``None`` if there is none."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_BARE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # image data starts, or the header is corrupt
            return None
        pos += 2 + length
    return None
