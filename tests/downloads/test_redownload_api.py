"""``POST /v1/tasks/{id}/videos/{n}/download``: a failed or deleted video fetched again by hand.

The service runs on loopback with its worker on memory storage; the provider and the CDN are the
download tests' ``World`` (one MockTransport), so the fresh URL the job asks for is visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.app import create_app
from service.apply.lifecycle import plan_provider_state
from service.bootstrap import open_services
from service.kling.state import ProviderStatus, ProviderTaskState, ProviderVideo
from service.loopback import serve_on_loopback
from service.services import Services
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from tests.downloads.conftest import SAMPLE, sha256
from tests.downloads.test_job import CDN, World, video_answer
from tests.factories import make_task


class Api:
    def __init__(self, client: httpx.AsyncClient, services: Services, world: World) -> None:
        self.client, self.services, self.world = client, services, world

    async def video(self, task_id: str, *, until: str) -> dict[str, Any]:
        for _ in range(400):
            task = (await self.client.get(f"/v1/tasks/{task_id}")).json()
            video: dict[str, Any] = task["videos"][0]
            if video["download_status"] == until:
                return video
            await asyncio.sleep(0.025)
        raise AssertionError(f"video never {until}: {video}")

    async def events(self, task_id: str) -> list[str]:
        return [e.type for e in await self.services.storage.list_events(task_id)]

    async def succeeded(self, urls: list[str], **task: Any) -> str:
        record = make_task(provider_task_id="p-1", **task)
        await self.services.storage.create_task(record)
        videos = tuple(ProviderVideo(i, f"v{i}", url, "3.0") for i, url in enumerate(urls))
        state = ProviderTaskState(task_id="p-1", status=ProviderStatus.SUCCEEDED, videos=videos)
        await self.services.change_task(
            record.id,
            lambda t, v: plan_provider_state(
                t,
                v,
                state,
                now=self.services.clock(),
                emitter=self.services.emitter,
                confirmed=True,
            ),
        )
        return record.id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    world = World()
    settings = load_settings(
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        download_retry_schedule="0.05",
    )
    storage, registry = MemoryStorage(), HandlerRegistry()
    app = create_app(
        settings, with_worker=True, storage=storage, registry=registry, transport=world.transport
    )
    async with (
        # the test's own services on the same storage, to seed tasks as news would
        open_services(
            settings, storage=storage, registry=registry, transport=world.transport
        ) as services,
        serve_on_loopback(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield Api(client, services, world)


async def test_a_video_failed_for_good_is_fetched_again_from_a_fresh_url(api: Api) -> None:
    api.world.cdn["/old.mp4"] = lambda request: httpx.Response(410)
    api.world.fresh_urls[0] = f"{CDN}/old.mp4"  # the provider has nothing better, for now
    task_id = await api.succeeded([f"{CDN}/old.mp4"])
    failed = await api.video(task_id, until="failed")
    assert failed["error"]

    api.world.cdn["/fresh.mp4"] = lambda request: video_answer()
    api.world.fresh_urls[0] = f"{CDN}/fresh.mp4?signature=new"
    queries = api.world.queries
    answer = await api.client.post(f"/v1/tasks/{task_id}/videos/0/download")
    assert answer.status_code == 202
    assert answer.json()["download_status"] == "pending"

    video = await api.video(task_id, until="downloaded")
    assert video["sha256"] == sha256(SAMPLE) and video["error"] is None
    assert api.world.queries > queries  # the URL was asked for first, not the dead one reused
    assert api.world.cdn_requests[-1].url.path == "/fresh.mp4"
    assert (await api.events(task_id))[-3:] == [
        "video.download_failed",
        "video.downloaded",
        "task.completed",
    ]


async def test_a_deleted_file_is_fetched_again_and_announced_again_but_completed_once(
    api: Api, tmp_path: Path
) -> None:
    api.world.cdn["/v.mp4"] = lambda request: video_answer()
    api.world.fresh_urls[0] = f"{CDN}/v.mp4"
    task_id = await api.succeeded([f"{CDN}/v.mp4"])
    stored = await api.video(task_id, until="downloaded")

    refused = await api.client.post(f"/v1/tasks/{task_id}/videos/0/download")
    assert refused.status_code == 409  # its file is there: nothing to fetch

    Path(stored["path"]).unlink()
    assert (await api.client.post(f"/v1/tasks/{task_id}/videos/0/download")).status_code == 202
    again = await api.video(task_id, until="downloaded")
    assert Path(again["path"]).read_bytes() == SAMPLE
    events = await api.events(task_id)
    assert events.count("video.downloaded") == 2
    assert events.count("task.completed") == 1


async def test_unknown_task_or_video_is_404_as_is_an_unfinished_task_without_videos(
    api: Api,
) -> None:
    assert (await api.client.post("/v1/tasks/task_nope/videos/0/download")).status_code == 404
    api.world.cdn["/v.mp4"] = lambda request: video_answer()
    task_id = await api.succeeded([f"{CDN}/v.mp4"])
    assert (await api.client.post(f"/v1/tasks/{task_id}/videos/7/download")).status_code == 404

    running = make_task()
    await api.services.storage.create_task(running)
    answer = await api.client.post(f"/v1/tasks/{running.id}/videos/0/download")
    assert answer.status_code == 404  # no video yet: the task has none to fetch


async def test_a_video_being_downloaded_is_409(api: Api) -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return video_answer()

    api.world.cdn["/slow.mp4"] = slow
    task_id = await api.succeeded([f"{CDN}/slow.mp4"])
    await api.video(task_id, until="downloading")
    answer = await api.client.post(f"/v1/tasks/{task_id}/videos/0/download")
    assert answer.status_code == 409
    assert "being downloaded" in answer.json()["message"]
    release.set()
    await api.video(task_id, until="downloaded")
