"""A submission whose process dies before the create's outcome is recorded is finished by the
job written with the task, once ``OMNIHOOK_SUBMIT_RESUME_AFTER`` has passed; a recorded outcome
settles that job at once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.kling.request import parse_submission
from service.services import Services
from service.settings import load_settings
from service.submit.submission import submit
from storage.memory.backend import MemoryStorage
from storage.records import JobStatus, TaskStatus
from tests.receiver_support import run_due_jobs

RESUME_AFTER = 600.0
BODY = {"model_name": "kling-v3-omni", "prompt": "a kite", "duration": "5", "aspect_ratio": "16:9"}


class Died(BaseException):
    """The process dies here (SIGKILL): nothing after this point of ``submit`` runs."""


@dataclass
class Provider:
    """Knows no task by our id; dies at the first create when ``die`` is set."""

    die: bool = False
    creates: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            if self.die:
                self.die = False
                raise Died
            self.creates.append(json.loads(request.content))
            info = {"external_task_id": self.creates[-1]["external_task_id"]}
            data = {"task_id": "8672", "task_status": "submitted", "task_info": info}
            return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": data})
        if request.url.params.get("pageNum"):
            return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": []})
        return httpx.Response(404, json={"code": 1203, "message": "task does not exist"})


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Services, Provider]]:
    provider = Provider()
    settings = load_settings(
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        public_url="http://omnihook.test",
        kling_base_url="https://kling.test",
        submit_resume_after=RESUME_AFTER,
    )
    async with open_services(
        settings,
        storage=MemoryStorage(),
        registry=HandlerRegistry(),
        transport=httpx.MockTransport(provider.handle),
    ) as services:
        yield services, provider


def later(services: Services, seconds: float) -> None:
    start = services.clock()
    services.clock = lambda: start + timedelta(seconds=seconds)


async def test_a_submission_cut_by_a_crash_is_finished_by_the_job_stored_with_it(
    world: tuple[Services, Provider],
) -> None:
    services, provider = world
    provider.die = True
    with pytest.raises(Died):
        await submit(services, parse_submission(BODY))
    [task] = await services.storage.list_tasks()
    assert task.status == TaskStatus.PENDING

    later(services, RESUME_AFTER - 1)
    assert await run_due_jobs(services, ("submit",)) == []  # a live create is never raced
    later(services, RESUME_AFTER + 1)
    await run_due_jobs(services, ("submit",))

    resumed = await services.storage.get_task(task.id)
    assert resumed is not None
    assert (resumed.status, resumed.provider_task_id) == (TaskStatus.SUBMITTED, "8672")
    # the create went out with the token stored with the task: its callbacks are matched
    assert resumed.callback_token_hash == task.callback_token_hash
    assert [c["external_task_id"] for c in provider.creates] == [task.external_task_id]


async def test_a_recorded_outcome_settles_the_job(world: tuple[Services, Provider]) -> None:
    services, provider = world
    task = await submit(services, parse_submission(BODY))
    assert task.status == TaskStatus.SUBMITTED

    # the accepted create's outcome, written with it: the crash-safety job is done, at once,
    # not left to come due in OMNIHOOK_SUBMIT_RESUME_AFTER and find nothing to do
    [job] = await services.storage.list_jobs(task_id=task.id, kind="submit")
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 0
    later(services, RESUME_AFTER + 1)
    assert await run_due_jobs(services, ("submit",)) == []
    assert len(provider.creates) == 1
    after = await services.storage.get_task(task.id)
    assert after is not None and after.status == TaskStatus.SUBMITTED
