"""Waking SQLite workers when jobs may be due: their own writes at once, other processes' by a
short poll.

SQLite has no notifications between processes. ``PRAGMA data_version`` is the cheap substitute:
its value, read on one connection, changes whenever *another* connection commits to the file.
A waiter reads it every :data:`POLL_SECONDS`; a change means another process (``serve``, a
second worker) wrote something, perhaps jobs, so the worker looks. The last value seen is kept
between waits, so a commit made while the worker was busy is noticed at the next poll. Writes
through this connection itself, which ``data_version`` does not count, set an event instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from service.errors import StorageError

POLL_SECONDS = 0.25


class SQLiteWakeup:
    def __init__(self, read_version: Callable[[], Awaitable[int]]) -> None:
        self._read_version = read_version
        self._seen: int | None = None
        self._own_jobs = asyncio.Event()

    def start(self, version: int) -> None:
        """The connection was opened and read ``data_version`` (commits after it count)."""
        self._seen = version

    def jobs_added(self) -> None:
        """This connection committed new jobs, or jobs due now."""
        self._own_jobs.set()

    async def wait(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(seconds, 0.0)
        # Sleep first, then look: even when other processes commit without pause, a waiter
        # reads the database at most once per POLL_SECONDS.
        while (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._own_jobs.wait(), min(POLL_SECONDS, remaining))
            except TimeoutError:
                pass
            else:
                self._own_jobs.clear()
                return
            if await self._changed_elsewhere():
                return

    async def _changed_elsewhere(self) -> bool:
        try:
            version = await self._read_version()
        except StorageError:
            return False  # closed or failing: the worker's next lease will say so; keep waiting
        seen, self._seen = self._seen, version
        return seen is not None and version != seen
