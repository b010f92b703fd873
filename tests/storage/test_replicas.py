"""Compare-and-set across replicas: handles with connections of their own (PostgreSQL: separate
pools; SQLite: separate connections) race to change one task; exactly one wins per version."""

from __future__ import annotations

import asyncio
import dataclasses

from storage.base import Storage
from storage.records import TaskChange, TaskStatus
from tests.factories import make_event, make_job, make_task
from tests.storage.conftest import OpenAgain

WRITERS_PER_HANDLE = 6
ROUNDS = 5


async def test_one_writer_wins_per_version_across_handles(
    storage: Storage, open_again: OpenAgain
) -> None:
    handles = [storage, await open_again()]
    task = make_task(status=TaskStatus.PROCESSING)
    await storage.create_task(task)

    winners: list[str] = []
    for round_ in range(ROUNDS):
        current = await handles[round_ % 2].get_task(task.id)
        assert current is not None and current.version == round_
        changes = [
            TaskChange(
                dataclasses.replace(current, status_message=f"round {round_} writer {h}.{i}"),
                events=[make_event(task.id, key=f"step:{round_}", data={"writer": f"{h}.{i}"})],
                jobs=[make_job(task_id=task.id, dedupe_key=f"job:{round_}:{h}.{i}")],
            )
            for h in range(len(handles))
            for i in range(WRITERS_PER_HANDLE)
        ]
        results = await asyncio.gather(
            *(handles[n % len(handles)].apply(change) for n, change in enumerate(changes))
        )

        assert sum(results) == 1, results
        winner = changes[results.index(True)]
        assert winner.task.version == round_ + 1
        losers = [c for c, won in zip(changes, results, strict=True) if not won]
        assert all(loser.task.version == round_ for loser in losers)  # untouched
        winners.append(winner.task.status_message)

    for handle in handles:  # both see one consistent story: one event and one job per round
        stored = await handle.get_task(task.id)
        assert stored is not None
        assert (stored.version, stored.status_message) == (ROUNDS, winners[-1])
        events = await handle.list_events(task.id)
        assert [e.key for e in events] == [f"step:{r}" for r in range(ROUNDS)]
        assert [f"round {r} writer {e.data['writer']}" for r, e in enumerate(events)] == winners
        assert len(await handle.list_jobs(task_id=task.id)) == ROUNDS
