"""Group commit for the SQLite backend: every write is a unit, run by one writer task.

A commit costs an ``fsync`` (up to milliseconds, by disk), more than a typical write's statements.
So a write does not commit on its own: it is queued as a *unit* (a coroutine function taking the
connection), and one writer task runs the queued units, up to :data:`MAX_BATCH` at a time, in
ONE ``BEGIN IMMEDIATE`` transaction, each unit inside its own ``SAVEPOINT``, then commits once.
Units that arrive while a batch runs join the next one.

- A unit that raises is rolled back to its savepoint alone; its caller gets its own (translated)
  error, its batch-mates commit. Savepoints cost two statements per unit, and units rarely
  raise: a batch first runs without them, and only when a unit raises is it rolled back whole
  and run again, each unit in its savepoint (a unit only computes from the connection, so
  running it again is safe).
- :class:`Statements` units (plain statements, no answer) that follow each other with the same
  SQL run together, one ``executemany`` per statement for all of them.
- Every statement is a trip to the connection's thread and back (a hand-over of the GIL each
  way, a wake-up of the event loop), which costs more than most statements. So a batch made
  only of *plain* units, that need no event loop (:class:`Statements`, and :class:`RawUnit`
  units: plain functions of the ``sqlite3`` connection), takes one trip: its COMMIT, which
  waits for the disk's fsync, runs on the connection's thread; its units run on the event
  loop's own thread, because under the write lock they are CPU work, which on the other thread
  handed the GIL back and forth at every row (under load that cost several times the
  statements themselves; ``tests/benchmarks/bench_receiver.py``).
- Every batch begins on the event loop's thread too, without waiting there: when another
  process holds the write lock, the writer sleeps and tries again (:mod:`storage.sqlite.begin`).
  Each unit waits at most the busy timeout in all, counted from when it was handed over
  (through the batch before it, and its own batch run a second time): a batch waits for the
  lock until its oldest unit's deadline; then the units whose time is up fail with
  :class:`StorageUnavailable` ("database is locked") and the others try again in the next one.
- Before each batch a *guard* of the storage may refuse it (StorageUnavailable: the database
  file was deleted or replaced, see :mod:`storage.sqlite.file`).
- A caller returns only after the COMMIT of its batch: if the COMMIT (or the BEGIN) fails, every
  unit of the batch gets a :class:`StorageError` (:class:`StorageUnavailable` when the database
  is out of reach: :mod:`storage.sqlite.errors`), nothing of it was written.
- Units run one after another on the one connection, each seeing the writes of the units before
  it: a compare-and-set or a fenced update in a unit holds exactly as in a transaction of its own.
- ``BEGIN IMMEDIATE`` takes the database's write lock up front, so other processes wait for
  the whole batch (busy timeout) and never see part of it.
- The writer holds the connection lock for the whole batch, from BEGIN to COMMIT: reads, which
  take the same lock, never see the uncommitted writes of a batch that could still fail.
  Consequently a unit must not call a read or write method of the storage (it would wait for
  itself); it uses the connection it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any, Generic, TypeVar, cast

import aiosqlite

from service.errors import StorageError, StorageUnavailable
from storage.sqlite import errors as sqlite_errors
from storage.sqlite.begin import WriteLockTimeout, begin_immediate

MAX_BATCH = 64  # bounds how long one batch holds the connection (and the database) for readers

R = TypeVar("R")
Unit = Callable[[aiosqlite.Connection], Awaitable[R]]
Rows = Sequence[Any]  # the parameter rows of one statement


@dataclass(frozen=True)
class Statements:
    """A unit that is only statements, each run for its rows, answering nothing.

    Consecutive ones of a batch with the same statements run together, one ``executemany`` per
    statement for all their rows (a burst of callbacks: two statements, not two per callback).
    So like units' statements interleave: none may depend on another's effect but through the
    database's constraints (inserts into different tables, single-statement updates...).
    """

    steps: tuple[tuple[str, Rows], ...]

    @property
    def shape(self) -> tuple[str, ...]:
        return tuple(sql for sql, _ in self.steps)

    async def __call__(self, conn: aiosqlite.Connection) -> None:
        for sql, rows in self.steps:
            await conn.executemany(sql, rows)

    def run_here(self, raw: sqlite3.Connection) -> None:
        for sql, rows in self.steps:
            raw.executemany(sql, rows)


@dataclass(frozen=True)
class RawUnit(Generic[R]):
    """A unit that is a plain function of the ``sqlite3`` connection: no trip per statement.
    In a batch of these and :class:`Statements` alone it runs on the event loop's thread,
    between BEGIN and COMMIT; so like a statement it must not block (no sleeping, no network)."""

    function: Callable[[sqlite3.Connection], R]

    async def __call__(self, conn: aiosqlite.Connection) -> R:
        """In a batch with other units: on the thread, in one trip of its own."""
        return await on_thread(conn, self.function)

    def run_here(self, raw: sqlite3.Connection) -> R:
        return self.function(raw)


async def on_thread(conn: aiosqlite.Connection, function: Callable[[sqlite3.Connection], R]) -> R:
    """Run ``function`` on the connection's own thread, with the ``sqlite3`` connection.

    aiosqlite runs each of its calls that way, through ``Connection._execute`` (private, the
    same since aiosqlite 0.17; ``tests/storage/test_group_commit.py`` fails loudly if it
    changes); it offers no public way to run several statements in one call."""
    execute = cast(Any, conn)._execute

    def call() -> R:
        return function(cast(Any, conn)._conn)

    result: R = await execute(call)
    return result


@dataclass
class _Queued(Generic[R]):
    """A unit waiting for (or running in) a batch, its caller's future and its own outcome."""

    run: Unit[R]
    done: asyncio.Future[R]
    deadline: float  # the event loop's time after which it no longer waits for the write lock
    value: R | None = None
    error: BaseException | None = None

    def settle(self, error: BaseException | None = None) -> None:
        """Answer the caller (once the batch is committed, or with the batch's error)."""
        if self.done.done():  # the caller was cancelled and left
            return
        error = error or self.error
        if error is not None:
            self.done.set_exception(error)
        else:
            self.done.set_result(self.value)  # type: ignore[arg-type]  # set by the unit


