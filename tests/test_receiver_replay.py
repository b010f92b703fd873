"""Stored notifications: one by id, replay through the API (harmless, or bringing missed news)
and the ``omnihook notifications`` commands against a real server with its worker."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from service.app import create_app
from service.cli import cli
from service.loopback import serve_on_loopback
from service.receiver.verify import token_hash
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from storage.records import TaskStatus
from tests.factories import make_task
from tests.receiver_support import Receiver, kling_task, open_receiver, registry

TOKEN = "tok-" + "r" * 40


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with open_receiver(tmp_path) as opened:
        yield opened


async def test_a_replay_of_applied_news_changes_nothing(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN)
    posted = await receiver.post(TOKEN, kling_task("kt-1", "processing"))
    notification_id = posted.json()["notification_id"]
    await receiver.run_jobs()

    answer = await receiver.client.post(f"/v1/notifications/{notification_id}/replay")
    assert answer.status_code == 202
    assert answer.json()["id"] == notification_id and answer.json()["replay_job_id"]
    await receiver.run_jobs()

    shown = (await receiver.client.get(f"/v1/notifications/{notification_id}")).json()
    assert shown["task_id"] == task.id
    assert shown["outcome"].startswith("submitted -> processing; replayed ")
    assert shown["outcome"].endswith(": no change: processing after processing")
    events = [e.type for e in await receiver.services.storage.list_events(task.id)]
    assert events == ["task.processing"]


async def test_a_replay_brings_news_whose_processing_was_lost(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN)
    posted = await receiver.post(TOKEN, kling_task("kt-1", "processing"))
    storage = receiver.services.storage
    # the inbox job gave up (a bug, a long outage): the news never reached the task
    [job] = await storage.lease_jobs(
        now=receiver.clock(), lease_seconds=30, limit=1, kinds=["inbox"]
    )
    await storage.fail_job(job.id, job.lease_token, now=receiver.clock(), error="a bug")
    assert (await receiver.task(task.id)).status == TaskStatus.SUBMITTED

    notification_id = posted.json()["notification_id"]
    await receiver.client.post(f"/v1/notifications/{notification_id}/replay")
    await receiver.run_jobs()
    assert (await receiver.task(task.id)).status == TaskStatus.PROCESSING
    shown = (await receiver.client.get(f"/v1/notifications/{notification_id}")).json()
    assert shown["outcome"].startswith("not processed; replayed ")


async def test_an_unknown_notification_is_404(receiver: Receiver) -> None:
    for answer in (
        await receiver.client.get("/v1/notifications/ntf_nope"),
        await receiver.client.post("/v1/notifications/ntf_nope/replay"),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"


def omnihook(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


async def test_the_commands_list_and_replay_through_a_running_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("OMNIHOOK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no developer's .env
    storage = MemoryStorage()
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="k"
    )
    app = create_app(settings, with_worker=True, storage=storage, registry=registry())
    async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url) as http:
        task = make_task(
            callback_token_hash=token_hash(TOKEN), provider_task_id="kt-1", external_task_id="j-1"
        )
        await storage.create_task(task)
        body = kling_task("kt-1", "processing", external_task_id="j-1")
        notification_id = (await http.post(f"/callbacks/kling/{TOKEN}", json=body)).json()[
            "notification_id"
        ]
        for _ in range(100):  # the in-process worker applies it
            stored = await storage.get_notification(notification_id)
            if stored is not None and stored.outcome:
                break
            await asyncio.sleep(0.05)

        listed = await asyncio.to_thread(
            omnihook, "notifications", "list", "j-1", "--url", url, "--output", "json"
        )
        assert listed.exit_code == 0, listed.output
        [shown] = json.loads(listed.stdout)
        assert (shown["id"], shown["outcome"]) == (notification_id, "submitted -> processing")

        table = await asyncio.to_thread(omnihook, "notifications", "list", task.id, "--url", url)
        assert notification_id in table.stdout and "processing" in table.stdout

        replayed = await asyncio.to_thread(
            omnihook, "notifications", "replay", notification_id, "--url", url
        )
        assert replayed.exit_code == 0, replayed.output
        assert f"replay queued: {notification_id} (task {task.id}" in replayed.stdout
        assert "no change: processing after processing" in replayed.stdout

        missing = await asyncio.to_thread(
            omnihook, "notifications", "replay", "ntf_nope", "--url", url
        )
        assert missing.exit_code == 1
        assert "not_found (HTTP 404)" in missing.stderr
