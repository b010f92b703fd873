"""SQLite's one writer (:mod:`storage.sqlite.writer`): group commit on a thread of its own.

Driven directly, on a real database file whose connection can be told to fail its COMMIT or
BEGIN; what was committed is looked at through a connection of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from service.errors import StorageError, StorageUnavailable
from storage.sqlite import schema as sqlite_schema
from storage.sqlite.writer import MAX_BATCH, Writer

BUSY_TIMEOUT = 5.0
WAIT = 10.0  # the most a test waits for the writer's thread to get somewhere


@dataclass
class Controls:
    """What the test tells the writer's connection, and what the connection saw."""

    log: list[str] = field(default_factory=list)
    fail_commit: bool = False
    fail_begin_with: int | None = None  # an SQLite result code


def _controlled(controls: Controls) -> type[sqlite3.Connection]:
    class Controlled(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if sql == "COMMIT":
                controls.log.append("commit")
                if controls.fail_commit:
                    raise sqlite3.OperationalError("disk I/O error (injected)")
            if sql == "BEGIN IMMEDIATE" and controls.fail_begin_with is not None:
                error = sqlite3.OperationalError("BEGIN failed (injected)")
                error.sqlite_errorcode = controls.fail_begin_with
                raise error
            return super().execute(sql, parameters)

    return Controlled


def _connect(path: Path, controls: Controls, busy_timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=busy_timeout, factory=_controlled(controls)
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


@dataclass
class Harness:
    writer: Writer
    controls: Controls
    path: Path

    def values(self) -> list[int]:
        """What is committed, read as another process would."""
        with contextlib.closing(sqlite3.connect(self.path)) as other:
            return [row[0] for row in other.execute("SELECT x FROM t ORDER BY x")]


async def _harness(
    tmp_path: Path, *, busy_timeout: float = BUSY_TIMEOUT, guard: Callable[[], None] | None = None
) -> Harness:
    path = tmp_path / "writer.db"
    with contextlib.closing(sqlite3.connect(path)) as setup:
        setup.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    controls = Controls()
    writer = Writer(
        "test writer",
        lambda: _connect(path, controls, busy_timeout),
        busy_timeout=busy_timeout,
        guard=guard,
    )
    await writer.start()
    return Harness(writer, controls, path)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = await _harness(tmp_path)
    try:
        yield made
    finally:
        await made.writer.stop()


def _insert(x: int) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: conn.execute("INSERT INTO t (x) VALUES (?)", (x,)).rowcount


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


class Gate:
    """A unit that holds the writer's thread (inside its batch) until the test opens it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> str:
        self.entered.set()
        assert self.opened.wait(WAIT), "the test never opened the gate"
        return "through"

    async def wait_entered(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not self.entered.is_set():
            assert loop.time() < deadline, "the writer never ran the gate"
            await asyncio.sleep(0.001)


async def _queued_behind_a_gate(
    writer: Writer, units: list[Callable[[sqlite3.Connection], Any]]
) -> tuple[Gate, asyncio.Task[str], list[asyncio.Task[Any]]]:
    """The gate running in a batch of its own, and ``units`` queued behind it."""
    gate = Gate()
    gated = asyncio.create_task(writer.run(gate))
    await gate.wait_entered()
    tasks = [asyncio.create_task(writer.run(unit)) for unit in units]
    await asyncio.sleep(0)  # each task hands its unit over and waits
    return gate, gated, tasks


async def test_units_queued_meanwhile_share_one_commit_and_return_after_it(
    harness: Harness,
) -> None:
    gate, gated, tasks = await _queued_behind_a_gate(
        harness.writer, [_insert(x) for x in range(10)]
    )
    assert harness.values() == []
    gate.opened.set()
    assert await gated == "through"
    returned = []
    for task in asyncio.as_completed(tasks):
        assert await task == 1
        returned.append(harness.values())  # committed before any caller returned
    assert returned == [list(range(10))] * 10
    assert harness.controls.log == ["commit", "commit"]  # the gate's batch, then the ten


async def test_a_batch_takes_at_most_max_batch_units(harness: Harness) -> None:
    gate, gated, tasks = await _queued_behind_a_gate(
        harness.writer, [_insert(x) for x in range(MAX_BATCH + 1)]
    )
    gate.opened.set()
    await gated
    assert await asyncio.gather(*tasks) == [1] * (MAX_BATCH + 1)
    assert harness.controls.log == ["commit"] * 3
    assert harness.values() == list(range(MAX_BATCH + 1))


async def test_a_failed_commit_fails_every_unit_of_its_batch(harness: Harness) -> None:
    gate, gated, tasks = await _queued_behind_a_gate(harness.writer, [_insert(x) for x in range(5)])
    harness.controls.fail_commit = True
    gate.opened.set()
    with pytest.raises(StorageError, match="nothing of its batch written"):
        await gated
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, StorageError) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == 5  # an error each
    assert harness.values() == []

    harness.controls.fail_commit = False  # the next batch is a fresh transaction
    assert await harness.writer.run(_insert(7)) == 1
    assert harness.values() == [7]


async def test_a_unit_that_raises_fails_alone_and_its_batch_mates_commit(
    harness: Harness,
) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (100)")
        raise RuntimeError("the unit's own failure")

    gate, gated, tasks = await _queued_behind_a_gate(
        harness.writer,
        [
            _insert(1),
            half_then_fail,
            _insert(1),  # a duplicate key: a constraint failure of its own
            _insert(2),
            _count,  # units run in order, each seeing the ones before it
        ],
    )
    gate.opened.set()
    await gated
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert outcomes[0] == 1 and outcomes[3] == 1
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[2], StorageError) and "UNIQUE" in str(outcomes[2])
    assert outcomes[4] == 2
    assert harness.values() == [1, 2]


async def test_a_unit_that_loses_the_whole_transaction_fails_its_batch(
    harness: Harness,
) -> None:
    """As when SQLite rolls the transaction back itself (disk full...): the unit gets its own
    error, its batch-mates a StorageError, and nothing is written."""

    def lose_it(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full (injected)")

    gate, gated, tasks = await _queued_behind_a_gate(
        harness.writer, [_insert(1), lose_it, _insert(2)]
    )
    gate.opened.set()
    await gated
    first, lost, last = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(lost, StorageError) and "disk is full" in str(lost)
    for mate in (first, last):
        assert isinstance(mate, StorageError) and "nothing of its batch written" in str(mate)
    assert harness.values() == []
    assert await harness.writer.run(_insert(3)) == 1  # and the writer goes on
    assert harness.values() == [3]


async def test_a_lone_unit_that_raises_is_not_run_twice(harness: Harness) -> None:
    runs = []

    def failing(conn: sqlite3.Connection) -> None:
        runs.append(1)
        raise RuntimeError("once")

    with pytest.raises(RuntimeError, match="once"):
        await harness.writer.run(failing)
    assert runs == [1]
    assert harness.controls.log == []  # rolled back, never committed


async def test_units_run_on_the_writers_thread_never_the_event_loops(harness: Harness) -> None:
    def thread(conn: sqlite3.Connection) -> int:
        return threading.get_ident()

    threads = set(await asyncio.gather(*(harness.writer.run(thread) for _ in range(5))))
    threads.add(await harness.writer.run_bare(thread))
    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_a_bare_call_runs_outside_any_transaction(harness: Harness) -> None:
    in_transaction = await harness.writer.run_bare(lambda conn: conn.in_transaction)
    assert in_transaction is False
    assert await harness.writer.run(lambda conn: conn.in_transaction) is True


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_event_loop(
    harness: Harness,
) -> None:
    other = sqlite3.connect(harness.path, isolation_level=None)  # another process's
    try:
        other.execute("BEGIN IMMEDIATE")
        writing = asyncio.create_task(harness.writer.run(_insert(1)))
        for _ in range(20):  # the loop keeps turning while the writer waits
            await asyncio.sleep(0.005)
        assert not writing.done()
        other.execute("COMMIT")
        assert await writing == 1
    finally:
        other.close()
    assert harness.values() == [1]


async def test_a_write_lock_held_past_the_busy_timeout_fails_the_batch(tmp_path: Path) -> None:
    made = await _harness(tmp_path, busy_timeout=0.2)
    other = sqlite3.connect(made.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageUnavailable, match="database is locked"):
            await made.writer.run(_insert(1))
        other.execute("COMMIT")
        assert await made.writer.run(_insert(2)) == 1  # the next batch begins normally
        assert made.values() == [2]
    finally:
        other.close()
        await made.writer.stop()


async def test_a_begin_that_fails_otherwise_fails_the_batch_at_once(harness: Harness) -> None:
    harness.controls.fail_begin_with = sqlite3.SQLITE_IOERR
    with pytest.raises(StorageUnavailable, match="BEGIN failed"):
        await harness.writer.run(_insert(1))
    harness.controls.fail_begin_with = None
    assert await harness.writer.run(_insert(2)) == 1
    assert harness.values() == [2]


async def test_the_guard_refuses_a_batch_and_nothing_is_written(tmp_path: Path) -> None:
    refusing = True

    def guard() -> None:
        if refusing:
            raise StorageUnavailable("database file was deleted or replaced (test)")

    made = await _harness(tmp_path, guard=guard)
    try:
        with pytest.raises(StorageUnavailable, match="deleted or replaced"):
            await made.writer.run(_insert(1))
        assert made.values() == []
        refusing = False
        assert await made.writer.run(_insert(2)) == 1
    finally:
        await made.writer.stop()


async def test_a_cancelled_caller_does_not_break_its_batch(harness: Harness) -> None:
    gate, gated, tasks = await _queued_behind_a_gate(
        harness.writer, [_insert(1), _insert(2), _insert(3)]
    )
    tasks[1].cancel()
    await asyncio.sleep(0)
    gate.opened.set()
    await gated
    assert await tasks[0] == 1 and await tasks[2] == 1
    assert tasks[1].cancelled()
    assert harness.values() == [1, 3]  # left behind before its batch began: skipped


async def test_stop_lands_what_is_queued_then_refuses_and_ends_the_thread(
    tmp_path: Path,
) -> None:
    made = await _harness(tmp_path)
    gate, gated, tasks = await _queued_behind_a_gate(made.writer, [_insert(x) for x in range(3)])
    stopping = asyncio.create_task(made.writer.stop())
    await asyncio.sleep(0)
    with pytest.raises(StorageError, match="not open"):  # refused at once, while it stops
        await made.writer.run(_insert(9))
    gate.opened.set()
    await stopping
    assert await gated == "through" and await asyncio.gather(*tasks) == [1, 1, 1]
    assert made.values() == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name == "sqlite test writer"]
    with pytest.raises(StorageError, match="not open"):
        await made.writer.run(_insert(9))


async def test_a_connection_that_cannot_open_fails_start(tmp_path: Path) -> None:
    writer = Writer(
        "test writer",
        lambda: sqlite_schema.connect(str(tmp_path / "file" / "x.db"), busy_timeout=1),
        busy_timeout=1,
    )
    (tmp_path / "file").write_text("a file where the directory should be")
    with pytest.raises(StorageUnavailable):
        await writer.start()
    assert not [t for t in threading.enumerate() if t.name == "sqlite test writer"]
    with pytest.raises(StorageError, match="not open"):
        await writer.run(_insert(1))