class _TransactionLost(Exception):
    """SQLite rolled the whole transaction back itself (disk full, I/O error...) in ``unit``."""

    def __init__(self, message: str, unit: _Queued[Any]) -> None:
        super().__init__(message)
        self.unit = unit


class GroupCommit:
    """The queue of write units and its writer task, on one connection and its lock."""

    def __init__(
        self,
        lock: asyncio.Lock,
        connection: Callable[[], aiosqlite.Connection],
        *,
        busy_timeout: float,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self._lock = lock
        self._connection = connection  # the open connection, or raises StorageError
        self._busy_timeout = busy_timeout  # the connection's (sqlite_schema.connect)
        self._guard = guard  # raises StorageUnavailable when no batch may be written
        self._queue: list[_Queued[Any]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, unit: Unit[R]) -> R:
        """Run ``unit`` in the next batch; answers its result once the batch is committed."""
        loop = asyncio.get_running_loop()
        queued: _Queued[R] = _Queued(
            unit, loop.create_future(), deadline=loop.time() + self._busy_timeout
        )
        self._queue.append(queued)
        if self._writer is None or self._writer.done():
            # A task of its own: a caller that is cancelled must not strand the others.
            self._writer = asyncio.create_task(self._drain())
        return await queued.done

    async def drain(self) -> None:
        """Wait until every queued unit is written (or failed): before closing the connection."""
        while self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await self._writer

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._commit(batch)

    async def _commit(self, batch: list[_Queued[Any]]) -> None:
        try:
            async with self._lock:
                conn = self._connection()
                if self._guard is not None:
                    self._guard()
                runnable = [queued for queued in batch if not queued.done.cancelled()]
                # Optimistic first, without savepoints (two statements less per unit): a unit
                # that raises is rare (a duplicate external_task_id...). When one does, the
                # transaction is rolled back and the batch runs again, each unit in a savepoint
                # (units only compute from the connection: running one again is safe).
                if all(isinstance(queued.run, (Statements, RawUnit)) for queued in runnable):
                    transaction = _plain_transaction
                else:
                    transaction = _transaction
                timeout = self._busy_timeout
                # one deadline for both runs: the second does not wait anew
                deadline = min((queued.deadline for queued in runnable), default=None)
                if not await transaction(
                    conn, runnable, savepoints=False, busy_timeout=timeout, deadline=deadline
                ):
                    await transaction(
                        conn, runnable, savepoints=True, busy_timeout=timeout, deadline=deadline
                    )
        except WriteLockTimeout as exc:
            self._expire(batch, exc)
            return
        except (sqlite3.Error, ValueError, StorageError, _TransactionLost) as exc:
            if isinstance(exc, _TransactionLost):
                exc.unit.settle()  # the unit that failed gets its own error
            cause = exc.__cause__ if isinstance(exc, _TransactionLost) else exc
            unavailable = sqlite_errors.is_unavailable(cause or exc)
            kind = StorageUnavailable if unavailable else StorageError
            for queued in batch:  # an error each: one raised in many tasks would mix tracebacks
                failed = kind(f"SQLite write failed, nothing of its batch written: {exc}")
                failed.__cause__ = exc
                queued.settle(failed)
            return
        except BaseException as exc:  # the writer itself is cancelled: no caller waits forever
            for queued in batch:
                queued.settle(StorageError(f"SQLite write abandoned: {exc!r}"))
            raise
        for queued in batch:
            queued.settle()

    def _expire(self, batch: list[_Queued[Any]], exc: WriteLockTimeout) -> None:
        """The write lock stayed held until the batch's oldest deadline: the units whose time
        is up fail, the others go back to the head of the queue to wait out their own."""
        now = asyncio.get_running_loop().time()
        waiting = [queued for queued in batch if not queued.done.done()]
        for queued in waiting:
            if queued.deadline <= now:
                failed = StorageUnavailable(
                    "SQLite write failed: database is locked: another process held the write "
                    f"lock for the whole {self._busy_timeout:g} s this write may wait"
                )
                failed.__cause__ = exc
                queued.settle(failed)
        self._queue[:0] = [queued for queued in waiting if queued.deadline > now]


async def _transaction(
    conn: aiosqlite.Connection,
    runnable: list[_Queued[Any]],
    *,
    savepoints: bool,
    busy_timeout: float,
    deadline: float | None,
) -> bool:
    """Run the batch's units in one transaction and commit it. Without savepoints, answers
    False (all rolled back) when a unit raised and its error is not known to be its own."""
    raw = cast(Any, conn)._conn  # see on_thread
    await begin_immediate(raw, busy_timeout=busy_timeout, deadline=deadline)
    try:
        start = 0
        while start < len(runnable):
            if savepoints:
                await _run_in_savepoint(conn, runnable[start])
                start += 1
                continue
            group = _like_statements(runnable, start)
            try:
                await _run_together(conn, group)
            except Exception as exc:
                if len(runnable) == 1:  # alone, its transaction was its savepoint
                    runnable[0].error = translate(exc)
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                return len(runnable) == 1
            start += len(group)
        await conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error, ValueError):
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
        raise
    return True


