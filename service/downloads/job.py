"""``download`` jobs: fetch one output (a video or an image) into the media directory and
announce it.

An output with a watermarked copy (the request asked for ``watermark_info.enabled``) has two
files: the clean one is fetched first and recorded on its own, so an attempt that fails on the
copy leaves it stored and the next attempt fetches only the copy; the output is announced
(``video.downloaded``) once both are stored.

Each video is downloaded once, however many notifications name it: its job has a dedupe key
(``download:<task>:<index>``), and a job that finds the video already stored or failed does
nothing but tidy a leftover partial file. At most ``OMNIHOOK_DOWNLOAD_CONCURRENCY`` videos are
fetched at once per process (``Services.download_slots``).

An attempt that fails for a reason that may pass (network, server trouble, deadline, full
disk) puts the video back to ``pending`` with the error and the job back on
``OMNIHOOK_DOWNLOAD_RETRY_SCHEDULE`` (or later, when the server sent a ``Retry-After``); its
partial file stays for the next attempt to resume. A refused or expired URL is replaced once per
attempt by a fresh one from the provider. A failure retrying cannot fix marks the video
``failed`` and announces ``video.download_failed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from service.apply.lifecycle import (
    Plan,
    StoredFile,
    plan_clean_file_stored,
    plan_video_status,
    plan_video_stored,
    plan_video_url,
)
from service.downloads import DownloadLimits, DownloadResult, discard_partial, download_video
from service.downloads.downloader import UrlRefresher
from service.downloads.fetch import ProgressCallback
from service.downloads.redownload import FRESH_URL, GENERATION
from service.errors import (
    DownloadError,
    DownloadRetryable,
    ProviderAuthError,
    ProviderError,
    ProviderRetryable,
    ProviderUnreachable,
    StorageError,
)
from service.jobs.outcome import GiveUp, RetryLater
from service.kling.state import ProviderVideo
from service.services import Services
from service.settings import Settings
from storage.records import DownloadStatus, JobRecord, TaskRecord, VideoRecord

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 3600.0  # seconds; see _retry_after


def media_name(task_id: str, index: int, *, watermark: bool = False) -> str:
    """Where an output lives in the media directory, without its extension (``.mp4``,
    ``.mov``, ``.png``...); its watermarked copy lives beside it."""
    return f"{task_id}/{index}.watermarked" if watermark else f"{task_id}/{index}"


def _discard_partials(media_dir: Path, task_id: str, index: int) -> None:
    for watermark in (False, True):
        discard_partial(media_dir, media_name(task_id, index, watermark=watermark))


def _video(videos: list[VideoRecord], index: int) -> VideoRecord | None:
    return next((video for video in videos if video.index == index), None)


def _generation(job: JobRecord) -> str | None:
    """The re-download this job belongs to (service.downloads.redownload), or None for the
    first download."""
    value = job.payload.get(GENERATION)
    return str(value) if value is not None else None


async def _set_status(
    services: Services,
    task_id: str,
    index: int,
    status: DownloadStatus,
    error: str | None,
    *,
    generation: str | None = None,
) -> None:
    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        video = _video(videos, index)
        if video is None:
            return Plan(None, f"video {index} unknown")
        return plan_video_status(
            task,
            videos,
            video,
            status,
            error=error,
            now=services.clock(),
            emitter=services.emitter,
            generation=generation,
        )

    await services.change_task(task_id, planner)


def download_limits(settings: Settings) -> DownloadLimits:
    return DownloadLimits(
        max_bytes=settings.max_video_bytes,
        deadline=settings.download_deadline,
        allow_private=settings.allow_private_networks,
    )


async def run_download(services: Services, job: JobRecord) -> None:
    task_id, index = str(job.payload["task_id"]), int(job.payload["index"])
    media_dir = services.settings.media_dir
    video = _video(await services.storage.list_videos(task_id), index)
    if video is None or video.download_status in (
        DownloadStatus.DOWNLOADED,
        DownloadStatus.FAILED,
    ):
        await asyncio.to_thread(_discard_partials, media_dir, task_id, index)
        return  # each video is downloaded once, however many jobs name it
    # A re-download by hand: the stored URLs are signed and have likely expired.
    fresh = bool(job.payload.get(FRESH_URL))
    duration: str | None = None
    watermarked: StoredFile | None = None
    async with services.download_slots:
        await _set_status(services, task_id, index, DownloadStatus.DOWNLOADING, None)
        try:
            clean = await asyncio.to_thread(_kept_clean_file, video, media_dir)
            if clean is None:
                result = await _fetch(services, video, watermark=False, fresh=fresh)
                clean = StoredFile(result.relative_path, result.size, result.sha256)
                duration = f"{result.duration:.3f}" if result.duration is not None else None
                if video.watermark_url:
                    await _record_clean_file(services, video, clean, duration)
            if video.watermark_url:
                result = await _fetch(services, video, watermark=True, fresh=fresh)
                watermarked = StoredFile(result.relative_path, result.size, result.sha256)
        except DownloadRetryable as exc:
            await _set_status(services, task_id, index, DownloadStatus.PENDING, str(exc))
            raise RetryLater(str(exc), delay=_retry_after(exc, services.settings)) from exc
        except DownloadError as exc:
            raise GiveUp(str(exc)) from exc

    def stored(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        current = _video(videos, index) or video
        return plan_video_stored(
            task,
            videos,
            current,
            path=clean.path,
            size=clean.size,
            sha256=clean.sha256,
            duration=duration,
            now=services.clock(),
            emitter=services.emitter,
            generation=_generation(job),
            watermark=watermarked,
        )

    await services.change_task(task_id, stored)


def _kept_clean_file(video: VideoRecord, media_dir: Path) -> StoredFile | None:
    """The clean file an earlier attempt stored before failing on the watermarked copy."""
    if video.path is None or video.size is None or video.sha256 is None:
        return None
    if not (media_dir / video.path).is_file():
        return None  # removed meanwhile: fetch it again
    return StoredFile(video.path, video.size, video.sha256)


async def _record_clean_file(
    services: Services, video: VideoRecord, clean: StoredFile, duration: str | None
) -> None:
    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        return plan_clean_file_stored(
            task, videos, video.index, clean, duration=duration, now=services.clock()
        )

    await services.change_task(video.task_id, planner)


async def _fetch(
    services: Services, video: VideoRecord, *, watermark: bool, fresh: bool
) -> DownloadResult:
    """One file of the output: the clean one, or its watermarked copy."""
    task_id, index = video.task_id, video.index
    refresh_url = _url_refresher(services, task_id, index, watermark=watermark)
    url = video.watermark_url if watermark else video.url
    if url is None:
        raise DownloadError(f"video {index} has no watermarked copy")
    if fresh:
        url = await refresh_url() or url
    return await download_video(
        services.downloads,
        url,
        media_dir=services.settings.media_dir,
        name=media_name(task_id, index, watermark=watermark),
        limits=download_limits(services.settings),
        refresh_url=refresh_url,
        on_progress=_progress_recorder(services, task_id, index),
        kind=str(video.kind),
    )


async def download_given_up(services: Services, job: JobRecord, error: str) -> None:
    task_id, index = str(job.payload["task_id"]), int(job.payload["index"])
    await _set_status(
        services, task_id, index, DownloadStatus.FAILED, error, generation=_generation(job)
    )
    await asyncio.to_thread(_discard_partials, services.settings.media_dir, task_id, index)


def _retry_after(exc: DownloadRetryable, settings: Settings) -> float | None:
    """The server's ``Retry-After`` (the worker waits for the longer of it and the schedule),
    capped at an hour or our own longest pause: a CDN asking for a week would otherwise
    outwait the 30 days a paid-for video is kept."""
    if exc.retry_after is None:
        return None
    longest = max(settings.download_retry.delays, default=0.0)
    return min(exc.retry_after, max(longest, MAX_RETRY_AFTER))


def _progress_recorder(services: Services, task_id: str, index: int) -> ProgressCallback:
    async def record(received: int, total: int | None) -> None:
        try:
            await services.storage.set_download_progress(
                task_id, index, received=received, total=total
            )
        except StorageError as exc:  # progress is for display only: never fail a download
            log.warning(
                "cannot record the progress of %s video %d: %s",
                task_id,
                index,
                exc,
                extra={"action": "download.progress_lost"},
            )

    return record


def _url_refresher(
    services: Services, task_id: str, index: int, *, watermark: bool = False
) -> UrlRefresher:
    async def refresh() -> str | None:
        """Ask the provider for the video's current URL (``watermark``: its watermarked
        copy's); store it when it changed."""
        task = await services.storage.get_task(task_id)
        if task is None:
            return None
        try:
            state = await services.kling.query_task(task.provider_task_id or task.external_task_id)
        except (ProviderUnreachable, ProviderRetryable, ProviderAuthError) as exc:
            raise DownloadRetryable(
                f"the video URL was refused, and asking the provider for a fresh one failed: {exc}"
            ) from exc
        except ProviderError as exc:
            raise DownloadError(
                f"the video URL was refused, and the provider refused to look the task up: {exc}"
            ) from exc
        fresh = _video_url(state.videos if state is not None else (), index, watermark=watermark)
        if fresh is None:
            return None
        await services.change_task(
            task_id,
            lambda t, v: plan_video_url(
                t, v, index, fresh, now=services.clock(), watermark=watermark
            ),
        )
        return fresh

    return refresh


def _video_url(videos: Iterable[ProviderVideo], index: int, *, watermark: bool) -> str | None:
    for video in videos:
        if video.index == index:
            return (video.watermark_url if watermark else video.url) or None
    return None
