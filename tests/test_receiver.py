"""The receiver's authenticity rules: token, signature, the task a body names, confirmation of
unsigned final states, and the console's test probe."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.receiver.match import PROBE_OUTCOME
from service.receiver.verify import token_hash
from storage.memory.backend import MemoryStorage
from storage.records import DownloadStatus, TaskChange, TaskRecord, TaskStatus
from tests.receiver_support import (
    EVIL_URL,
    PROVIDER_URL,
    Receiver,
    kling_task,
    open_receiver,
)

TOKEN = "tok-" + "a" * 40


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with open_receiver(tmp_path) as opened:
        yield opened


async def test_a_matched_notification_is_stored_with_how_it_was_checked(
    receiver: Receiver,
) -> None:
    task = await receiver.add_task(TOKEN, external_task_id="job-1")
    body = kling_task("kt-1", "processing", external_task_id="job-1")
    answer = await receiver.post(TOKEN, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["received"] is True
    [stored] = await receiver.services.storage.list_notifications(task.id)
    assert stored.id == answer.json()["notification_id"]
    assert json.loads(stored.body) == body
    assert stored.verification is not None and stored.verification.startswith("unsigned:")

    await receiver.run_jobs()
    assert (await receiver.task(task.id)).status == TaskStatus.PROCESSING
    [stored] = await receiver.services.storage.list_notifications(task.id)
    assert stored.outcome == "submitted -> processing"


async def test_an_unknown_token_is_404_and_nothing_is_stored(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN)
    for token in (TOKEN[:-1], TOKEN + "a", TOKEN.upper(), "%ED%A0%80"):
        answer = await receiver.post(token, kling_task("kt-1", "processing"))
        assert answer.status_code == 404, token
        assert answer.json()["error"] == "not_found"
    assert await receiver.services.storage.list_notifications(task.id) == []
    assert await receiver.run_jobs() == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (kling_task("kt-2", "succeed"), "another provider task"),
        (kling_task("kt-1", "succeed", external_task_id="job-2"), "another external_task_id"),
        ({"id": "kt-2", "status": "succeeded", "external_id": "job-1"}, "another provider task"),
    ],
)
async def test_a_body_about_another_task_is_refused_with_409(
    receiver: Receiver, body: dict[str, object], why: str
) -> None:
    task = await receiver.add_task(TOKEN, external_task_id="job-1")
    answer = await receiver.post(TOKEN, body)
    assert answer.status_code == 409
    assert answer.json()["error"] == "task_mismatch"
    assert why in answer.json()["message"]
    assert await receiver.services.storage.list_notifications(task.id) == []


async def test_before_the_create_answer_any_provider_id_matches(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN, status=TaskStatus.PENDING, provider_task_id=None)
    answer = await receiver.post(TOKEN, kling_task("kt-9", "submitted"))
    assert answer.status_code == 200
    await receiver.run_jobs()
    assert (await receiver.task(task.id)).provider_task_id == "kt-9"


async def test_a_gateway_wrapper_id_matches_and_the_inner_task_applies(
    receiver: Receiver,
) -> None:
    # new-api: its own id on the wrapper, Kling's task (with Kling's id) inside.
    task = await receiver.add_task(TOKEN, provider_task_id="gw-7")
    body = {
        "code": "success",
        "data": {
            "task_id": "gw-7",
            "status": "IN_PROGRESS",
            "data": {"code": 0, "data": kling_task("kling-123", "processing")},
        },
    }
    answer = await receiver.post(TOKEN, body)
    assert answer.status_code == 200, answer.text
    await receiver.run_jobs()
    stored = await receiver.task(task.id)
    assert stored.status == TaskStatus.PROCESSING
    assert stored.provider_task_id == "gw-7"


async def test_an_unsigned_final_notification_is_confirmed_by_a_query(
    receiver: Receiver,
) -> None:
    """A leaked token cannot point the downloader anywhere: the query's URLs are used."""
    task = await receiver.add_task(TOKEN, status=TaskStatus.PROCESSING)
    receiver.provider.tasks["kt-1"] = kling_task("kt-1", "succeed")
    answer = await receiver.post(TOKEN, kling_task("kt-1", "succeed", url=EVIL_URL))
    assert answer.status_code == 200

    await receiver.run_jobs()
    assert receiver.provider.queries == ["kt-1"]
    stored = await receiver.task(task.id)
    assert stored.status == TaskStatus.SUCCEEDED
    [video] = await receiver.services.storage.list_videos(task.id)
    assert video.url == PROVIDER_URL
    assert video.download_status == DownloadStatus.PENDING
    [notification] = await receiver.services.storage.list_notifications(task.id)
    assert notification.outcome == "unsigned succeeded notification: confirming with the provider"
    events = [e.type for e in await receiver.services.storage.list_events(task.id)]
    assert events == ["task.succeeded"]