def _like_statements(runnable: list[_Queued[Any]], start: int) -> list[_Queued[Any]]:
    """The unit at ``start`` and, if it is :class:`Statements`, the like ones that follow it."""
    first = runnable[start].run
    end = start + 1
    if isinstance(first, Statements):
        shape = first.shape
        while end < len(runnable):
            run = runnable[end].run
            if not isinstance(run, Statements) or run.shape != shape:
                break
            end += 1
    return runnable[start:end]


async def _run_together(conn: aiosqlite.Connection, group: list[_Queued[Any]]) -> None:
    if len(group) == 1:
        group[0].error = None
        group[0].value = await group[0].run(conn)
        return
    units = [cast(Statements, queued.run) for queued in group]
    for position, sql in enumerate(units[0].shape):
        await conn.executemany(sql, [row for unit in units for row in unit.steps[position][1]])
    for queued in group:
        queued.error, queued.value = None, None


async def _run_in_savepoint(conn: aiosqlite.Connection, queued: _Queued[Any]) -> None:
    queued.error = None
    await conn.execute("SAVEPOINT unit")
    try:
        queued.value = await queued.run(conn)
    except Exception as exc:
        queued.error = translate(exc)
        if not conn.in_transaction:  # its batch-mates' writes are gone too
            raise _TransactionLost(str(exc), queued) from exc
        await conn.execute("ROLLBACK TO unit")
    await conn.execute("RELEASE unit")


