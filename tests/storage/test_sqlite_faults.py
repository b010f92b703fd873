"""SQLite under faults of its surroundings: a write lock another process keeps, the database file
deleted or replaced under the running storage, and the errors SQLite answers when the disk or
the file fails (all StorageUnavailable: transient, the callback's sender tries again)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.errors import Conflict, StorageError, StorageUnavailable
from storage.sqlite import errors as sqlite_errors
from storage.sqlite.backend import SQLiteStorage
from storage.sqlite.file import WRITE_CHECK_SECONDS
from tests.factories import make_job, make_task

LOCK_LIMIT = 1.0  # the busy timeout configured for these tests, in seconds
MARGIN = 0.6  # what a slow, busy machine may add to a wait that ends at its deadline


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    store = SQLiteStorage(str(tmp_path / "omnihook.db"), busy_timeout=LOCK_LIMIT)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _hold_the_write_lock(path: str) -> sqlite3.Connection:
    """Another process's connection, holding the database's write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def _timed_write(storage: SQLiteStorage, delay: float) -> tuple[float, BaseException | None]:
    """Wait ``delay``, then enqueue a job: (seconds the write took, its error or None)."""
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await storage.enqueue([make_job()])
    except Exception as exc:
        return loop.time() - started, exc
    return loop.time() - started, None


async def test_each_write_waits_for_a_held_lock_at_most_the_limit(storage: SQLiteStorage) -> None:
    other = _hold_the_write_lock(storage.path)
    try:
        # the second write arrives while the first one's batch waits for the lock: it must not
        # wait for the rest of that batch and then for a full limit of its own
        outcomes = await asyncio.gather(_timed_write(storage, 0), _timed_write(storage, 0.05))
    finally:
        other.execute("ROLLBACK")
        other.close()
    for waited, error in outcomes:
        assert isinstance(error, StorageUnavailable), error
        assert "database is locked" in str(error)
        assert LOCK_LIMIT - 0.05 <= waited < LOCK_LIMIT + MARGIN, outcomes
    await storage.enqueue([make_job()])  # the lock is free: writes work again


async def test_a_younger_write_waits_out_its_own_limit_and_lands(storage: SQLiteStorage) -> None:
    other = _hold_the_write_lock(storage.path)
    first_job, second_job = make_job(), make_job()

    async def release_later() -> None:
        await asyncio.sleep(LOCK_LIMIT + 0.3)  # past the first write's limit, within the second's
        other.execute("COMMIT")

    async def second() -> None:
        await asyncio.sleep(0.6)
        await storage.enqueue([second_job])

    try:
        first, landed, _ = await asyncio.gather(
            storage.enqueue([first_job]), second(), release_later(), return_exceptions=True
        )
    finally:
        other.close()
    assert isinstance(first, StorageUnavailable), first
    assert landed is None  # committed once the lock was free
    assert await storage.get_job(second_job.id) is not None
    assert await storage.get_job(first_job.id) is None


async def test_ping_commits_a_write_and_the_database_does_not_grow(
    storage: SQLiteStorage,
) -> None:
    for _ in range(3):
        await storage.ping()
    probe = sqlite3.connect(storage.path)
    try:
        assert probe.execute("SELECT count(*) FROM health").fetchone() == (1,)
        [(checked_at,)] = probe.execute("SELECT checked_at FROM health").fetchall()
    finally:
        probe.close()
    await asyncio.sleep(0.01)
    await storage.ping()
    probe = sqlite3.connect(storage.path)
    try:
        [(again,)] = probe.execute("SELECT checked_at FROM health").fetchall()
    finally:
        probe.close()
    assert again > checked_at  # rewritten by the last ping: the write committed


async def _writes_fail_soon(storage: SQLiteStorage) -> StorageUnavailable:
    """Writes go on until one fails; the check before a batch runs about once a second."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WRITE_CHECK_SECONDS + 2.0
    while True:
        try:
            await storage.create_task(make_task())
        except StorageUnavailable as exc:
            return exc
        assert loop.time() < deadline, "writes into a deleted or replaced file still succeed"
        await asyncio.sleep(0.05)


async def test_a_deleted_file_fails_the_ping_and_the_writes(storage: SQLiteStorage) -> None:
    await storage.ping()
    os.remove(storage.path)
    with pytest.raises(StorageUnavailable, match="deleted or replaced"):
        await storage.ping()
    assert "deleted or replaced" in str(await _writes_fail_soon(storage))
    with pytest.raises(StorageUnavailable):  # and it stays so: nothing is written to a ghost
        await storage.create_task(make_task())


async def test_a_replaced_file_fails_the_ping_and_the_writes(
    storage: SQLiteStorage, tmp_path: Path
) -> None:
    other = SQLiteStorage(str(tmp_path / "other.db"))  # a whole database, as a restore brings
    await other.open()
    await other.close()
    await storage.ping()
    os.replace(tmp_path / "other.db", storage.path)
    with pytest.raises(StorageUnavailable, match="deleted or replaced"):
        await storage.ping()
    assert "deleted or replaced" in str(await _writes_fail_soon(storage))


def _sqlite_error(tmp_path: Path, make: str) -> sqlite3.Error:
    """A real error of SQLite's, of the kind ``make`` names."""
    path = tmp_path / "errors.db"
    with contextlib.ExitStack() as opened:

        def connect(target: str | Path, **options: Any) -> sqlite3.Connection:
            made: sqlite3.Connection = sqlite3.connect(target, **options)
            return opened.enter_context(contextlib.closing(made))

        connect(path).execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)")
        try:
            if make == "full":
                conn = connect(path)
                conn.execute("PRAGMA max_page_count = 2")  # as if the disk were full
                conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(5000)])
            elif make == "cannot open":
                connect(tmp_path / "no" / "such" / "dir.db")
            elif make == "read-only":
                connect(f"file:{path}?mode=ro", uri=True).execute("INSERT INTO t VALUES (1)")
            elif make == "locked":
                connect(path, isolation_level=None).execute("BEGIN EXCLUSIVE")
                connect(path, timeout=0).execute("INSERT INTO t VALUES (1)")
            elif make == "constraint":
                conn = connect(path)
                conn.execute("INSERT INTO t VALUES (7)")
                conn.execute("INSERT INTO t VALUES (7)")
            else:
                connect(path).execute("SELEKT 1")
        except sqlite3.Error as exc:
            return exc
    raise AssertionError(f"no error for {make!r}")


@pytest.mark.parametrize("make", ["full", "cannot open", "read-only", "locked"])
def test_sqlite_errors_of_the_surroundings_are_unavailable(tmp_path: Path, make: str) -> None:
    error = sqlite_errors.translate(_sqlite_error(tmp_path, make), "SQLite write")
    assert isinstance(error, StorageUnavailable)
    assert error.__cause__ is not None


@pytest.mark.parametrize("make", ["constraint", "syntax"])
def test_sqlite_errors_of_the_work_are_storage_errors(tmp_path: Path, make: str) -> None:
    error = sqlite_errors.translate(_sqlite_error(tmp_path, make), "SQLite write")
    assert type(error) is StorageError


def test_a_duplicate_external_task_id_is_a_conflict() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, external_task_id TEXT UNIQUE)")
    conn.execute("INSERT INTO tasks VALUES ('a', 'x')")
    with pytest.raises(sqlite3.IntegrityError) as caught:
        conn.execute("INSERT INTO tasks VALUES ('b', 'x')")
    conn.close()
    assert isinstance(sqlite_errors.translate(caught.value, "SQLite write"), Conflict)
