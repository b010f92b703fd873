"""Taking SQLite's write lock (``BEGIN IMMEDIATE``) without ever blocking the event loop.

Every write transaction of the group commit (:mod:`storage.sqlite.batch`) begins with the
database's write lock. It is nearly always free: this process's writes all go through its one
writer. So BEGIN runs on the event loop's thread, with the busy timeout set to zero for that one
statement: it takes the lock or answers SQLITE_BUSY at once. When another process holds it (a
separate ``worker`` beside ``serve``: the Procfile's way), the writer sleeps on the event loop a
little and tries again, until the connection's busy timeout has passed (counted, by the group
commit, from when each write was handed to it: one limit for its whole wait).

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


class WriteLockTimeout(sqlite3.OperationalError):
    """The write lock stayed held by another connection until the deadline ("database is
    locked", SQLITE_BUSY, as SQLite's own busy timeout would answer)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.sqlite_errorcode = sqlite3.SQLITE_BUSY


async def begin_immediate(
    raw: sqlite3.Connection, *, busy_timeout: float, deadline: float | None = None
) -> None:
    """``BEGIN IMMEDIATE`` on ``raw``, waiting for the write lock without blocking, up to
    ``busy_timeout`` seconds, or until ``deadline`` (the event loop's time) when given: the
    group commit's callers each wait at most their own busy timeout, however many attempts
    that takes. It always tries once, even past the deadline; :class:`WriteLockTimeout` when
    the lock is still held after it. ``busy_timeout`` is the connection's own, kept for the
    statements after BEGIN."""
    timeout_ms = int(busy_timeout * 1000)
    if _try_begin(raw, timeout_ms):
        return
    loop = asyncio.get_running_loop()
    started = loop.time()
    if deadline is None:
        deadline = started + busy_timeout
    delay = POLL_FIRST
    while loop.time() < deadline:
        await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
        if _try_begin(raw, timeout_ms):
            return
        delay = min(delay * 2, POLL_AT_MOST)
    raise WriteLockTimeout(
        "database is locked: another process held the write lock "
        f"(waited {loop.time() - started:.3g} s, the limit is {busy_timeout:g} s)"
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
