"""The ``download`` job with the process's services: fresh URLs from the provider, retries and
their delays, one download per video, bounded concurrency, progress, and what is announced.

The provider and the CDN are one MockTransport (``World``): the provider's query answers with
the URLs the test decides, the CDN answers each path with a scripted handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.apply.lifecycle import plan_provider_state
from service.bootstrap import open_services
from service.downloads.job import download_given_up, run_download
from service.jobs.kinds import DOWNLOAD, new_job
from service.jobs.outcome import GiveUp, RetryLater
from service.kling.state import ProviderStatus, ProviderTaskState, ProviderVideo
from service.retry import RetrySchedule
from service.services import Services
from service.settings import load_settings
from service.worker.loop import Worker
from service.worker.runners import RUNNERS, JobRunner
from storage.memory.backend import MemoryStorage
from storage.records import DownloadStatus, JobRecord, JobStatus, TaskRecord
from tests.downloads.conftest import SAMPLE, sha256, video_bytes
from tests.factories import make_task

PROVIDER = "https://api-singapore.klingai.com"
CDN = "https://cdn.example.com"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


def video_answer(data: bytes = SAMPLE, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=data, headers={"Content-Type": "video/mp4", **headers})


class World:
    """The provider's query endpoint and a CDN, behind one transport."""

    def __init__(self) -> None:
        self.cdn: dict[str, Handler] = {}
        self.cdn_requests: list[httpx.Request] = []
        self.fresh_urls: dict[int, str] = {}
        self.fresh_watermark_urls: dict[int, str] = {}
        self.queries = 0
        self.provider_down = False
        self.transport = httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "api-singapore.klingai.com":
            return self._query(request)
        self.cdn_requests.append(request)
        handler = self.cdn.get(request.url.path)
        if handler is None:
            return httpx.Response(404)
        answer = handler(request)
        return await answer if not isinstance(answer, httpx.Response) else answer

    def _query(self, request: httpx.Request) -> httpx.Response:
        self.queries += 1
        if self.provider_down:
            # Credentials refused: fixable by an operator, so worth another attempt later.
            return httpx.Response(401, json={"code": 1000, "message": "authentication failed"})
        videos: list[dict[str, Any]] = [
            {"id": f"v{index}", "url": url, "duration": "3.0"}
            for index, url in sorted(self.fresh_urls.items())
        ]
        for video, index in zip(videos, sorted(self.fresh_urls), strict=True):
            if index in self.fresh_watermark_urls:
                video["watermark_url"] = self.fresh_watermark_urls[index]
        data = {
            "task_id": request.url.path.rsplit("/", 1)[-1],
            "task_status": "succeed",
            "task_status_msg": "",
            "task_info": {},
            "task_result": {"videos": videos},
        }
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": data})


@pytest.fixture
def world() -> World:
    return World()


ServicesFactory = Callable[..., Awaitable[Services]]


@pytest.fixture
async def make_services(world: World, tmp_path: Path) -> AsyncIterator[ServicesFactory]:
    stack: list[Any] = []

    async def make(**overrides: Any) -> Services:
        fields: dict[str, Any] = {
            "database_url": "memory://",
            "media_dir": tmp_path / "media",
            "kling_api_key": "k",
            "download_retry_schedule": "0.05,0.05",
            "job_lease_seconds": 30,
        }
        fields.update(overrides)
        context = open_services(
            load_settings(**fields),
            storage=MemoryStorage(),
            registry=HandlerRegistry(),
            transport=world.transport,
        )
        stack.append(context)
        return await context.__aenter__()

    yield make
    for context in reversed(stack):
        await context.__aexit__(None, None, None)


async def succeeded_task(
    services: Services, urls: list[str], *, duration: str | None = "3.0"
) -> TaskRecord:
    """A task the provider finished, with one download job per video (as a notification makes)."""
    task = make_task(provider_task_id="p-1")
    await services.storage.create_task(task)
    await announce(services, task, urls, duration=duration)
    return task


async def announce(
    services: Services, task: TaskRecord, urls: list[str], *, duration: str | None = "3.0"
) -> None:
    videos = tuple(ProviderVideo(i, f"v{i}", url, duration) for i, url in enumerate(urls))
    state = ProviderTaskState(task_id="p-1", status=ProviderStatus.SUCCEEDED, videos=videos)
    await services.change_task(
        task.id,
        lambda t, v: plan_provider_state(
            t, v, state, now=services.clock(), emitter=services.emitter, confirmed=True
        ),
    )


async def download_jobs(services: Services, task: TaskRecord) -> list[JobRecord]:
    return await services.storage.list_jobs(task_id=task.id, kind=DOWNLOAD)


async def run_worker_until(
    services: Services,
    done: Callable[[], Awaitable[bool]],
    *,
    runners: dict[str, JobRunner] | None = None,
    timeout: float = 10,
) -> None:
    worker = Worker(services, poll_interval=0.01, runners=runners or RUNNERS)
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(timeout):
            while True:  # polling: the conditions are storage reads
                if await done():
                    break
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def events_of(services: Services, task: TaskRecord) -> list[str]:
    return [event.type for event in await services.storage.list_events(task.id)]


# --- fresh URLs ---------------------------------------------------------------------------------


async def test_a_refused_url_is_replaced_by_the_providers_fresh_one(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/old.mp4"] = lambda request: httpx.Response(403)
    world.cdn["/fresh.mp4"] = lambda request: video_answer()
    world.fresh_urls[0] = f"{CDN}/fresh.mp4?signature=new"
    task = await succeeded_task(services, [f"{CDN}/old.mp4?signature=old"])
    [job] = await download_jobs(services, task)

    await run_download(services, job)

    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.DOWNLOADED
    assert video.url == f"{CDN}/fresh.mp4?signature=new"  # the fresh URL is kept
    assert video.sha256 == sha256(SAMPLE)
    assert world.queries == 1
    assert [r.url.path for r in world.cdn_requests] == ["/old.mp4", "/fresh.mp4"]
    assert (await events_of(services, task))[-2:] == ["video.downloaded", "task.completed"]


async def test_still_refused_after_the_fresh_url_fails_the_video_for_good(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/old.mp4"] = lambda request: httpx.Response(403)
    world.cdn["/fresh.mp4"] = lambda request: httpx.Response(410)
    world.fresh_urls[0] = f"{CDN}/fresh.mp4"
    task = await succeeded_task(services, [f"{CDN}/old.mp4"])
    [job] = await download_jobs(services, task)

    async def failed() -> bool:
        current = await services.storage.get_job(job.id)
        return current is not None and current.status == JobStatus.FAILED

    await run_worker_until(services, failed)
    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.FAILED
    assert video.error is not None and "HTTP 410" in video.error
    assert world.queries == 1  # once per attempt, and there was one attempt: no retry
    assert (await events_of(services, task))[-1] == "video.download_failed"


async def test_a_provider_that_cannot_be_asked_makes_the_attempt_retryable(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.provider_down = True
    world.cdn["/old.mp4"] = lambda request: httpx.Response(403)
    task = await succeeded_task(services, [f"{CDN}/old.mp4"])
    [job] = await download_jobs(services, task)
    with pytest.raises(RetryLater, match="asking the provider for a fresh one failed"):
        await run_download(services, job)
    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.PENDING


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "retry_after", "low", "high"),
    [
        ("1", "120", 119, 121),  # Retry-After longer than the schedule: it wins
        ("100", "5", 90, 110),  # the schedule (with its jitter) is longer: it wins
        ("1,30", "999999", 3599, 3601),  # an absurd one is capped at an hour
        ("1,7200", "999999", 7199, 7201),  # ...or at our own longest pause, if longer
    ],
)
async def test_the_retry_waits_for_the_longer_of_schedule_and_retry_after(
    make_services: ServicesFactory,
    world: World,
    schedule: str,
    retry_after: str,
    low: float,
    high: float,
) -> None:
    services = await make_services(download_retry_schedule=schedule)
    world.cdn["/v.mp4"] = lambda r: httpx.Response(503, headers={"Retry-After": retry_after})
    task = await succeeded_task(services, [f"{CDN}/v.mp4"])
    [job] = await download_jobs(services, task)
    started = services.clock()

    async def requeued() -> bool:
        current = await services.storage.get_job(job.id)
        return current is not None and current.status == JobStatus.QUEUED and current.attempts == 1

    await run_worker_until(services, requeued)
    current = await services.storage.get_job(job.id)
    assert current is not None
    wait = (current.run_at - started).total_seconds()
    assert low <= wait <= high, wait
    assert current.last_error == "HTTP 503 from https://cdn.example.com/v.mp4"


async def test_a_flaky_cdn_is_retried_until_the_video_is_stored(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    answers = iter([httpx.Response(500), httpx.Response(429), video_answer()])
    world.cdn["/v.mp4"] = lambda request: next(answers)
    task = await succeeded_task(services, [f"{CDN}/v.mp4"])

    async def stored() -> bool:
        [video] = await services.storage.list_videos(task.id)
        return video.download_status == DownloadStatus.DOWNLOADED

    await run_worker_until(services, stored)
    [job] = await download_jobs(services, task)
    assert job.attempts == 3


# --- once per video, bounded concurrency ----------------------------------------------------------


async def test_each_video_is_downloaded_once_however_many_notifications_name_it(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/v.mp4"] = lambda request: video_answer()
    task = await succeeded_task(services, [f"{CDN}/v.mp4"])
    for _ in range(3):  # the same final notification, again and again
        await announce(services, task, [f"{CDN}/v.mp4"])
    jobs = await download_jobs(services, task)
    assert len(jobs) == 1

    async def completed() -> bool:
        return "task.completed" in await events_of(services, task)

    await run_worker_until(services, completed)
    # A stray job for the same video (requeued by hand, say) finds it stored and does nothing.
    stray = new_job(DOWNLOAD, {"task_id": task.id, "index": 0}, now=services.clock())
    await run_download(services, stray)
    assert len(world.cdn_requests) == 1
    assert (await events_of(services, task)).count("video.downloaded") == 1


async def test_downloads_are_bounded_per_process_while_other_jobs_run(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services(download_concurrency=2, worker_concurrency=8)
    release = asyncio.Event()
    in_flight, peak = 0, 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await release.wait()
        finally:
            in_flight -= 1
        return video_answer()

    world.cdn["/v.mp4"] = slow
    task = await succeeded_task(services, [f"{CDN}/v.mp4?n={n}" for n in range(5)])
    other_ran = asyncio.Event()

    async def other(services: Services, job: JobRecord) -> None:
        other_ran.set()

    await services.storage.enqueue([new_job("other", {}, now=services.clock())])
    runners = {**RUNNERS, "other": JobRunner(other, lambda s, j: RetrySchedule.of([]))}

    async def all_stored() -> bool:
        if other_ran.is_set() and peak == 2:
            release.set()  # the other job ran while two downloads held their slots
        videos = await services.storage.list_videos(task.id)
        return all(v.download_status == DownloadStatus.DOWNLOADED for v in videos)

    await run_worker_until(services, all_stored, runners=runners)
    assert peak == 2
    assert other_ran.is_set()


# --- progress and what is announced ---------------------------------------------------------------


class ProgressLog(MemoryStorage):
    """The in-memory storage, remembering each progress write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int, int | None, float]] = []

    async def set_download_progress(
        self, task_id: str, index: int, *, received: int, total: int | None
    ) -> None:
        self.writes.append((received, total, asyncio.get_running_loop().time()))
        await super().set_download_progress(task_id, index, received=received, total=total)


async def test_progress_is_recorded_at_most_twice_a_second(world: World, tmp_path: Path) -> None:
    data = video_bytes(3_000_000)
    parts = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]

    async def trickle() -> AsyncIterator[bytes]:
        for part in parts:
            await asyncio.sleep(0.05)
            yield part

    world.cdn["/v.mp4"] = lambda request: httpx.Response(
        200, content=trickle(), headers={"Content-Length": str(len(data))}
    )
    storage = ProgressLog()
    settings = load_settings(database_url="memory://", media_dir=tmp_path, kling_api_key="k")
    async with open_services(
        settings, storage=storage, registry=HandlerRegistry(), transport=world.transport
    ) as services:
        task = await succeeded_task(services, [f"{CDN}/v.mp4"])
        [job] = await download_jobs(services, task)
        await run_download(services, job)
        [video] = await services.storage.list_videos(task.id)
    elapsed = storage.writes[-1][2] - storage.writes[0][2]
    assert 1.2 < elapsed < 3
    assert len(storage.writes) <= elapsed / 0.5 + 3  # throttled, plus the start and the end
    assert len(storage.writes) >= 3  # ...but people do see it move
    received = [write[0] for write in storage.writes]
    assert received == sorted(received) and received[-1] == len(data)
    assert (video.bytes_received, video.bytes_total) == (len(data), len(data))


@pytest.mark.parametrize("provider_duration", ["3.0", None])
async def test_video_downloaded_carries_path_size_duration_and_sha256(
    make_services: ServicesFactory, world: World, provider_duration: str | None
) -> None:
    services = await make_services()
    world.cdn["/v.mp4"] = lambda request: video_answer()
    task = await succeeded_task(services, [f"{CDN}/v.mp4"], duration=provider_duration)
    [job] = await download_jobs(services, task)
    await run_download(services, job)
    [event] = [
        e for e in await services.storage.list_events(task.id) if e.type == "video.downloaded"
    ]
    video = event.data["video"]
    expected_path = (services.settings.media_dir / task.id / "0.mp4").resolve()
    assert video["path"] == str(expected_path)
    assert Path(video["path"]).read_bytes() == SAMPLE
    assert video["size"] == len(SAMPLE)
    assert video["sha256"] == sha256(SAMPLE)
    assert video["duration"] == "3.0" if provider_duration else video["duration"] == "3.000"
    assert video["download_status"] == "downloaded"


# --- leftovers ------------------------------------------------------------------------------------


async def test_giving_up_removes_the_kept_partial_file(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    data = video_bytes(400_000)

    async def cut() -> AsyncIterator[bytes]:
        yield data[:100_000]
        raise httpx.ReadError("connection reset by peer")

    world.cdn["/v.mp4"] = lambda request: httpx.Response(
        200, content=cut(), headers={"ETag": '"e1"', "Content-Length": str(len(data))}
    )
    task = await succeeded_task(services, [f"{CDN}/v.mp4"])
    [job] = await download_jobs(services, task)
    with pytest.raises(RetryLater):
        await run_download(services, job)
    partial_dir = services.settings.media_dir / ".partial"
    assert {p.suffix for p in partial_dir.iterdir()} == {".part", ".json"}

    await download_given_up(services, job, "gave up")
    assert list(partial_dir.iterdir()) == []
    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.FAILED


async def test_a_job_for_a_stored_video_tidies_a_leftover_partial_file(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/v.mp4"] = lambda request: video_answer()
    task = await succeeded_task(services, [f"{CDN}/v.mp4"])
    [job] = await download_jobs(services, task)
    await run_download(services, job)
    leftover = services.settings.media_dir / ".partial" / f"{task.id}%2F0.part"
    leftover.write_bytes(b"left by a worker that lost its lease")
    await run_download(services, job)
    assert not leftover.exists()
    assert len(world.cdn_requests) == 1


async def test_a_permanent_error_is_given_up(make_services: ServicesFactory, world: World) -> None:
    services = await make_services(max_video_bytes=100)
    world.cdn["/v.mp4"] = lambda request: video_answer()
    task = await succeeded_task(services, [f"{CDN}/v.mp4"])
    [job] = await download_jobs(services, task)
    with pytest.raises(GiveUp, match="over the 100-byte limit"):
        await run_download(services, job)
