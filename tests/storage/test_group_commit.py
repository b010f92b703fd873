"""Group commit: concurrent writes share transactions, yet each succeeds or fails on its own.

The first tests run on every backend through the :class:`Storage` interface (on SQLite the
writes below land in shared batches); the last ones drive SQLite's
:class:`storage.sqlite.batch.GroupCommit` directly, on a connection that can be made to fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest

from service.errors import Conflict, StorageError
from storage.base import Storage
from storage.records import TaskChange, TaskStatus
from storage.sqlite import schema as sqlite_schema
from storage.sqlite.batch import GroupCommit, RawUnit, Statements, on_thread
from tests.factories import make_event, make_job, make_task, make_video
from tests.storage.conftest import OpenAgain


async def test_concurrent_writes_of_many_coroutines_are_all_committed(
    storage: Storage, open_again: OpenAgain
) -> None:
    tasks = [make_task() for _ in range(40)]
    await asyncio.gather(*(storage.create_task(t, [make_job(task_id=t.id)]) for t in tasks))
    changes = []
    for task in tasks:
        task.status = TaskStatus.PROCESSING
        changes.append(TaskChange(task, events=[make_event(task.id)]))
    jobs = [make_job() for _ in range(40)]
    results = await asyncio.gather(
        *(storage.apply(change) for change in changes),
        *(storage.enqueue([job]) for job in jobs),
    )
    assert results[: len(changes)] == [True] * len(changes)

    other = await open_again()  # another connection: only committed writes are visible there
    for task in tasks:
        stored = await other.get_task(task.id)
        assert stored is not None and stored.version == 1
        assert len(await other.list_events(task.id)) == 1
        assert len(await other.list_jobs(task_id=task.id)) == 1
    for job in jobs:
        assert await other.get_job(job.id) == job


async def test_a_failing_write_fails_alone_and_its_batch_mates_commit(
    storage: Storage, open_again: OpenAgain
) -> None:
    taken = make_task()
    await storage.create_task(taken)
    fresh = [make_task() for _ in range(10)]
    duplicate = make_task(external_task_id=taken.external_task_id)
    jobs = [make_job() for _ in range(10)]
    outcomes = await asyncio.gather(
        *(storage.create_task(t) for t in fresh[:5]),
        storage.create_task(duplicate, [make_job(task_id=duplicate.id)]),
        *(storage.create_task(t) for t in fresh[5:]),
        *(storage.enqueue([job]) for job in jobs),
        return_exceptions=True,
    )
    assert isinstance(outcomes[5], Conflict)
    assert [o for i, o in enumerate(outcomes) if i != 5] == [None] * 20

    other = await open_again()
    assert await other.get_task(duplicate.id) is None
    assert await other.list_jobs(task_id=duplicate.id) == []  # its job went with it
    for task in fresh:
        assert await other.get_task(task.id) == task
    for job in jobs:
        assert await other.get_job(job.id) == job


async def test_concurrent_applies_of_one_version_among_other_writes_one_wins(
    storage: Storage,
) -> None:
    task = make_task()
    await storage.create_task(task)
    contenders = [dataclasses.replace(task, status=TaskStatus.PROCESSING) for _ in range(8)]
    changes = [TaskChange(c, videos=[make_video(task.id)]) for c in contenders]
    results = await asyncio.gather(
        *(storage.apply(c) for c in changes),
        *(storage.create_task(make_task()) for _ in range(8)),
    )
    assert results[:8].count(True) == 1
    stored = await storage.get_task(task.id)
    assert stored is not None and stored.version == 1
    assert len(await storage.list_videos(task.id)) == 1


# -- SQLite's group commit itself --------------------------------------------------------------


class _Connection:
    """A real connection that logs the transaction's end, and can be told to fail COMMIT; on
    the event loop's side (``execute``...) and on its thread's (``_execute``: see
    :func:`storage.sqlite.batch.on_thread`), where it counts the trips."""

    def __init__(self, conn: aiosqlite.Connection, log: list[str]) -> None:
        self._real = conn
        self._log = log
        self.fail_commit = False
        self.trips = 0

    @property
    def in_transaction(self) -> bool:
        return self._real.in_transaction

    @property
    def _conn(self) -> _Raw:
        return _Raw(self._real._conn, self)

    async def _execute(self, function: Any) -> Any:
        self.trips += 1
        # aiosqlite's private entry point, as storage.sqlite.batch uses it (issue 14 ends both)
        return await cast(Any, self._real)._execute(function)

    def commit_here(self) -> None:
        self._log.append("commit")
        if self.fail_commit:
            raise sqlite3.OperationalError("disk I/O error (injected)")

    async def execute(self, sql: str, parameters: Any = ()) -> aiosqlite.Cursor:
        if sql == "COMMIT":
            self.commit_here()
        return await self._real.execute(sql, parameters)

    async def executemany(self, sql: str, rows: Any) -> aiosqlite.Cursor:
        return await self._real.executemany(sql, rows)

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> Any:
        return await self._real.execute_fetchall(sql, parameters)


class _Raw:
    """The ``sqlite3`` connection on its thread, with the wrapper's COMMIT."""

    def __init__(self, raw: sqlite3.Connection, wrapper: _Connection) -> None:
        self._raw = raw
        self._wrapper = wrapper

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        if sql == "COMMIT":
            self._wrapper.commit_here()
        return self._raw.execute(sql, parameters)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self._raw.executemany(sql, rows)


