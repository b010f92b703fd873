"""Finishing a submission whose create answer was lost (``resume`` and the ``submit`` job) with
the process's services and a provider behind ``httpx.MockTransport``: a create sent again carries
the first create's callback URL; refused as a duplicate, the task stays pending with its token
and the job looks again; only a job that kept no token (an older version's) gets a fresh one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.jobs.kinds import SUBMIT, new_job
from service.kling.client import TaskExistsUnseen
from service.services import Services
from service.settings import load_settings
from service.submit.submission import CALLBACK_TOKEN, callback_url, hash_token, resume
from storage.memory.backend import MemoryStorage
from storage.records import JobStatus, TaskRecord, TaskStatus
from tests.factories import make_task
from tests.receiver_support import run_due_jobs

TOKEN = "first-create-token-0123456789abcdef"
CREATED = {
    "task_id": "867283741759111202",
    "task_status": "submitted",
    "task_info": {"external_task_id": "job-1"},
}


@dataclass
class Provider:
    """Knows no task by our id; answers creates with ``create`` (a Kling answer)."""

    create: httpx.Response
    creates: list[dict[str, Any]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.creates.append(json.loads(request.content))
            return self.create
        self.lookups.append(str(request.url))
        if request.url.params.get("pageNum"):
            return ok([])
        return httpx.Response(404, json={"code": 1203, "message": "task does not exist"})


def ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": data})


DUPLICATE = httpx.Response(
    400, json={"code": 1201, "message": "Invalid parameter external_task_id: job-1 already exists"}
)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Services, Provider]]:
    provider = Provider(create=DUPLICATE)
    settings = load_settings(
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        public_url="http://omnihook.test",
        kling_base_url="https://kling.test",
    )
    async with open_services(
        settings,
        storage=MemoryStorage(),
        registry=HandlerRegistry(),
        transport=httpx.MockTransport(provider.handle),
    ) as services:
        yield services, provider


async def pending_task(services: Services) -> TaskRecord:
    task = make_task(
        status=TaskStatus.PENDING,
        external_task_id="job-1",
        callback_token_hash=hash_token(TOKEN),
        request={"model_name": "kling-v3-omni", "prompt": "a fox"},
        created_at=services.clock(),
        updated_at=services.clock(),
    )
    await services.storage.create_task(task)
    return task


async def stored(services: Services, task: TaskRecord) -> TaskRecord:
    found = await services.storage.get_task(task.id)
    assert found is not None
    return found


async def test_every_lookup_comes_before_a_create_sent_again(
    world: tuple[Services, Provider],
) -> None:
    services, provider = world
    provider.create = ok(CREATED)
    task = await pending_task(services)
    await resume(services, task, TOKEN)
    assert [url.split("kling.test", 1)[1] for url in provider.lookups] == [
        "/v1/videos/omni-video/job-1",
        "/v1/videos/omni-video?external_task_id=job-1",
        "/v1/videos/omni-video?pageNum=1&pageSize=100",
    ]
    [sent] = provider.creates
    assert sent["callback_url"] == callback_url(services, TOKEN)  # the first create's URL
    after = await stored(services, task)
    assert after.status == TaskStatus.SUBMITTED and after.provider_task_id == CREATED["task_id"]
    assert after.callback_token_hash == hash_token(TOKEN)


async def test_a_duplicate_refusal_keeps_the_task_pending_with_its_token(
    world: tuple[Services, Provider],
) -> None:
    services, provider = world
    task = await pending_task(services)
    with pytest.raises(TaskExistsUnseen, match="exists at the provider"):
        await resume(services, task, TOKEN)
    [sent] = provider.creates
    assert sent["callback_url"] == callback_url(services, TOKEN)
    after = await stored(services, task)
    assert after.status == TaskStatus.PENDING
    assert after.callback_token_hash == hash_token(TOKEN)


async def test_the_submit_job_looks_again_later_never_fails_the_task(
    world: tuple[Services, Provider],
) -> None:
    services, provider = world
    task = await pending_task(services)
    job = new_job(
        SUBMIT, {"task_id": task.id, CALLBACK_TOKEN: TOKEN}, now=services.clock(), task_id=task.id
    )
    await services.storage.enqueue([job])
    await run_due_jobs(services, (SUBMIT,))
    [again] = await services.storage.list_jobs(task_id=task.id, kind=SUBMIT)
    assert again.status == JobStatus.QUEUED and again.attempts == 1  # retried, with backoff
    assert again.run_at > services.clock()
    assert (await stored(services, task)).status == TaskStatus.PENDING
    assert len(provider.creates) == 1


async def test_a_job_that_kept_no_token_sends_again_with_a_fresh_one(
    world: tuple[Services, Provider],
) -> None:
    # Queued by an older version, which rotated the token: only when nothing was found.
    services, provider = world
    provider.create = ok(CREATED)
    task = await pending_task(services)
    await resume(services, task, None)
    [sent] = provider.creates
    assert sent["callback_url"] != callback_url(services, TOKEN)
    assert (await stored(services, task)).callback_token_hash != hash_token(TOKEN)
