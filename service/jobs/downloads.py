"""``download`` jobs: fetch one video into the media directory and announce it."""

from __future__ import annotations

from service.download import download_video
from service.errors import DownloadError, DownloadRetryable
from service.jobs.outcome import GiveUp, RetryLater
from service.lifecycle import Plan, plan_video_status, plan_video_stored
from service.services import Services
from storage.records import DownloadStatus, JobRecord, TaskRecord, VideoRecord


def _video(videos: list[VideoRecord], index: int) -> VideoRecord | None:
    return next((video for video in videos if video.index == index), None)


async def _set_status(
    services: Services, task_id: str, index: int, status: DownloadStatus, error: str | None
) -> None:
    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        video = _video(videos, index)
        if video is None:
            return Plan(None, f"video {index} unknown")
        return plan_video_status(
            task, videos, video, status, error=error, now=services.clock(), emitter=services.emitter
        )

    await services.change_task(task_id, planner)


async def run_download(services: Services, job: JobRecord) -> None:
    task_id, index = str(job.payload["task_id"]), int(job.payload["index"])
    video = _video(await services.storage.list_videos(task_id), index)
    if video is None or video.download_status in (
        DownloadStatus.DOWNLOADED,
        DownloadStatus.FAILED,
    ):
        return  # each video is downloaded once, however many jobs name it
    await _set_status(services, task_id, index, DownloadStatus.DOWNLOADING, None)
    settings = services.settings
    relative_path = f"{task_id}/{index}.mp4"
    try:
        result = await download_video(
            services.downloads,
            video.url,
            media_dir=settings.media_dir,
            relative_path=relative_path,
            max_bytes=settings.max_video_bytes,
            allow_private=settings.allow_private_networks,
        )
    except DownloadRetryable as exc:
        await _set_status(services, task_id, index, DownloadStatus.PENDING, str(exc))
        raise RetryLater(str(exc), delay=exc.retry_after) from exc
    except DownloadError as exc:
        raise GiveUp(str(exc)) from exc

    def stored(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        current = _video(videos, index) or video
        return plan_video_stored(
            task,
            videos,
            current,
            path=relative_path,
            size=result.size,
            sha256=result.sha256,
            now=services.clock(),
            emitter=services.emitter,
        )

    await services.change_task(task_id, stored)


async def download_given_up(services: Services, job: JobRecord, error: str) -> None:
    task_id, index = str(job.payload["task_id"]), int(job.payload["index"])
    await _set_status(services, task_id, index, DownloadStatus.FAILED, error)