BUSY_TIMEOUT = 5.0


@pytest.fixture
async def logged(tmp_path: Path) -> Any:
    conn = await sqlite_schema.connect(str(tmp_path / "batch.db"), busy_timeout=BUSY_TIMEOUT)
    await conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    log: list[str] = []
    wrapper = _Connection(conn, log)
    batches = GroupCommit(
        asyncio.Lock(), lambda: cast(aiosqlite.Connection, wrapper), busy_timeout=BUSY_TIMEOUT
    )
    try:
        yield batches, wrapper, log, conn
    finally:
        await batches.drain()
        await conn.close()


def _insert(x: int) -> Statements:
    return Statements((("INSERT INTO t (x) VALUES (?)", [(x,)]),))


async def _busy_timeout_ms(conn: aiosqlite.Connection) -> int:
    (row,) = await conn.execute_fetchall("PRAGMA busy_timeout")
    return int(row[0])


async def _values(conn: aiosqlite.Connection) -> list[int]:
    return [row[0] for row in await conn.execute_fetchall("SELECT x FROM t ORDER BY x")]


async def test_callers_return_only_after_their_batch_is_committed(logged: Any) -> None:
    batches, _, log, conn = logged

    async def write(x: int) -> None:
        await batches.run(_insert(x))
        log.append(f"returned {x}")

    await asyncio.gather(*(write(x) for x in range(10)))
    assert log[0] == "commit"  # one batch, one commit, before any caller returned
    assert sorted(log[1:]) == sorted(f"returned {x}" for x in range(10))
    assert await _values(conn) == list(range(10))


async def test_a_failed_commit_fails_every_unit_of_its_batch(logged: Any) -> None:
    batches, wrapper, log, conn = logged
    wrapper.fail_commit = True
    outcomes = await asyncio.gather(
        *(batches.run(_insert(x)) for x in range(5)), return_exceptions=True
    )
    assert log == ["commit"]
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert not conn.in_transaction
    assert await _values(conn) == []

    wrapper.fail_commit = False  # the next batch is a fresh transaction
    await batches.run(_insert(7))
    assert await _values(conn) == [7]


async def test_a_unit_raising_halfway_is_rolled_back_to_its_savepoint(logged: Any) -> None:
    batches, _, _, conn = logged

    async def half_then_fail(db: aiosqlite.Connection) -> None:
        await db.execute("INSERT INTO t (x) VALUES (100)")
        raise RuntimeError("the unit's own failure")

    async def count(db: aiosqlite.Connection) -> int:
        rows = list(await db.execute_fetchall("SELECT count(*) FROM t"))
        return int(rows[0][0])

    outcomes = await asyncio.gather(
        batches.run(_insert(1)),
        batches.run(half_then_fail),
        batches.run(_insert(1)),  # a duplicate key: a constraint failure of its own
        batches.run(_insert(2)),
        batches.run(count),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[2], StorageError)
    assert outcomes[4] == 2  # units run in order, each seeing the ones before it
    assert await _values(conn) == [1, 2]


def _insert_here(x: int) -> RawUnit[int]:
    def insert(raw: sqlite3.Connection) -> int:
        return raw.execute("INSERT INTO t (x) VALUES (?)", (x,)).rowcount

    return RawUnit(insert)