async def _plain_transaction(
    conn: aiosqlite.Connection,
    runnable: list[_Queued[Any]],
    *,
    savepoints: bool,
    busy_timeout: float,
    deadline: float | None,
) -> bool:
    """:func:`_transaction` for plain units: BEGIN and COMMIT on the connection's thread, the
    units on this one (see the module docstring). The connection is only ever used by one
    thread at a time: each step is awaited before the next."""
    raw: sqlite3.Connection = cast(Any, conn)._conn  # private, like ``_execute``: on_thread
    await begin_immediate(raw, busy_timeout=busy_timeout, deadline=deadline)
    try:
        ran = _units_here(runnable, raw, savepoints=savepoints)
        if ran is _Ran.ALL:
            await on_thread(conn, partial(_execute, sql="COMMIT"))
    except BaseException:
        with contextlib.suppress(sqlite3.Error, ValueError):
            if raw.in_transaction:
                await on_thread(conn, partial(_execute, sql="ROLLBACK"))
        raise
    return ran is not _Ran.ROLLED_BACK


def _execute(raw: sqlite3.Connection, *, sql: str) -> None:
    raw.execute(sql)


class _Ran(Enum):
    ALL = "all the units ran: commit"
    ROLLED_BACK = "a unit raised, everything is rolled back: run them again in savepoints"
    ALONE_FAILED = "the batch's only unit raised: its transaction, rolled back, was its own"


def _units_here(runnable: list[_Queued[Any]], raw: sqlite3.Connection, *, savepoints: bool) -> _Ran:
    """The units of a begun transaction, on the calling thread."""
    start = 0
    while start < len(runnable):
        if savepoints:
            _savepoint_here(raw, runnable[start])
            start += 1
            continue
        group = _like_statements(runnable, start)
        try:
            _together_here(raw, group)
        except Exception as exc:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            if len(runnable) == 1:
                runnable[0].error = translate(exc)
                return _Ran.ALONE_FAILED
            return _Ran.ROLLED_BACK
        start += len(group)
    return _Ran.ALL


def _together_here(raw: sqlite3.Connection, group: list[_Queued[Any]]) -> None:
    if len(group) == 1:
        group[0].error = None
        group[0].value = cast(Statements | RawUnit[Any], group[0].run).run_here(raw)
        return
    units = [cast(Statements, queued.run) for queued in group]
    for position, sql in enumerate(units[0].shape):
        raw.executemany(sql, [row for unit in units for row in unit.steps[position][1]])
    for queued in group:
        queued.error, queued.value = None, None


def _savepoint_here(raw: sqlite3.Connection, queued: _Queued[Any]) -> None:
    queued.error = None
    raw.execute("SAVEPOINT unit")
    try:
        queued.value = cast(Statements | RawUnit[Any], queued.run).run_here(raw)
    except Exception as exc:
        queued.error = translate(exc)
        if not raw.in_transaction:  # its batch-mates' writes are gone too
            raise _TransactionLost(str(exc), queued) from exc
        raw.execute("ROLLBACK TO unit")
    raw.execute("RELEASE unit")


def translate(exc: Exception) -> BaseException:
    """A unit's error as its caller sees it: SQLite errors become the service's."""
    if isinstance(exc, (sqlite3.Error, ValueError)):  # aiosqlite: ValueError once closed
        return sqlite_errors.translate(exc, "SQLite write")
    return exc