async def test_a_forged_final_notification_changes_nothing(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN, status=TaskStatus.PROCESSING)
    receiver.provider.tasks["kt-1"] = kling_task("kt-1", "processing")
    for body in (kling_task("kt-1", "succeed", url=EVIL_URL), kling_task("kt-1", "failed")):
        assert (await receiver.post(TOKEN, body)).status_code == 200
    for _ in range(6):  # the confirmation looks again a few times, then gives way
        await receiver.run_jobs()
        receiver.clock.advance(600)
    stored = await receiver.task(task.id)
    assert stored.status == TaskStatus.PROCESSING
    assert await receiver.services.storage.list_videos(task.id) == []
    assert await receiver.services.storage.list_events(task.id) == []
    assert 2 <= len(receiver.provider.queries) <= 2 * 4
    sync_jobs = await receiver.services.storage.list_jobs(task_id=task.id, kind="sync")
    assert all(job.status == "succeeded" for job in sync_jobs)


async def test_the_console_test_body_is_a_harmless_probe(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN, external_task_id="job-1")
    probe = {
        "id": "1234567890",
        "status": "submitted",
        "message": "",
        "create_time": 1781080778802,
        "update_time": 1781080794151,
        "outputs": [],
    }
    answer = await receiver.post(TOKEN, probe)
    assert answer.status_code == 200
    assert answer.json()["probe"] is True
    await receiver.run_jobs()
    stored = await receiver.task(task.id)
    assert (stored.status, stored.provider_task_id, stored.version) == (
        TaskStatus.SUBMITTED,
        "kt-1",
        task.version,
    )
    [notification] = await receiver.services.storage.list_notifications(task.id)
    assert notification.outcome == PROBE_OUTCOME

    # sent to a URL that is no task's: still 200, nothing stored anywhere
    elsewhere = await receiver.post("not-a-token", probe)
    assert elsewhere.status_code == 200
    assert elsewhere.json() == {"received": True, "probe": True, "notification_id": None}


async def test_a_pending_task_does_not_take_the_probe_id(receiver: Receiver) -> None:
    task = await receiver.add_task(TOKEN, status=TaskStatus.PENDING, provider_task_id=None)
    probe = {"id": "1234567890", "status": "submitted", "outputs": []}
    assert (await receiver.post(TOKEN, probe)).json()["probe"] is True
    await receiver.run_jobs()
    stored = await receiver.task(task.id)
    assert (stored.status, stored.provider_task_id) == (TaskStatus.PENDING, None)


class CountingLookups(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None:
        self.lookups += 1
        return await super().get_task_by_token_hash(token_hash)


async def test_an_acknowledged_task_is_looked_up_once(tmp_path: Path) -> None:
    storage = CountingLookups()
    async with open_receiver(tmp_path, storage=storage) as receiver:
        await receiver.add_task(TOKEN)
        for status in ("processing", "processing", "succeed"):
            assert (await receiver.post(TOKEN, kling_task("kt-1", status))).status_code == 200
        assert storage.lookups == 1
        assert (await receiver.post(TOKEN, kling_task("kt-2", "succeed"))).status_code == 409


async def test_an_unacknowledged_task_is_looked_up_every_time(tmp_path: Path) -> None:
    """Its token may still be replaced (a resubmission): an old token must stop working."""
    storage = CountingLookups()
    async with open_receiver(tmp_path, storage=storage) as receiver:
        task = await receiver.add_task(TOKEN, status=TaskStatus.PENDING, provider_task_id=None)
        assert (await receiver.post(TOKEN, kling_task("kt-1", "submitted"))).status_code == 200
        rotated = replace(task, callback_token_hash=token_hash("tok-new"))
        assert await storage.apply(TaskChange(task=rotated))
        assert (await receiver.post(TOKEN, kling_task("kt-1", "submitted"))).status_code == 404
        assert storage.lookups == 2