async def test_a_batch_of_plain_units_runs_on_the_loop_but_its_commit(logged: Any) -> None:
    batches, wrapper, log, conn = logged
    threads: list[int] = []

    def note_thread(raw: sqlite3.Connection) -> None:
        threads.append(threading.get_ident())

    outcomes = await asyncio.gather(
        *(batches.run(_insert(x)) for x in range(5)),
        *(batches.run(_insert_here(x)) for x in range(5, 10)),
        batches.run(RawUnit(note_thread)),
    )
    assert outcomes == [None] * 5 + [1] * 5 + [None]
    assert (wrapper.trips, log) == (1, ["commit"])  # COMMIT (the fsync) on SQLite's thread
    assert threads == [threading.get_ident()]  # BEGIN and the units: on the event loop's
    assert await _values(conn) == list(range(10))


async def test_a_raw_unit_that_raises_fails_alone(logged: Any) -> None:
    batches, wrapper, _, conn = logged

    def half_then_fail(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO t (x) VALUES (100)")
        raise RuntimeError("the unit's own failure")

    outcomes = await asyncio.gather(
        batches.run(_insert(1)),
        batches.run(RawUnit(half_then_fail)),
        batches.run(_insert_here(1)),  # a duplicate key: a constraint failure of its own
        batches.run(_insert_here(2)),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[3] == 1
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[2], StorageError)
    # optimistic (rolled back on the loop), then again in savepoints (COMMIT on the thread)
    assert wrapper.trips == 1
    assert await _values(conn) == [1, 2]


async def test_a_failed_commit_of_plain_units_fails_every_unit(logged: Any) -> None:
    batches, wrapper, log, conn = logged
    wrapper.fail_commit = True
    outcomes = await asyncio.gather(
        *(batches.run(_insert_here(x)) for x in range(3)), return_exceptions=True
    )
    assert log == ["commit"]
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert not conn.in_transaction
    assert await _values(conn) == []


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_event_loop(
    logged: Any, tmp_path: Path
) -> None:
    batches, wrapper, _, conn = logged
    other = sqlite3.connect(tmp_path / "batch.db", isolation_level=None)  # another process's
    other.execute("BEGIN IMMEDIATE")
    writing = asyncio.create_task(batches.run(_insert_here(1)))
    for _ in range(20):  # the loop keeps turning while the batch waits
        await asyncio.sleep(0.005)
    assert not writing.done()
    released = asyncio.get_running_loop().time()
    other.execute("COMMIT")
    assert await writing == 1
    assert asyncio.get_running_loop().time() - released < 1  # retried, not left to time out
    assert wrapper.trips == 1  # only the COMMIT went to SQLite's thread
    assert await _values(conn) == [1]
    assert await _busy_timeout_ms(conn) == BUSY_TIMEOUT * 1000  # as configured again
    other.close()


async def test_a_write_lock_held_past_the_busy_timeout_fails_the_batch(tmp_path: Path) -> None:
    conn = await sqlite_schema.connect(str(tmp_path / "busy.db"), busy_timeout=0.2)
    await conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    batches = GroupCommit(asyncio.Lock(), lambda: conn, busy_timeout=0.2)
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(tick())
    try:
        with pytest.raises(StorageError, match="database is locked"):
            await batches.run(_insert_here(1))
        assert ticks >= 10  # the event loop ran on while the batch waited
        other.execute("COMMIT")
        assert await batches.run(_insert_here(2)) == 1  # the next batch begins normally
        assert await _values(conn) == [2]
    finally:
        ticking.cancel()
        other.close()
        await batches.drain()
        await conn.close()


async def test_the_busy_timeout_is_restored_after_a_batch_begun_on_the_loop(logged: Any) -> None:
    batches, wrapper, _, conn = logged
    await batches.run(_insert_here(1))
    assert wrapper.trips == 1
    assert await _busy_timeout_ms(conn) == BUSY_TIMEOUT * 1000


async def test_raw_units_run_among_other_units_too(logged: Any) -> None:
    batches, _, _, conn = logged

    async def count(db: aiosqlite.Connection) -> int:
        rows = list(await db.execute_fetchall("SELECT count(*) FROM t"))
        return int(rows[0][0])

    outcomes = await asyncio.gather(
        batches.run(_insert_here(1)), batches.run(count), batches.run(_insert(2))
    )
    assert list(outcomes) == [1, 1, None]
    assert await _values(conn) == [1, 2]


async def test_aiosqlite_still_runs_a_function_on_its_thread(tmp_path: Path) -> None:
    """on_thread uses aiosqlite's private ``Connection._execute`` and ``_conn``: fail loudly
    if aiosqlite changes them."""
    conn = await sqlite_schema.connect(str(tmp_path / "x.db"), busy_timeout=5)
    try:
        assert await on_thread(conn, lambda raw: raw.execute("SELECT 41 + 1").fetchone()[0]) == 42
    finally:
        await conn.close()
