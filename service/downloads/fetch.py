"""One transfer: the HTTP exchanges that fill a partial file, and how each answer is judged.

A :class:`Transfer` keeps, across the requests of one attempt, how many bytes the partial file
holds, their running SHA-256 and what is known about the file (its total size, its ETag). Each
call to :meth:`Transfer.fetch` makes one request (following redirects by hand, each hop checked
by :func:`check_url` and, on connection, by the guarded transport) and appends what it gets.
How it ends tells the caller what to do next:

- it returns: the file is complete (:attr:`Transfer.complete`) or a ``206`` ended early;
- :class:`Refused`: 403/404/410 or a page instead of a video; a fresh URL may help;
- :class:`Interrupted`: timeout, reset, cut body; resumable if bytes came and the file allows;
- :class:`~service.downloads.resume.Restart`: what was kept cannot be continued;
- :class:`DownloadRetryable`: the server is in trouble (5xx, 429, with its ``Retry-After``);
- :class:`DownloadError`: retrying cannot help (too big, another client error, bad URL).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from service.downloads.files import PartialFile, ResumeInfo
from service.downloads.media import HEAD_BYTES, VIDEO, VideoFormat, refused_content_type, sniff
from service.downloads.resume import (
    Restart,
    check_partial_content,
    content_length,
    range_headers,
    resume_info,
)
from service.downloads.writer import BatchWriter
from service.egress import check_url, display_url
from service.errors import DownloadError, DownloadRetryable
from service.retry_after import parse_retry_after

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
PROGRESS_INTERVAL = 0.5  # seconds between progress reports: enough for people, cheap for the DB
_EXPIRED = frozenset({403, 404, 410})

ProgressCallback = Callable[[int, int | None], Awaitable[None]]


class Refused(DownloadError):
    """The URL is refused or expired, or serves a page instead of a video."""


class Interrupted(DownloadRetryable):
    """The transfer broke off (timeout, reset, cut body); what came is kept."""


class Transfer:
    def __init__(
        self,
        http: httpx.AsyncClient,
        partial: PartialFile,
        *,
        max_bytes: int,
        allow_private: bool,
        on_progress: ProgressCallback | None = None,
        kind: str = VIDEO,
    ) -> None:
        self._http = http
        self._kind = kind  # what the file must be: a video, or an image output
        self._partial = partial
        self._max_bytes = max_bytes
        self._allow_private = allow_private
        self._on_progress = on_progress
        self._reported_at = 0.0
        self.size = 0  # bytes in the partial file, all of them hashed into digest
        self.digest: Any = None
        self.head = b""
        self.info: ResumeInfo | None = None  # set when the file can be resumed
        self.total: int | None = None  # the file's size, when the server said it
        self.ended = False  # a whole-file answer was read to its end
        self.format: VideoFormat | None = None
        self._start_from(0, None, b"", None)  # the file itself is untouched until told

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start over: an empty partial file, no sidecar."""
        self._partial.forget_meta()
        self._partial.truncate(0)
        self._start_from(0, None, b"", None)

    def continue_from(self, size: int, digest: Any, head: bytes, info: ResumeInfo) -> None:
        """Continue a partial file kept by an earlier attempt (its prefix already hashed)."""
        self._start_from(size, digest, head, info)
        self.format = self._expected(sniff(head[:HEAD_BYTES]))

    def _start_from(self, size: int, digest: Any, head: bytes, info: ResumeInfo | None) -> None:
        self.size, self.head, self.info = size, head, info
        self.digest = digest if digest is not None else hashlib.sha256()
        self.total = info.total if info is not None else None
        self.ended = False
        self.format = None

    @property
    def resumable(self) -> bool:
        return self.info is not None and 0 < self.size < self.info.total

    @property
    def complete(self) -> bool:
        if self.total is not None:
            return self.size == self.total
        return self.ended

    # -- one request ---------------------------------------------------------------------------

    async def fetch(self, url: httpx.URL) -> None:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept-Encoding": "identity"}
            if self.size and self.info is not None:
                headers.update(range_headers(self.size, self.info))
            try:
                async with self._http.stream("GET", current, headers=headers) as response:
                    if response.has_redirect_location:
                        location = response.url.join(response.headers["Location"])
                        current = check_url(location, allow_private=self._allow_private)
                        continue
                    await self._receive(response)
                    return
            except httpx.TimeoutException as exc:
                raise Interrupted(f"timed out fetching {display_url(current)}") from exc
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise DownloadError(f"cannot fetch {display_url(current)}: {exc}") from exc
            except httpx.HTTPError as exc:  # refused/reset connections, cut bodies, bad HTTP
                name = type(exc).__name__
                raise Interrupted(f"{name} fetching {display_url(current)}: {exc}") from exc
        raise DownloadError(f"more than {MAX_REDIRECTS} redirects from {display_url(url)}")

    async def _receive(self, response: httpx.Response) -> None:
        status, where = response.status_code, display_url(response.url)
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise DownloadRetryable(f"HTTP {status} from {where}", retry_after=retry_after)
        if status in _EXPIRED:
            raise Refused(f"the video URL expired or was refused (HTTP {status}): {where}")
        if status == 416:
            raise Restart(f"{where} cannot serve the rest of the file (HTTP 416)")
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} from {where}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if refused_content_type(media_type):
            # CDNs answer expired signatures with an HTML page and a 200 now and then.
            raise Refused(f"{where} is a {media_type} page, not a video")
        if status == 206:
            content_range = check_partial_content(response, offset=self.size, info=self.info)
            await self._report(force=True)
            await self._stream(response, where, whole=None)
            end: int | None = content_range.end + 1
        else:
            end = content_length(response)
            if end is not None and end > self._max_bytes:
                raise DownloadError(
                    f"{where} is {end} bytes, over the {self._max_bytes}-byte limit"
                )
            await self._stream(response, where, whole=(resume_info(response), end))
        if end is not None and self.size != end:
            raise Interrupted(f"{where} sent {self.size} bytes of the {end} announced")
        self.ended = status == 200

    async def _stream(
        self,
        response: httpx.Response,
        where: str,
        *,
        whole: tuple[ResumeInfo | None, int | None] | None,
    ) -> None:
        """Hash and write the body. ``whole`` (a 200 answer's resume info and length) means the
        body is the file from its start: it replaces what was kept once its first bytes say
        "video"."""
        base = 0 if whole is not None else self.size
        received, pending = 0, b""
        writer: BatchWriter | None = (
            None if whole is not None else BatchWriter(self._partial, self.digest)
        )
        try:
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if base + received > self._max_bytes:
                    raise DownloadError(f"{where} is over the {self._max_bytes}-byte limit")
                if writer is None:
                    assert whole is not None
                    pending += chunk
                    if len(pending) < HEAD_BYTES:
                        continue
                    self._begin_whole_file(pending, whole, where)
                    writer = BatchWriter(self._partial, self.digest)
                    chunk, pending = pending, b""
                await writer.add(chunk)
                self.size += len(chunk)
                if self._on_progress is not None:
                    await self._report()
            if writer is None:  # the whole body is shorter than a box header
                assert whole is not None
                self._begin_whole_file(pending, whole, where)
                writer = BatchWriter(self._partial, self.digest)
                await writer.add(pending)
                self.size += len(pending)
        finally:
            if writer is not None:
                await writer.flush()  # what came is kept (hashed and written), whatever happens
        await self._report(force=True)

    def _begin_whole_file(
        self, head: bytes, whole: tuple[ResumeInfo | None, int | None], where: str
    ) -> None:
        video_format = self._expected(sniff(head))
        if video_format is None:
            what = "a video (no MP4/MOV header)" if self._kind == VIDEO else "a PNG/JPEG/WebP image"
            raise Refused(f"{where} is not {what}")
        if self.size:
            log.info(
                "%s sent the whole file instead of the rest: starting over",
                where,
                extra={"action": "download.restart"},
            )
        self.reset()
        info, total = whole
        self.info, self.total, self.format, self.head = info, total, video_format, head[:64]
        if info is not None:
            self._partial.write_meta(info)

    def _expected(self, found: VideoFormat | None) -> VideoFormat | None:
        """``found`` when it is the kind of file this transfer fetches, else None."""
        return found if found is not None and found.kind == self._kind else None

    async def _report(self, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._reported_at >= PROGRESS_INTERVAL:
            self._reported_at = now
            await self._on_progress(self.size, self.total)
