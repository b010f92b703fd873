"""The admission queue in every backend: who leaves the queue, in which order, and never more
than the slots allow, even when several handles (processes) admit at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from service.errors import Conflict, OmnihookError, StorageError
from storage.admission import SlotLimits
from storage.base import Storage
from storage.records import TaskChange, TaskRecord, TaskStatus
from storage.spending import Spending
from tests.factories import at, make_job, make_task
from tests.storage.conftest import OpenAgain


def admitting(task: TaskRecord) -> TaskChange:
    admitted = replace(task, status=TaskStatus.PENDING, status_message="admitted")
    return TaskChange(task=admitted, jobs=[make_job(task_id=task.id, dedupe_key=f"s:{task.id}")])


async def status_of(storage: Storage, task: TaskRecord) -> TaskStatus:
    stored = await storage.get_task(task.id)
    assert stored is not None
    return stored.status


async def queue(storage: Storage, count: int, **fields: object) -> list[TaskRecord]:
    tasks = []
    for n in range(count):
        task = make_task(status=TaskStatus.QUEUED, created_at=at(n), **fields)
        await storage.create_task(task)
        tasks.append(task)
    return tasks


async def test_admits_oldest_first_up_to_the_free_slots(storage: Storage) -> None:
    await storage.create_task(make_task(status=TaskStatus.PROCESSING))  # holds a slot
    await storage.create_task(make_task(status=TaskStatus.SUCCEEDED))  # holds none
    waiting = await queue(storage, 4)

    admitted = await storage.admit_queued(limits=SlotLimits(total=3), limit=10, plan=admitting)

    assert [t.id for t in admitted] == [t.id for t in waiting[:2]]
    for task in admitted:
        stored = await storage.get_task(task.id)
        assert stored is not None and stored.status == TaskStatus.PENDING
        assert stored.version == task.version == 1  # written as planned, version bumped
        [job] = await storage.list_jobs(task_id=task.id)  # with its job, in the same write
        assert job.dedupe_key == f"s:{task.id}"
    assert [await status_of(storage, t) for t in waiting[2:]] == [TaskStatus.QUEUED] * 2
    occupancy = await storage.occupancy()
    assert occupancy.queued == 2 and occupancy.in_flight_total == 3


async def test_priority_first_then_age(storage: Storage) -> None:
    old, young = await queue(storage, 2)
    urgent = make_task(status=TaskStatus.QUEUED, created_at=at(10), priority=5)
    low = make_task(status=TaskStatus.QUEUED, created_at=at(-10), priority=-1)
    for task in (urgent, low):
        await storage.create_task(task)

    assert [await storage.queue_position(t) for t in (urgent, old, young, low)] == [1, 2, 3, 4]
    admitted = await storage.admit_queued(limits=SlotLimits(), limit=3, plan=admitting)
    assert [t.id for t in admitted] == [urgent.id, old.id, young.id]


async def test_a_full_model_is_passed_over_not_the_account(storage: Storage) -> None:
    await storage.create_task(make_task(status=TaskStatus.SUBMITTED, model_name="kling-video-o1"))
    o1 = make_task(status=TaskStatus.QUEUED, created_at=at(1), model_name="kling-video-o1")
    v3 = make_task(status=TaskStatus.QUEUED, created_at=at(2), model_name="kling-v3-omni")
    for task in (o1, v3):
        await storage.create_task(task)
    limits = SlotLimits(total=2, per_model={"kling-video-o1": 1})

    admitted = await storage.admit_queued(limits=limits, limit=10, plan=admitting)

    assert [t.id for t in admitted] == [v3.id]  # o1's model is full; v3 takes the last slot


async def test_concurrent_admissions_never_exceed_the_slots(
    storage: Storage, open_again: OpenAgain
) -> None:
    await queue(storage, 12)
    handles = [storage, await open_again(), await open_again()]
    limits = SlotLimits(total=5)

    rounds = await asyncio.gather(
        *(h.admit_queued(limits=limits, limit=2, plan=admitting) for h in handles * 3)
    )

    admitted = [task.id for batch in rounds for task in batch]
    assert len(admitted) == len(set(admitted)) == 5  # every slot filled, none twice
    occupancy = await storage.occupancy()
    assert occupancy.in_flight_total == 5 and occupancy.queued == 7


async def test_a_plan_that_leaves_the_task_queued_is_refused(storage: Storage) -> None:
    [task] = await queue(storage, 1)

    def keep(task: TaskRecord) -> TaskChange:
        return TaskChange(task=replace(task, status_message="still here"))

    with pytest.raises(StorageError, match="queued"):
        await storage.admit_queued(limits=SlotLimits(), limit=1, plan=keep)
    stored = await storage.get_task(task.id)
    assert stored is not None and stored.status == TaskStatus.QUEUED and stored.version == 0


async def test_submit_task_stores_and_admits_in_one_write(storage: Storage) -> None:
    waiting = make_task(status=TaskStatus.QUEUED, created_at=at(0))
    await storage.create_task(waiting)

    # room for the one before it and for it: admitted; the one before keeps its place
    new = make_task(status=TaskStatus.QUEUED, created_at=at(1))
    stored = await storage.submit_task(new, limits=SlotLimits(total=2), plan=admitting)
    assert (stored.status, stored.version) == (TaskStatus.PENDING, 1)
    assert await storage.get_task(new.id) == stored
    assert len(await storage.list_jobs(task_id=new.id)) == 1
    assert await status_of(storage, waiting) == TaskStatus.QUEUED

    # no room left for it behind the waiting one: stored queued, nothing else written
    full = make_task(status=TaskStatus.QUEUED, created_at=at(2))
    stored = await storage.submit_task(full, limits=SlotLimits(total=2), plan=admitting)
    assert (stored.status, stored.version) == (TaskStatus.QUEUED, 0)
    assert await storage.list_jobs(task_id=full.id) == []
    assert await storage.queue_position(full) == 2

    # admissions held: stored queued whatever the room
    held = make_task(status=TaskStatus.QUEUED, created_at=at(3))
    assert (await storage.submit_task(held, limits=None, plan=admitting)).status == "queued"


async def test_submit_task_with_a_taken_external_id_writes_nothing(storage: Storage) -> None:
    first = make_task(status=TaskStatus.QUEUED)
    await storage.submit_task(first, limits=SlotLimits(), plan=admitting)
    again = make_task(status=TaskStatus.QUEUED, external_task_id=first.external_task_id)

    with pytest.raises(Conflict):
        await storage.submit_task(again, limits=SlotLimits(), plan=admitting)

    assert await storage.get_task(again.id) is None
    assert await storage.list_jobs(task_id=again.id) == []


def spent_on(day: int, **fields: Any) -> Spending:
    return Spending(start=at(day * 86400), end=at((day + 1) * 86400), **fields)


async def test_a_guard_sees_what_each_window_has_spent_and_can_refuse(storage: Storage) -> None:
    def estimated(amount: str, **fields: object) -> TaskRecord:
        return make_task(estimate={"amount": amount, "currency": "USD"}, **fields)

    for task in (
        estimated("0.1", created_at=at(10), metadata={"owner": "ann"}),
        estimated("0.2", created_at=at(20), metadata={"owner": "bob"}),
        estimated("5", created_at=at(30), status=TaskStatus.FAILED),  # refused: nothing paid
        estimated("7", created_at=at(40), status=TaskStatus.FAILED, provider_task_id="k9"),
        estimated("1", created_at=at(50), cost="0.75"),  # billed
        estimated("9", created_at=at(86400 + 5)),  # the next day
        make_task(created_at=at(60)),  # no estimate (stored before budgets)
    ):
        await storage.create_task(task)
    seen: list[list[Decimal]] = []

    def guard(sums: list[Decimal]) -> None:
        seen.append(sums)

    windows = [
        spent_on(0),
        spent_on(0, billed_counts=True),
        spent_on(0, metadata_key="owner", scope="ann"),
        spent_on(1),
    ]
    new = make_task(status=TaskStatus.QUEUED, estimate={"amount": "3", "currency": "USD"})
    await storage.submit_task(new, limits=None, plan=admitting, spending=windows, guard=guard)

    # exact sums (0.1 + 0.2 is 0.3, not 0.30000000000000004), the new task not counted
    assert seen[-1] == [Decimal("8.3"), Decimal("8.05"), Decimal("0.1"), Decimal("9")]

    def refuse(sums: list[Decimal]) -> None:
        raise BudgetRefused

    refused = make_task(status=TaskStatus.QUEUED)
    with pytest.raises(BudgetRefused):
        await storage.submit_task(refused, limits=SlotLimits(), plan=admitting, guard=refuse)
    assert await storage.get_task(refused.id) is None  # nothing written


class BudgetRefused(OmnihookError):
    """What a guard raises: one of the service's errors, which every backend lets through."""


async def test_spending_reads_what_was_committed(storage: Storage) -> None:
    for amount, day in (("1.25", 0), ("2.5", 0), ("4", 1)):
        task = make_task(estimate={"amount": amount, "currency": "USD"}, created_at=at(day * 86400))
        await storage.create_task(task)
    assert await storage.spending([spent_on(0), spent_on(1), spent_on(2)]) == [
        Decimal("3.75"),
        Decimal("4"),
        Decimal("0"),
    ]
