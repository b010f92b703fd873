"""End to end: the service's worker downloads from a server on loopback, and the API serves
the stored files with ``Range`` and the right content type (MP4 and QuickTime)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.loopback import serve_on_loopback
from service.settings import load_settings
from storage.sqlite.backend import SQLiteStorage
from tests.downloads.conftest import quicktime_bytes, sha256, video_bytes
from tests.downloads.hostile import Cut, HostileServer
from tests.downloads.seed import seed_download

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, SQLiteStorage, HostileServer]]:
    db = tmp_path / "omnihook.db"
    settings = load_settings(
        database_url=f"sqlite:///{db}",
        media_dir=tmp_path / "media",
        kling_api_key="unused",
        allow_private_networks=True,
        download_retry_schedule="0.1,0.1",
    )
    storage = SQLiteStorage(str(db))
    await storage.open()
    try:
        async with (
            HostileServer() as server,
            serve_on_loopback(create_app(settings, with_worker=True)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as api,
        ):
            yield api, storage, server
    finally:
        await storage.close()


async def stored(api: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    for _ in range(200):
        task: dict[str, Any] = (await api.get(f"/v1/tasks/{task_id}")).json()
        if task["videos"][0]["download_status"] == "downloaded":
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"never stored: {task}")


@pytest.mark.parametrize(
    ("data", "extension", "media_type"),
    [(video_bytes(300_000), ".mp4", "video/mp4"), (quicktime_bytes(), ".mov", "video/quicktime")],
    ids=["mp4", "mov"],
)
async def test_a_downloaded_video_is_served_with_range_and_its_content_type(
    world: tuple[httpx.AsyncClient, SQLiteStorage, HostileServer],
    data: bytes,
    extension: str,
    media_type: str,
) -> None:
    api, storage, server = world
    url = server.add("/v", data, content_type="application/octet-stream")
    server.script("/v", Cut(len(data) // 3))  # and the connection breaks on the way
    task = await seed_download(storage, url)

    video = (await stored(api, task.id))["videos"][0]
    assert video["path"].endswith(f"/{task.id}/0{extension}")
    assert (video["size"], video["sha256"]) == (len(data), sha256(data))
    assert Path(video["path"]).read_bytes() == data

    whole = await api.get(f"/v1/tasks/{task.id}/videos/0")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == media_type
    assert whole.headers["accept-ranges"] == "bytes"
    assert f'filename="{task.id}-0{extension}"' in whole.headers["content-disposition"]

    part = await api.get(f"/v1/tasks/{task.id}/videos/0", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-type"] == media_type

    beyond = await api.get(
        f"/v1/tasks/{task.id}/videos/0", headers={"Range": f"bytes={len(data)}-"}
    )
    assert beyond.status_code == 416

    events = (await api.get(f"/v1/tasks/{task.id}/events")).json()["events"]
    [downloaded] = [event for event in events if event["type"] == "video.downloaded"]
    announced = downloaded["data"]["video"]
    assert announced["path"] == video["path"]
    assert (announced["size"], announced["sha256"]) == (len(data), sha256(data))
    assert announced["duration"] == "3.0"
