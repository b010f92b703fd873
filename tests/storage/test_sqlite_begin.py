"""Taking SQLite's write lock on the event loop: BUSY is waited for, anything else is raised."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from storage.sqlite.begin import begin_immediate


class FailingBegin:
    """A connection whose BEGIN fails with ``code`` ``failures`` times, then succeeds."""

    def __init__(self, code: int, failures: int) -> None:
        self.code = code
        self.failures = failures
        self.statements: list[str] = []

    def execute(self, sql: str) -> None:
        self.statements.append(sql)
        if sql == "BEGIN IMMEDIATE" and self.failures:
            self.failures -= 1
            error = sqlite3.OperationalError(f"failure {self.code}")
            error.sqlite_errorcode = self.code
            raise error


async def test_another_error_than_busy_is_raised_at_once() -> None:
    raw = FailingBegin(sqlite3.SQLITE_IOERR, failures=1)
    with pytest.raises(sqlite3.OperationalError, match="failure"):
        await begin_immediate(raw, busy_timeout=5)  # type: ignore[arg-type]
    assert raw.statements == [
        "PRAGMA busy_timeout = 0",
        "BEGIN IMMEDIATE",
        "PRAGMA busy_timeout = 5000",
    ]


@pytest.mark.parametrize("code", [sqlite3.SQLITE_BUSY, 261, 517])  # BUSY, _RECOVERY, _SNAPSHOT
async def test_busy_is_tried_again_until_it_is_free(code: int) -> None:
    raw = FailingBegin(code, failures=3)
    await begin_immediate(raw, busy_timeout=5)  # type: ignore[arg-type]
    assert raw.statements.count("BEGIN IMMEDIATE") == 4
    assert raw.statements[-1] == "PRAGMA busy_timeout = 5000"


async def test_a_real_lock_is_taken_once_released(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    waiter = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    begun = asyncio.create_task(begin_immediate(waiter, busy_timeout=5))
    await asyncio.sleep(0.05)
    assert not begun.done() and not waiter.in_transaction
    holder.execute("COMMIT")
    await asyncio.wait_for(begun, 1)
    assert waiter.in_transaction
    waiter.execute("ROLLBACK")
    holder.close()
    waiter.close()
