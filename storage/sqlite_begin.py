"""Taking SQLite's write lock (``BEGIN IMMEDIATE``) without ever blocking the event loop.

Every write transaction of the group commit (:mod:`storage.sqlite_batch`) begins with the
database's write lock. It is nearly always free: this process's writes all go through its one
writer. So BEGIN runs on the event loop's thread, with the busy timeout set to zero for that one
statement: it takes the lock or answers SQLITE_BUSY at once. When another process holds it (a
separate ``worker`` beside ``serve``: the Procfile's way), the writer sleeps on the event loop a
little and tries again, until the connection's busy timeout has passed.

Why not SQLite's own waiting on its thread, as before: each trip there and back waited for the
GIL and for the event loop to come round (milliseconds under load, while the batch's callers
waited), and SQLite's busy handler sleeps in steps growing to 100 ms, which made the callbacks of
a burst wait hundreds of milliseconds whenever a worker process was writing too. Here the lock
is retried within :data:`POLL_AT_MOST` of its release.
"""

from __future__ import annotations

import asyncio
import sqlite3

POLL_FIRST = 0.0005  # seconds before the first retry; doubled up to:
POLL_AT_MOST = 0.005


async def begin_immediate(raw: sqlite3.Connection, *, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE`` on ``raw``, waiting up to ``busy_timeout`` seconds for the write lock
    without blocking; ``sqlite3.OperationalError`` ("database is locked") after that, as
    SQLite's own busy timeout would answer."""
    timeout_ms = int(busy_timeout * 1000)
    if _try_begin(raw, timeout_ms):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + busy_timeout
    delay = POLL_FIRST
    while loop.time() < deadline:
        await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
        if _try_begin(raw, timeout_ms):
            return
        delay = min(delay * 2, POLL_AT_MOST)
    raise sqlite3.OperationalError(
        f"database is locked: another process held the write lock for {busy_timeout:g} s"
    )


def _try_begin(raw: sqlite3.Connection, timeout_ms: int) -> bool:
    """Begun, or False (nothing begun) when another connection holds the write lock; any other
    error is raised."""
    raw.execute("PRAGMA busy_timeout = 0")  # SQLITE_BUSY at once rather than waiting here
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # BUSY, or an extended BUSY_*
            raise
        return False
    finally:
        raw.execute(f"PRAGMA busy_timeout = {timeout_ms}")  # the connection's, for the rest
    return True
