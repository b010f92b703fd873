"""Prompt wake-ups for PostgreSQL workers: ``LISTEN omnihook_jobs``.

Every transaction that inserts jobs, or puts a job back in the queue due now, also runs
``pg_notify('omnihook_jobs', <schema>)``; PostgreSQL delivers it to every listening session when
(and only if) the transaction commits, so a worker in any process wakes as soon as there is work
instead of at its next poll. The payload names the schema, so installations sharing a database
(or test runs in their own schemas) do not wake each other.

The listening connection is a connection of its own, outside the pool (a pooled one would be
handed to other queries), opened on the first wait: web processes, which never wait, hold none.
When it cannot be opened or is lost, a wait is a plain sleep for the timeout, the poll the
worker would do anyway, and the next wait tries to listen again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "omnihook_jobs"
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', $1)"

Connect = Callable[[], Awaitable[Any]]


class JobsListener:
    def __init__(self, connect: Connect, tag: str) -> None:
        self._connect = connect
        self._tag = tag
        self._conn: Any = None
        self._signal = asyncio.Event()
        self._lock = asyncio.Lock()
        self._failing = False  # log a lost connection once, not at every poll

    async def wait(self, seconds: float) -> None:
        """Return on a notification for this schema (one that arrived since the last return
        counts too), or after ``seconds``."""
        if not await self._listening():
            await asyncio.sleep(max(seconds, 0.0))
            return
        try:
            await asyncio.wait_for(self._signal.wait(), max(seconds, 0.0))
        except TimeoutError:
            return
        # Cleared after waking, not before waiting: a notification that came while the worker
        # was busy makes the next wait return at once, so none is ever missed.
        self._signal.clear()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is None or conn.is_closed():
                return
            try:
                await conn.close(timeout=5)
            except asyncio.CancelledError:
                conn.terminate()
                raise
            except Exception:  # a dead server: drop the socket instead
                conn.terminate()

    async def _listening(self) -> bool:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return True
            self._conn = None
            # asyncpg's errors, the socket's, a timeout: each means "not now", never "stop"
            try:
                conn = await self._connect()
            except Exception as exc:
                self._note_failure(exc)
                return False
            try:
                await conn.add_listener(CHANNEL, self._on_notification)
            except Exception as exc:
                conn.terminate()
                self._note_failure(exc)
                return False
            conn.add_termination_listener(self._on_lost)
            self._conn = conn
            if self._failing:
                log.info("listening for new jobs again", extra={"action": "storage.listening"})
            self._failing = False
            return True

    def _note_failure(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning(
                "cannot listen for new jobs (%s: %s); polling until it works again",
                type(exc).__name__,
                exc,
                extra={"action": "storage.listen_failed"},
            )
        self._failing = True

    def _on_notification(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload == self._tag:
            self._signal.set()

    def _on_lost(self, conn: Any) -> None:
        if conn is self._conn:
            self._conn = None
        self._signal.set()  # the waiter re-checks the queue, then listens again
