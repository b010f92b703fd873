"""The SQLite backend's one writer: a connection on a thread of its own, and group commit.

A commit costs an ``fsync`` (up to milliseconds, by disk), more than a typical write's
statements. So a write does not commit on its own: it is a *unit*, a plain function of the
``sqlite3`` connection answering a value, handed to the writer's thread
(:mod:`storage.sqlite.thread`). The thread takes every unit queued, up to :data:`MAX_BATCH`,
runs them in ONE ``BEGIN IMMEDIATE`` transaction and commits once. Units handed over while a
batch runs join the next one.

- Units run one after another on the one connection, each seeing the writes of the units
  before it: a compare-and-set or a fenced update in a unit holds exactly as in a transaction
  of its own. A unit must not call the storage (it would wait for itself, or for a read of
  what it has not committed); it uses the connection it is given, and does not block on
  anything but SQLite.
- A unit that raises fails alone; its caller gets its own (translated) error, its batch-mates
  commit. Savepoints cost two statements per unit and units rarely raise: a batch first runs
  without them, and only when a unit raises is it rolled back whole and run again, each unit in
  its own ``SAVEPOINT`` (a unit only computes from the connection, so running it again is safe).
- A caller is answered only after the COMMIT of its batch: if the COMMIT (or the BEGIN) fails,
  every unit of the batch gets a :class:`StorageError` (:class:`StorageUnavailable` when the
  database is out of reach: :mod:`storage.sqlite.errors`) and nothing of it was written.
- ``BEGIN IMMEDIATE`` takes the database's write lock up front, so other processes wait for the
  whole batch (their busy timeout) and never see part of it. When another process holds it, the
  thread tries again every few milliseconds (:meth:`Writer._begin`), never the event loop.
  Each unit waits at most the
  busy timeout in all, counted from when it was handed over (through the batch before it, and
  its own batch run a second time): a batch waits for the lock until its oldest unit's
  deadline; then the units whose time is up fail with :class:`StorageUnavailable` ("database is
  locked") and the others are carried to the next batch, to wait out their own.
- Before each batch a *guard* of the storage may refuse it (StorageUnavailable: the database
  file was deleted or replaced, see :mod:`storage.sqlite.file`).
- A caller that is cancelled leaves its unit behind: the batch goes on without it (or with it,
  if it was taken already), and its batch-mates are answered as ever.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from service.errors import StorageError, StorageUnavailable
from storage.sqlite import errors as sqlite_errors
from storage.sqlite.thread import Call, ConnectionThread, Function, R, deadline_in, translate

MAX_BATCH = 64  # bounds how long one batch holds the database's write lock
# While another connection holds the write lock: seconds before the first new try, doubled up to
_RETRY_FIRST = 0.0005
_RETRY_AT_MOST = 0.005


class _LockHeld(Exception):
    """BEGIN IMMEDIATE found the write lock held by another connection until the deadline."""


class _TransactionLost(Exception):
    """SQLite rolled the whole transaction back itself (disk full, I/O error...) in ``call``."""

    def __init__(self, message: str, call: Call[Any]) -> None:
        super().__init__(message)
        self.call = call


class Writer(ConnectionThread):
    batch_size = MAX_BATCH

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        busy_timeout: float,
        guard: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, connect)
        self._busy_timeout = busy_timeout
        self._guard = guard  # raises StorageUnavailable when no batch may be written

    async def run(self, unit: Function[R]) -> R:
        """Run ``unit`` in the next batch; answers its result once the batch is committed."""
        return await self.call(unit, deadline=deadline_in(self._busy_timeout))

    async def run_bare(self, function: Function[R]) -> R:
        """Run ``function`` on the writer's connection between batches, outside any
        transaction: for what manages its own (migrations) or reads the connection's own state
        (``PRAGMA data_version``, which moves with other connections' commits only)."""
        return await self.call(function, deadline=deadline_in(self._busy_timeout), bare=True)

    # -- on the thread -----------------------------------------------------------------------

    def _serve(self, conn: sqlite3.Connection, calls: list[Call[Any]]) -> list[Call[Any]]:
        units = []
        for call in calls:
            if call.abandoned:
                continue
            if call.bare:
                try:
                    call.value, call.error = call.function(conn), None
                except Exception as exc:
                    call.fail(translate(exc, "SQLite"))
            else:
                units.append(call)
        if not units:
            return []
        try:
            if self._guard is not None:
                self._guard()
            # optimistic first, without savepoints; when a unit raised, again with them
            if not self._transaction(conn, units, savepoints=False):
                self._transaction(conn, units, savepoints=True)
        except _LockHeld as held:
            return self._expire(units, held)
        except Exception as exc:
            self._fail_batch(units, exc)
        return []

    def _transaction(
        self, conn: sqlite3.Connection, units: list[Call[Any]], *, savepoints: bool
    ) -> bool:
        """Run the units in one transaction and commit it. Without savepoints, answers False
        (all rolled back) when a unit raised and its error is not known to be its own."""
        self._begin(conn, deadline=min(unit.deadline for unit in units))
        try:
            for unit in units:
                if savepoints:
                    _run_in_savepoint(conn, unit)
                    continue
                try:
                    unit.value, unit.error = unit.function(conn), None
                except Exception as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if len(units) == 1:  # alone, its transaction was its savepoint
                        unit.fail(translate(exc, "SQLite write"))
                        return True
                    return False
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise
        return True

    def _begin(self, conn: sqlite3.Connection, *, deadline: float) -> None:
        """BEGIN IMMEDIATE, waiting for the write lock until ``deadline`` (one limit for the
        whole wait of the batch's oldest unit), on this thread.

        Tried again every few milliseconds rather than left to SQLite's busy handler, which
        sleeps in steps growing to 100 ms: with ``web`` and ``worker`` on one file that made a
        callback wait up to 800 ms (p99) for a lock released much sooner. The statements of
        the transaction then get what is left of the deadline as their busy timeout."""
        delay = _RETRY_FIRST
        conn.execute("PRAGMA busy_timeout = 0")
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # or an extended BUSY_*
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _LockHeld(str(exc)) from exc
                time.sleep(min(delay, left))
                delay = min(2 * delay, _RETRY_AT_MOST)
        waits = max(math.ceil((deadline - time.monotonic()) * 1000), 0)
        conn.execute(f"PRAGMA busy_timeout = {waits}")

    def _expire(self, units: list[Call[Any]], held: _LockHeld) -> list[Call[Any]]:
        """The units whose time is up fail; the others are carried to the next batch."""
        now = time.monotonic()
        carried = []
        for unit in units:
            if unit.deadline > now and not unit.abandoned:
                carried.append(unit)
                continue
            failed = StorageUnavailable(
                "SQLite write failed: database is locked: another process held the write "
                f"lock for the whole {self._busy_timeout:g} s this write may wait"
            )
            failed.__cause__ = held
            unit.fail(failed)
        return carried

    def _fail_batch(self, units: list[Call[Any]], exc: Exception) -> None:
        if isinstance(exc, _TransactionLost):
            cause: BaseException = exc.__cause__ or exc
            lost = exc.call  # keeps its own error
        else:
            cause, lost = exc, None
        kind = StorageUnavailable if sqlite_errors.is_unavailable(cause) else StorageError
        for unit in units:
            if unit is lost:
                continue
            # an error each: one raised in many tasks would mix their tracebacks
            failed = kind(f"SQLite write failed, nothing of its batch written: {exc}")
            failed.__cause__ = exc
            unit.fail(failed)


def _run_in_savepoint(conn: sqlite3.Connection, unit: Call[Any]) -> None:
    conn.execute("SAVEPOINT unit")
    try:
        unit.value, unit.error = unit.function(conn), None
    except Exception as exc:
        unit.fail(translate(exc, "SQLite write"))
        if not conn.in_transaction:  # its batch-mates' writes are gone too
            raise _TransactionLost(str(exc), unit) from exc
        conn.execute("ROLLBACK TO unit")
    conn.execute("RELEASE unit")
