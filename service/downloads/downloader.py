"""Fetch one finished video into the media directory without ever losing or faking it.

:func:`download_video` runs one *attempt*: it continues the partial file an earlier attempt
left (when the server allows resuming, see :mod:`service.downloads.resume`), keeps requesting
the rest while bytes keep coming, asks once for a fresh URL when the current one is refused,
and stores the file only when it is whole: the size the server announced, a video by its magic
bytes, renamed into place after ``fsync``.

Errors are :class:`DownloadRetryable` when a later attempt may work (timeouts, resets, 5xx,
429, the attempt's deadline, a full disk) and :class:`DownloadError` otherwise (a URL still
refused after a fresh one, a page instead of a video, a file over the size limit, a private
address). A retryable failure keeps a resumable partial file for the next attempt; anything
else removes it. URLs appear in messages without their query string: CDN URLs carry
signatures.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from service.downloads.fetch import Interrupted, ProgressCallback, Refused, Transfer
from service.downloads.files import PartialBusy, PartialFile, storage_error, target_path
from service.downloads.media import VIDEO, probe_duration
from service.downloads.resume import Restart
from service.egress import check_url, display_url
from service.errors import DownloadError, DownloadRetryable

log = logging.getLogger(__name__)

MAX_RESTARTS = 2  # discarding what was kept and starting over, within one attempt
MAX_RESUMES = 20  # continuing after a cut, within one attempt (each one brought bytes)

UrlRefresher = Callable[[], Awaitable[str | None]]
T = TypeVar("T")


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int
    deadline: float  # seconds for the network part of one attempt
    allow_private: bool
    resume_backoff: float = 0.05  # base of the jittered pause before continuing after a cut


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    relative_path: str
    size: int
    sha256: str
    content_type: str
    duration: float | None  # from the file's own header (``moov/mvhd``)
    resumed_from: int  # bytes kept from an earlier attempt


async def download_video(
    http: httpx.AsyncClient,
    url: str,
    *,
    media_dir: Path,
    name: str,
    limits: DownloadLimits,
    refresh_url: UrlRefresher | None = None,
    on_progress: ProgressCallback | None = None,
    kind: str = VIDEO,
) -> DownloadResult:
    """Download ``url`` to ``media_dir/<name>.mp4`` (or ``.mov``); see the module docstring.

    ``kind`` ``image`` fetches an image output instead: a PNG, JPEG or WebP, stored with its
    extension, without a duration.

    ``refresh_url`` is called at most once, when the URL is refused, and answers a fresh URL
    for the same video (or None). ``on_progress(received, total)`` is called at most twice a
    second, plus at the start and end of each response.
    """
    start = check_url(url, allow_private=limits.allow_private)
    target_path(media_dir, name)  # refuse a bad name before touching anything
    try:
        partial = await asyncio.to_thread(PartialFile.open, media_dir, name)
    except PartialBusy:
        raise DownloadRetryable("another download of this video is running") from None
    except OSError as exc:
        raise storage_error(exc, media_dir) from exc
    transfer: Transfer | None = None
    keep = committed = False
    try:
        transfer = Transfer(
            http,
            partial,
            max_bytes=limits.max_bytes,
            allow_private=limits.allow_private,
            on_progress=on_progress,
            kind=kind,
        )
        resumed_from = await _uninterrupted(_continue_kept, partial, transfer)
        try:
            async with asyncio.timeout(limits.deadline):
                await _transfer(transfer, start, refresh_url, limits)
        except TimeoutError:
            raise DownloadRetryable(
                f"the download from {display_url(start)} took longer than its "
                f"{limits.deadline:g}-second deadline"
            ) from None
        video_format = transfer.format
        assert video_format is not None  # a complete transfer has checked its first bytes
        relative = name + video_format.extension
        path = target_path(media_dir, relative)
        await _uninterrupted(partial.commit, path)
        committed = True
    except (DownloadRetryable, asyncio.CancelledError):
        # A later attempt (or this job after a worker restart) resumes from what was kept.
        keep = transfer is not None and transfer.resumable
        raise
    except OSError as exc:
        raise storage_error(exc, media_dir) from exc
    finally:
        if not committed:
            await asyncio.to_thread(partial.release, keep=keep)
    duration = await asyncio.to_thread(probe_duration, path) if kind == VIDEO else None
    log.info(
        "stored %s (%d bytes%s)",
        relative,
        transfer.size,
        f", resumed at byte {resumed_from}" if resumed_from else "",
        extra={"action": "download.stored"},
    )
    return DownloadResult(
        path=path,
        relative_path=relative,
        size=transfer.size,
        sha256=transfer.digest.hexdigest(),
        content_type=video_format.media_type,
        duration=duration,
        resumed_from=resumed_from,
    )


def _continue_kept(partial: PartialFile, transfer: Transfer) -> int:
    """Pick up the partial file an earlier attempt kept, if it can be resumed; its size."""
    info, size = partial.read_meta(), partial.size()
    if info is None or size == 0:
        transfer.reset()
        return 0
    # A file that seems complete is cut by one byte: asking for that byte proves the server
    # still has the same file before the kept bytes are trusted.
    size = min(size, info.total - 1)
    if size <= 0:
        transfer.reset()
        return 0
    partial.truncate(size)
    digest, head = partial.hash_prefix(size)
    transfer.continue_from(size, digest, head, info)
    if transfer.format is None:  # the kept bytes are not a video after all
        transfer.reset()
        return 0
    return size


async def _transfer(
    transfer: Transfer, url: httpx.URL, refresh_url: UrlRefresher | None, limits: DownloadLimits
) -> None:
    """Request until the file is complete, or raise (see :mod:`service.downloads.fetch`)."""
    refreshed, restarts, resumes, current = False, 0, 0, url
    while True:
        before = transfer.size
        try:
            await transfer.fetch(current)
        except Refused as exc:
            if refreshed or refresh_url is None:
                raise DownloadError(str(exc)) from exc
            refreshed = True
            current = await _fresh_url(exc, current, refresh_url, limits)
            continue
        except Restart as exc:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise DownloadRetryable(
                    f"the server keeps sending inconsistent parts of the file: {exc}"
                ) from exc
            log.warning("%s: starting over", exc, extra={"action": "download.restart"})
            await asyncio.to_thread(transfer.reset)
            continue
        except Interrupted as exc:
            if transfer.size <= before or not transfer.resumable or resumes >= MAX_RESUMES:
                raise
            resumes += 1
            log.info(
                "%s; resuming at byte %d",
                exc,
                transfer.size,
                extra={"action": "download.resume"},
            )
            await asyncio.sleep(random.uniform(0, min(limits.resume_backoff * 2**resumes, 2.0)))
            continue
        if transfer.complete:
            return
        if transfer.size <= before:
            raise DownloadRetryable(f"{display_url(current)} sent nothing of the rest of the file")
        # a 206 that stopped before the end of the file: ask for what follows


async def _fresh_url(
    refusal: Refused, current: httpx.URL, refresh_url: UrlRefresher, limits: DownloadLimits
) -> httpx.URL:
    log.info(
        "%s; asking the provider for a fresh URL", refusal, extra={"action": "download.refresh"}
    )
    fresh = await refresh_url()
    if fresh is None or httpx.URL(fresh) == current:
        raise DownloadError(f"{refusal}, and the provider has no other URL for this video")
    return check_url(fresh, allow_private=limits.allow_private)


async def _uninterrupted(function: Callable[..., T], *args: object) -> T:
    """Run blocking file work in a thread and let it finish even if we are cancelled meanwhile
    (a worker shutting down), so the partial file is never released while still in use."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise
