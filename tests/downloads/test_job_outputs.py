"""The ``download`` job for outputs beyond one clean video: a watermarked copy stored beside
the clean file (resumed copy-only after a failure, its own fresh URL when refused) and image
outputs stored as images."""

from __future__ import annotations

from pathlib import Path

import httpx

from service.apply.lifecycle import plan_provider_state
from service.downloads.job import run_download
from service.fake_kling.media import PNG_TEXT_PREFIX, png_image
from service.jobs.outcome import RetryLater
from service.kling.state import IMAGE, ProviderStatus, ProviderTaskState, ProviderVideo
from service.services import Services
from storage.records import DownloadStatus, OutputKind, TaskRecord
from tests.downloads import test_job
from tests.downloads.conftest import SAMPLE, sha256, video_bytes
from tests.downloads.test_job import (
    CDN,
    ServicesFactory,
    World,
    download_jobs,
    events_of,
    video_answer,
)
from tests.factories import make_task

# the fixtures of the download job's tests: the provider and CDN, and services over them
world = test_job.world
make_services = test_job.make_services

MARKED = video_bytes(60_000, seed=7)  # another valid MP4: the watermarked copy
PNG = png_image(PNG_TEXT_PREFIX + b"i", (1, 2, 3))


def png_answer(data: bytes = PNG) -> httpx.Response:
    return httpx.Response(200, content=data, headers={"Content-Type": "image/png"})


async def finished(services: Services, *outputs: ProviderVideo) -> TaskRecord:
    task = make_task(provider_task_id="p-1")
    await services.storage.create_task(task)
    state = ProviderTaskState(task_id="p-1", status=ProviderStatus.SUCCEEDED, videos=outputs)
    await services.change_task(
        task.id,
        lambda t, v: plan_provider_state(
            t, v, state, now=services.clock(), emitter=services.emitter, confirmed=True
        ),
    )
    return task


async def test_the_watermarked_copy_is_stored_beside_the_clean_file_and_announced(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/v.mp4"] = lambda request: video_answer()
    world.cdn["/v-wm.mp4"] = lambda request: video_answer(MARKED)
    task = await finished(
        services, ProviderVideo(0, "v0", f"{CDN}/v.mp4", "3.0", f"{CDN}/v-wm.mp4")
    )
    [job] = await download_jobs(services, task)
    await run_download(services, job)

    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.DOWNLOADED
    assert (video.path, video.sha256) == (f"{task.id}/0.mp4", sha256(SAMPLE))
    assert video.watermark_path == f"{task.id}/0.watermarked.mp4"
    assert (video.watermark_size, video.watermark_sha256) == (len(MARKED), sha256(MARKED))
    media_dir = services.settings.media_dir
    assert (media_dir / video.watermark_path).read_bytes() == MARKED
    [event] = [
        e for e in await services.storage.list_events(task.id) if e.type == "video.downloaded"
    ]
    announced = event.data["video"]
    assert announced["kind"] == "video"
    assert announced["sha256"] == sha256(SAMPLE)
    assert announced["watermark"] == {
        "path": str((media_dir / video.watermark_path).resolve()),
        "size": len(MARKED),
        "sha256": sha256(MARKED),
    }
    assert (await events_of(services, task))[-1] == "task.completed"


async def test_a_failed_copy_keeps_the_clean_file_and_the_next_attempt_fetches_only_the_copy(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    copy_answers = iter([httpx.Response(503), video_answer(MARKED)])
    world.cdn["/v.mp4"] = lambda request: video_answer()
    world.cdn["/v-wm.mp4"] = lambda request: next(copy_answers)
    task = await finished(
        services, ProviderVideo(0, "v0", f"{CDN}/v.mp4", "3.0", f"{CDN}/v-wm.mp4")
    )
    [job] = await download_jobs(services, task)
    try:
        await run_download(services, job)
    except RetryLater:
        pass
    else:
        raise AssertionError("a 503 on the copy must make the attempt retryable")
    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.PENDING
    assert (video.path, video.sha256, video.watermark_path) == (
        f"{task.id}/0.mp4",
        sha256(SAMPLE),
        None,
    )
    assert "video.downloaded" not in await events_of(services, task)

    await run_download(services, job)
    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.DOWNLOADED
    assert video.watermark_sha256 == sha256(MARKED)
    assert [r.url.path for r in world.cdn_requests] == ["/v.mp4", "/v-wm.mp4", "/v-wm.mp4"]


async def test_a_refused_copy_url_is_replaced_by_the_providers_fresh_one(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/v.mp4"] = lambda request: video_answer()
    world.cdn["/old-wm.mp4"] = lambda request: httpx.Response(403)
    world.cdn["/fresh-wm.mp4"] = lambda request: video_answer(MARKED)
    world.fresh_urls[0] = f"{CDN}/v.mp4"
    world.fresh_watermark_urls[0] = f"{CDN}/fresh-wm.mp4"
    task = await finished(
        services, ProviderVideo(0, "v0", f"{CDN}/v.mp4", "3.0", f"{CDN}/old-wm.mp4")
    )
    [job] = await download_jobs(services, task)
    await run_download(services, job)

    [video] = await services.storage.list_videos(task.id)
    assert video.download_status == DownloadStatus.DOWNLOADED
    assert video.watermark_url == f"{CDN}/fresh-wm.mp4"
    assert video.url == f"{CDN}/v.mp4"
    assert video.watermark_sha256 == sha256(MARKED)
    assert world.queries == 1


async def test_an_image_output_is_stored_as_an_image(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/v.mp4"] = lambda request: video_answer()
    world.cdn["/i.png"] = lambda request: png_answer()
    task = await finished(
        services,
        ProviderVideo(0, "v0", f"{CDN}/v.mp4", "3.0"),
        ProviderVideo(1, "i1", f"{CDN}/i.png", kind=IMAGE),
    )
    for job in await download_jobs(services, task):
        await run_download(services, job)

    video, image = await services.storage.list_videos(task.id)
    assert (image.kind, image.download_status) == (OutputKind.IMAGE, DownloadStatus.DOWNLOADED)
    assert image.path == f"{task.id}/1.png"
    assert (image.size, image.sha256, image.duration) == (len(PNG), sha256(PNG), None)
    assert (services.settings.media_dir / Path(image.path)).read_bytes() == PNG
    assert video.kind == OutputKind.VIDEO
    events = await services.storage.list_events(task.id)
    kinds = [e.data["video"]["kind"] for e in events if e.type == "video.downloaded"]
    assert sorted(kinds) == ["image", "video"]
    assert events[-1].type == "task.completed"


async def test_a_video_where_an_image_is_expected_is_refused(
    make_services: ServicesFactory, world: World
) -> None:
    services = await make_services()
    world.cdn["/i.png"] = lambda request: video_answer()
    world.fresh_urls[0] = f"{CDN}/i.png"
    task = await finished(services, ProviderVideo(0, "i0", f"{CDN}/i.png", kind=IMAGE))
    [job] = await download_jobs(services, task)
    try:
        await run_download(services, job)
    except Exception as exc:  # GiveUp: the provider has no other URL for it
        assert "not a PNG/JPEG/WebP image" in str(exc)
    else:
        raise AssertionError("an MP4 must not be stored as an image")
