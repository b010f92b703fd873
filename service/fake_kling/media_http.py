"""Serving a file over HTTP like a CDN: ETag, ``Range`` (single ranges), ``If-Range``, HEAD.

Videos (and their watermarked copies) are ``/media/{id}.mp4``, images ``/media/{id}.png``. A
file with a ``[sim:media=...]`` fault (:mod:`.media_faults`) is cut, refused or trickled.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import KlingError
from .media import PNG_TYPE, VIDEO_TYPE, MediaFile, MediaLibrary, ServedCounts
from .media_faults import EXPIRED_BODY, trickle

EXTENSIONS = {VIDEO_TYPE: ".mp4", PNG_TYPE: ".png"}

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    """The requested range lies outside the file."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` asked for by a ``Range`` header.

    ``None`` means "serve the whole file": the header is malformed or asks for several ranges,
    which a server may ignore (RFC 9110 §14.2). Raises :class:`Unsatisfiable` for a range that
    starts beyond the end of the file.
    """
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise Unsatisfiable
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # malformed: ignore the header
    if start >= size:
        raise Unsatisfiable
    return start, min(end, size - 1)


def _if_range_matches(if_range: str | None, media: MediaFile) -> bool:
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"'):
        return value == media.etag  # strong comparison: no weak validators here
    return value == media.last_modified


class CutBody(Response):
    """An answer whose headers promise the whole body and which sends only half of it: the
    server then has to close the connection (``[sim:media=cut]``). uvicorn logs "ASGI callable
    returned without completing response" for it: that is the cut, as intended."""

    def __init__(self, body: bytes, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code)
        self._part = body[: len(body) // 2]
        self._raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self._raw_headers})
        await send({"type": "http.response.body", "body": self._part, "more_body": True})


class MediaEndpoint:
    """``GET``/``HEAD /media/{video_id}.mp4`` (and ``.png``); public, like a CDN URL."""

    def __init__(self, library: MediaLibrary) -> None:
        self._library = library

    async def serve(self, request: Request) -> Response:
        video_id = request.path_params["video_id"]
        media = self._library.get(video_id)
        if media is None or not request.url.path.endswith(EXTENSIONS[media.media_type]):
            raise KlingError(1203, "video does not exist")
        faults = self._library.faults
        if faults.refuses(video_id, request.query_params.get("cacheKey")):
            self._library.served.setdefault(video_id, ServedCounts()).refused += 1
            return Response(EXPIRED_BODY, status_code=403, media_type="application/xml")
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": media.etag,
            "Last-Modified": media.last_modified,
            "Cache-Control": "public, max-age=2592000",
        }
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and _etag_listed(media.etag, if_none_match):
            return Response(status_code=304, headers=headers)

        status, body = 200, media.data
        range_header = request.headers.get("range")
        if range_header is not None and _if_range_matches(request.headers.get("if-range"), media):
            try:
                byte_range = parse_range(range_header, media.size)
            except Unsatisfiable:
                headers["Content-Range"] = f"bytes */{media.size}"
                return Response(status_code=416, headers=headers)
            if byte_range is not None:
                start, end = byte_range
                status, body = 206, media.data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{media.size}"

        headers["Content-Length"] = str(len(body))
        if request.method == "HEAD":
            return Response(b"", status_code=status, headers=headers, media_type=media.media_type)
        counts = self._library.served.setdefault(video_id, ServedCounts())
        if status == 200:
            counts.full += 1
        else:
            counts.partial += 1
        if faults.take_cut(video_id):
            return CutBody(body, status, {**headers, "Content-Type": media.media_type})
        if faults.slow(video_id):
            return StreamingResponse(
                trickle(body), status_code=status, headers=headers, media_type=media.media_type
            )
        return Response(body, status_code=status, headers=headers, media_type=media.media_type)


def _etag_listed(etag: str, if_none_match: str) -> bool:
    # If-None-Match uses weak comparison (RFC 9110 §13.1.2)
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
