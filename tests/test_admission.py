"""The admission queue in one process, against a provider answered by hand: tasks beyond the
slots wait ``queued`` and go when a slot frees; a "full" answer (1303) puts a task back, never
fails it; an account refusal keeps the queue waiting; a job of an earlier admission sends
nothing."""

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
from service.errors import ConfigurationError, InvalidRequest
from service.kling.request import parse_submission
from service.kling.state import ProviderStatus, ProviderTaskState
from service.provider_slots import parse_slot_limits
from service.reconcile.overdue import is_overdue
from service.services import Services
from service.settings import load_settings
from service.submit.admission.dispatch import admit
from service.submit.admission.pace import AdmissionPace
from service.submit.job import run_submit
from service.submit.submission import accept, submit
from storage.admission import SlotLimits
from storage.memory.backend import MemoryStorage
from storage.records import TaskRecord, TaskStatus
from tests.receiver_support import run_due_jobs

BODY = {"model_name": "kling-v3-omni", "prompt": "a kite", "duration": "5", "aspect_ratio": "16:9"}


@dataclass
class Provider:
    """Accepts creates while ``running`` is under ``slots``; ``answer`` forces a code once."""

    slots: int = 100
    running: int = 0
    answer: int | None = None
    creates: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", "no lookups: every create here is a first one"
        code, self.answer = self.answer, None
        if code is None and self.running >= self.slots:
            code = 1303
        if code is not None:
            status = 429 if code in (1303, 1101) else 400
            return httpx.Response(status, json={"code": code, "message": f"refused {code}"})
        body = json.loads(request.content)
        self.creates.append(body)
        self.running += 1
        info = {"external_task_id": body["external_task_id"]}
        data = {"task_id": f"k{len(self.creates)}", "task_status": "submitted", "task_info": info}
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": data})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Services, Provider, Clock]]:
    provider = Provider()
    settings = load_settings(
        isolated=True,
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        public_url="http://omnihook.test",
        kling_base_url="https://kling.test",
        provider_concurrency="2",
    )
    async with open_services(
        settings,
        storage=MemoryStorage(),
        registry=HandlerRegistry(),
        transport=httpx.MockTransport(provider.handle),
    ) as services:
        clock = Clock()
        services.admission = AdmissionPace(clock=clock)
        yield services, provider, clock


async def submit_one(services: Services, name: str, **fields: Any) -> TaskRecord:
    return await submit(services, parse_submission({**BODY, "external_task_id": name, **fields}))


async def finish(services: Services, provider: Provider, task_id: str) -> None:
    task = await services.storage.get_task(task_id)
    assert task is not None and task.provider_task_id
    done = ProviderTaskState(task_id=task.provider_task_id, status=ProviderStatus.FAILED)
    await accept(services, task_id, done)
    provider.running -= 1


async def events(services: Services, task_id: str) -> list[str]:
    return [e.type for e in await services.storage.list_events(task_id)]


async def test_beyond_the_slots_tasks_wait_and_go_as_slots_free(
    world: tuple[Services, Provider, Clock],
) -> None:
    services, provider, _ = world
    first = await submit_one(services, "a")
    second = await submit_one(services, "b")
    third = await submit_one(services, "c")
    urgent = await submit_one(services, "d", priority=3)

    assert [first.status, second.status] == [TaskStatus.SUBMITTED] * 2
    assert [third.status, urgent.status] == [TaskStatus.QUEUED] * 2
    assert await events(services, third.id) == ["task.queued"]
    assert [await services.storage.queue_position(t) for t in (urgent, third)] == [1, 2]
    assert await admit(services) == 0  # no slot free: nothing goes
    assert len(provider.creates) == 2

    await finish(services, provider, first.id)
    assert await admit(services) == 1
    await run_due_jobs(services, ("submit",))
    assert [c["external_task_id"] for c in provider.creates] == ["a", "b", "d"]  # urgent first
    sent = await services.storage.get_task(urgent.id)
    assert sent is not None and sent.status == TaskStatus.SUBMITTED
    assert await events(services, urgent.id) == ["task.queued", "task.submitted"]

    await finish(services, provider, second.id)
    assert await admit(services) == 1
    await run_due_jobs(services, ("submit",))
    assert [c["external_task_id"] for c in provider.creates] == ["a", "b", "d", "c"]


async def test_a_full_answer_queues_the_task_and_holds_admissions(
    world: tuple[Services, Provider, Clock],
) -> None:
    services, provider, clock = world
    provider.slots = 0  # another client of the account took every slot

    task = await submit_one(services, "a")

    assert task.status == TaskStatus.QUEUED  # accepted, never a 502
    assert "provider full" in task.status_message
    assert await events(services, task.id) == ["task.queued"]
    assert services.admission.held_for() == pytest.approx(1.0)
    assert await admit(services) == 0  # held: nothing is sent meanwhile
    clock.now += 1.5
    assert await admit(services) == 1  # a probe
    await run_due_jobs(services, ("submit",))
    assert services.admission.held_for() == pytest.approx(2.0)  # still full: held longer
    provider.slots = 1
    clock.now += 2.5
    assert await admit(services) == 1
    await run_due_jobs(services, ("submit",))
    sent = await services.storage.get_task(task.id)
    assert sent is not None and sent.status == TaskStatus.SUBMITTED
    assert services.admission.held_for() == 0 and not services.admission.probing
    assert [c["external_task_id"] for c in provider.creates] == ["a"]  # sent once
    assert await events(services, task.id) == ["task.queued", "task.submitted"]


async def test_an_earlier_admissions_job_sends_nothing(
    world: tuple[Services, Provider, Clock],
) -> None:
    services, provider, clock = world
    provider.answer = 1303
    task = await submit_one(services, "a")  # admitted, sent inline, refused: queued again
    [crash_job] = await services.storage.list_jobs(task_id=task.id, kind="submit")
    clock.now += 5
    assert await admit(services) == 1  # a second admission: a new token, a new job

    # the first admission's job runs while the task is pending again: its token is stale
    await run_submit(services, crash_job)
    assert provider.creates == []
    await run_due_jobs(services, ("submit",))  # the second admission's job sends it
    assert len(provider.creates) == 1
    sent = await services.storage.get_task(task.id)
    assert sent is not None and sent.status == TaskStatus.SUBMITTED


async def test_an_account_refusal_keeps_the_queue_waiting(
    world: tuple[Services, Provider, Clock],
) -> None:
    services, provider, clock = world
    provider.slots = 0
    task = await submit_one(services, "a")  # queued by a full answer
    clock.now += 2
    provider.answer = 1101  # the account is in arrears
    assert await admit(services) == 1
    await run_due_jobs(services, ("submit",))

    waiting = await services.storage.get_task(task.id)
    assert waiting is not None and waiting.status == TaskStatus.QUEUED  # not failed
    assert "refused the account" in waiting.status_message
    assert services.admission.held_for() == pytest.approx(60.0)


async def test_a_queued_task_refused_for_good_fails_and_is_kept(
    world: tuple[Services, Provider, Clock],
) -> None:
    services, provider, clock = world
    provider.slots = 0
    task = await submit_one(services, "a")
    clock.now += 2
    provider.slots, provider.answer = 5, 1301  # content security
    assert await admit(services) == 1
    await run_due_jobs(services, ("submit",))

    failed = await services.storage.get_task(task.id)
    assert failed is not None and failed.status == TaskStatus.FAILED
    assert "1301" in failed.status_message
    assert await events(services, task.id) == ["task.queued", "task.submitted", "task.failed"]


def test_slot_limits_read_the_account_and_the_models() -> None:
    assert parse_slot_limits("") == SlotLimits()
    assert parse_slot_limits(" ") == SlotLimits()
    assert parse_slot_limits("5, kling-video-o1=2") == SlotLimits(5, {"kling-video-o1": 2})
    assert parse_slot_limits("kling-v3-omni=3") == SlotLimits(None, {"kling-v3-omni": 3})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0", "at least 1"),
        ("five", "not a whole number"),
        ("3,4", "given twice"),
        ("a=1,a=2", "given twice"),
        ("=2", "model name"),
    ],
)
def test_a_bad_concurrency_setting_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        load_settings(isolated=True, provider_concurrency=text)
    assert "OMNIHOOK_PROVIDER_CONCURRENCY" in str(caught.value)


@pytest.mark.parametrize("priority", [1001, -1001, True, "1"])
def test_a_priority_out_of_range_is_refused(priority: object) -> None:
    with pytest.raises(InvalidRequest, match="priority"):
        parse_submission({**BODY, "priority": priority})


async def test_time_in_the_queue_does_not_count_against_the_deadline(
    world: tuple[Services, Provider, Clock],
) -> None:
    services, provider, clock = world
    provider.slots = 0
    task = await submit_one(services, "a")
    assert task.admitted_at is None
    start = services.clock()
    services.clock = lambda: start + timedelta(hours=30)  # queued longer than the deadline
    provider.slots = 1
    clock.now += 2
    assert await admit(services) == 1
    await run_due_jobs(services, ("submit",))

    sent = await services.storage.get_task(task.id)
    assert sent is not None and sent.admitted_at == start + timedelta(hours=30)
    assert not is_overdue(services, sent, services.clock() + timedelta(hours=23))
    assert is_overdue(services, sent, services.clock() + timedelta(hours=24))
