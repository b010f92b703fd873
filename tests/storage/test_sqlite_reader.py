"""SQLite reads use a connection of their own: they see the last commit and never wait for the
writer (a batch holding the write lock), so reads cannot break up the group commits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.records import TaskChange, TaskStatus
from storage.sqlite.backend import SQLiteStorage
from tests.factories import make_task


async def test_reads_see_the_last_commit_without_waiting_for_the_writer(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "db.sqlite"))
    await storage.open()
    try:
        task = make_task(status=TaskStatus.SUBMITTED)
        await storage.create_task(task)
        moved = TaskChange(task=make_task(**{**task.__dict__, "status": TaskStatus.PROCESSING}))
        assert await storage.apply(moved)

        # The writer's lock, as a long batch would hold it: a read must not wait for it.
        async with storage._lock:
            seen = await asyncio.wait_for(storage.get_task(task.id), timeout=2)
        assert seen is not None
        assert seen.status == TaskStatus.PROCESSING and seen.version == 1
    finally:
        await storage.close()


async def test_an_in_memory_database_keeps_one_connection() -> None:
    storage = SQLiteStorage(":memory:")
    await storage.open()
    try:
        task = make_task()
        await storage.create_task(task)
        assert await storage.get_task(task.id) is not None  # a second connection would not see it
    finally:
        await storage.close()
