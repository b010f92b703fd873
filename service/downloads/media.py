"""Is it a video (or an image)? Content types, magic bytes, and the formats an output may have.

Kling hands out MP4; a gateway or CDN may hand out QuickTime (MOV). Both are ISO base media
files: a sequence of boxes, each starting with a 4-byte size and a 4-byte type. An MP4 starts
with ``ftyp`` and its major brand; a QuickTime file starts with ``ftyp`` and brand ``qt  ``, or
(older files) directly with ``moov``, ``mdat``, ``wide``, ``free``, ``skip`` or ``pnot``.
Anything else (an HTML error page, JSON) is not stored. An output of kind image (Kling's
results may hold some) is a PNG, a JPEG or a WebP, told by its signature; an image where a
video is expected, or the reverse, is refused like a page.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HEAD_BYTES = 12  # the first box's size, type and (for ftyp) major brand


VIDEO = "video"
IMAGE = "image"


@dataclass(frozen=True)
class VideoFormat:
    """The format of a stored output: its file extension, content type and kind."""

    extension: str
    media_type: str
    kind: str = VIDEO


MP4 = VideoFormat(".mp4", "video/mp4")
MOV = VideoFormat(".mov", "video/quicktime")
PNG = VideoFormat(".png", "image/png", IMAGE)
JPEG = VideoFormat(".jpg", "image/jpeg", IMAGE)
WEBP = VideoFormat(".webp", "image/webp", IMAGE)
_BY_EXTENSION = {f.extension: f for f in (MP4, MOV, PNG, JPEG, WEBP)}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_QUICKTIME_FIRST_BOXES = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_QUICKTIME_BRAND = b"qt  "

# Video servers label files every which way; the magic bytes decide. These types, though, say
# "this is a page or a document", which is what an expired signed URL tends to return.
_DOCUMENT_TYPES = frozenset(
    {
        "application/json",
        "application/problem+json",
        "application/xml",
        "application/xhtml+xml",
        "application/javascript",
    }
)


def refused_content_type(media_type: str | None) -> bool:
    """True for content types that are never a video (text pages, JSON and XML documents)."""
    if media_type is None:
        return False
    return media_type.startswith("text/") or media_type in _DOCUMENT_TYPES


def sniff(head: bytes) -> VideoFormat | None:
    """The format of a file starting with ``head`` (at least :data:`HEAD_BYTES`), if a video
    or an image; the caller checks its ``kind`` is the one expected."""
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(_JPEG_SIGNATURE):
        return JPEG
    if len(head) >= HEAD_BYTES and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if len(head) < 8:
        return None
    (size,) = struct.unpack_from(">I", head)
    box = head[4:8]
    if size not in (0, 1) and size < 8:
        return None
    if box == b"ftyp":
        if len(head) < HEAD_BYTES:
            return None
        return MOV if head[8:12] == _QUICKTIME_BRAND else MP4
    return MOV if box in _QUICKTIME_FIRST_BOXES else None


def media_type_for(path: Path | str) -> str:
    """The content type a stored output is served with, from its extension."""
    video_format = _BY_EXTENSION.get(Path(path).suffix.lower(), MP4)
    return video_format.media_type


def probe_duration(path: Path) -> float | None:
    """The movie's duration in seconds from ``moov/mvhd``; None when the file has none.

    Only box headers are read (the file may be gigabytes, with ``moov`` at either end).
    """
    try:
        with path.open("rb") as file:
            moov = _find_box(file, 0, path.stat().st_size, b"moov")
            if moov is None:
                return None
            mvhd = _find_box(file, moov[0], moov[0] + moov[1], b"mvhd")
            if mvhd is None:
                return None
            file.seek(mvhd[0])
            body = file.read(min(mvhd[1], 40))
    except OSError:
        return None
    if len(body) < 24:
        return None
    if body[0] == 1:  # version 1: 64-bit times and duration
        if len(body) < 32:
            return None
        timescale, duration = struct.unpack_from(">IQ", body, 20)
    else:
        timescale, duration = struct.unpack_from(">II", body, 12)
    return duration / timescale if timescale else None


def _find_box(file: BinaryIO, start: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    """``(body offset, body size)`` of the first box of type ``wanted`` in ``[start, end)``."""
    offset = start
    while offset + 8 <= end:
        file.seek(offset)
        header = file.read(16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", header)
        header_size = 8
        if size == 1:
            if len(header) < 16:
                return None
            (size,) = struct.unpack_from(">Q", header, 8)
            header_size = 16
        elif size == 0:
            size = end - offset
        if size < header_size or offset + size > end:
            return None
        if kind == wanted:
            return offset + header_size, size - header_size
        offset += size
    return None
