"""SQLite reads use a connection of their own, on a thread of its own: they see the last commit
and never wait for the writer (a batch holding the write lock), so reads cannot break up the
group commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from service.errors import StorageError
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

        # A batch that holds the write lock with a write not yet committed: a read neither
        # waits for it nor sees its write.
        entered, release = threading.Event(), threading.Event()

        def long_unit(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE tasks SET status_message = 'uncommitted' WHERE id = ?", (task.id,))
            entered.set()
            assert release.wait(10)

        writing = asyncio.create_task(storage._write(long_unit))
        try:
            assert await asyncio.to_thread(entered.wait, 10)
            seen = await storage.get_task(task.id)
            assert not writing.done()
        finally:
            release.set()
            await writing
        assert seen is not None
        assert seen.status == TaskStatus.PROCESSING and seen.version == 1
        assert seen.status_message != "uncommitted"
        stored = await storage.get_task(task.id)
        assert stored is not None and stored.status_message == "uncommitted"
    finally:
        await storage.close()


async def test_reads_run_on_the_readers_thread(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "db.sqlite"))
    await storage.open()
    try:
        reader = await storage._read(lambda conn: threading.get_ident())
        writer = await storage._write(lambda conn: threading.get_ident())
        assert len({reader, writer, threading.get_ident()}) == 3
    finally:
        await storage.close()


async def test_a_closed_storage_reads_and_writes_nothing(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "db.sqlite"))
    await storage.open()
    task = make_task()
    await storage.create_task(task)
    await storage.close()
    with pytest.raises(StorageError, match="not open"):
        await storage.get_task(task.id)
    with pytest.raises(StorageError, match="not open"):
        await storage.create_task(make_task())
    assert not [t for t in threading.enumerate() if t.name.startswith("sqlite ")]


async def test_an_in_memory_database_keeps_one_connection() -> None:
    storage = SQLiteStorage(":memory:")
    await storage.open()
    try:
        task = make_task()
        await storage.create_task(task)
        assert await storage.get_task(task.id) is not None  # a second connection would not see it
    finally:
        await storage.close()


async def test_reads_taken_together_each_get_their_own_answer(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "db.sqlite"))
    await storage.open()
    try:
        tasks = [make_task() for _ in range(40)]
        for task in tasks:
            await storage.create_task(task)

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT * FROM no_such_table")

        reads = [storage.get_task(task.id) for task in tasks]
        outcomes = await asyncio.gather(
            *reads[:20], storage._read(broken), *reads[20:], return_exceptions=True
        )
        assert isinstance(outcomes[20], StorageError) and "no_such_table" in str(outcomes[20])
        assert outcomes[:20] + outcomes[21:] == tasks  # the failing read failed alone
    finally:
        await storage.close()
