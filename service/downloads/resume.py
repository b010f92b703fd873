"""Asking for the rest of a file, and telling an honest answer from one that cannot be trusted.

A download resumes only from a server that identified the file with a strong ``ETag`` and
said how big it is. The request carries ``Range: bytes=N-`` and ``If-Range: <etag>``: a server
whose file changed answers ``200`` with the whole new file (and the download starts over from
that answer); an unchanged one answers ``206`` with ``Content-Range: bytes N-.../TOTAL``. A
``206`` that starts elsewhere, announces another total or another ETag, or whose length does
not match its range is not appended to anything: the partial file is discarded
(:class:`Restart`) and the file fetched whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from service.downloads.files import ResumeInfo

_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$", re.IGNORECASE)


class Restart(Exception):
    """What was kept cannot be continued: discard it and fetch the file from its start."""


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive
    total: int | None


def strong_etag(value: str | None) -> str | None:
    """The ETag if it is a strong validator (``"..."``, not ``W/"..."``), else None."""
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value
    return None


def parse_content_range(value: str | None) -> ContentRange | None:
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        return None
    start, end, total = match.groups()
    return ContentRange(int(start), int(end), None if total == "*" else int(total))


def content_length(response: httpx.Response) -> int | None:
    """The announced body length, in the bytes we store (None under a Content-Encoding)."""
    if is_encoded(response):
        return None
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def is_encoded(response: httpx.Response) -> bool:
    encoding: str = response.headers.get("Content-Encoding", "identity")
    return encoding.strip().lower() != "identity"


def range_headers(offset: int, info: ResumeInfo) -> dict[str, str]:
    return {"Range": f"bytes={offset}-", "If-Range": info.etag}


def resume_info(response: httpx.Response) -> ResumeInfo | None:
    """What a later request needs to resume this ``200`` answer's file, if it gives enough."""
    etag = strong_etag(response.headers.get("ETag"))
    total = content_length(response)
    if etag is None or total is None or total == 0:
        return None
    return ResumeInfo(etag, total)


def check_partial_content(
    response: httpx.Response, *, offset: int, info: ResumeInfo | None
) -> ContentRange:
    """The range of a ``206`` answer to ``Range: bytes=offset-``; :class:`Restart` if it lies."""
    if info is None or offset == 0:
        raise Restart("the server sent a part of the file that was not asked for")
    if is_encoded(response):
        raise Restart("the server sent an encoded part of the file")
    content_range = parse_content_range(response.headers.get("Content-Range"))
    if content_range is None:
        raise Restart("the server sent a part of the file without a readable Content-Range")
    start, end, total = content_range.start, content_range.end, content_range.total
    if start != offset:
        raise Restart(f"asked for the file from byte {offset}, the server sent it from {start}")
    if total != info.total:
        raise Restart(f"the file was {info.total} bytes, the server now says {total}")
    if end < start or end >= info.total:
        raise Restart(f"the server sent an impossible range {start}-{end}/{total}")
    etag = response.headers.get("ETag")
    if etag is not None and etag.strip() != info.etag:
        raise Restart("the file's ETag changed")
    length = content_length(response)
    if length is not None and length != end - start + 1:
        raise Restart(f"the range {start}-{end} does not match a body of {length} bytes")
    return content_range
