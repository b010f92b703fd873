"""Prompt wake-ups for PostgreSQL workers: ``LISTEN omnihook_jobs``.

Every transaction that inserts jobs, or puts a job back in the queue due now, also runs
``pg_notify('omnihook_jobs', <schema>)``; PostgreSQL delivers it to every listening session when
(and only if) the transaction commits, so a worker in any process wakes as soon as there is work
instead of at its next poll. The payload names the schema, so installations sharing a database
(or test runs in their own schemas) do not wake each other.

The listening connection is a connection of its own, outside the pool (a pooled one would be
handed to other queries), kept by a task of its own from the first wait on: web processes, which
never wait, hold none. When it is lost (a terminated backend, a restart, a proxy's idle timeout),
the waiter is woken to look at the queue, and the task connects again, at once and then with a
growing backoff while that fails; meanwhile a wait is a plain sleep for its timeout, the poll the
worker does anyway. Once listening again, the waiter is woken once more: notifications sent while
nobody listened are lost. A connection that died silently (no reset ever came) is found by a
query every :data:`KEEPALIVE_SECONDS`. Nothing of this raises out of :meth:`JobsListener.wait`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "omnihook_jobs"
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', $1)"

CONNECT_TIMEOUT = 10.0  # seconds for connecting and starting to listen
KEEPALIVE_SECONDS = 30.0  # of silence before the connection is asked whether it still works
RECONNECT_FIRST = 0.1  # seconds after a failed attempt; doubled up to:
RECONNECT_AT_MOST = 5.0

Connect = Callable[[], Awaitable[Any]]


class JobsListener:
    def __init__(self, connect: Connect, tag: str) -> None:
        self._connect = connect
        self._tag = tag
        self._conn: Any = None
        self._signal = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()  # set once the keeper first tried to listen

    async def wait(self, seconds: float) -> None:
        """Return on a notification for this schema (one that arrived since the last return
        counts too), on a change of the listening connection, or after ``seconds``."""
        seconds = max(seconds, 0.0)
        if self._keeper is None or self._keeper.done():
            if self._keeper is not None and not self._keeper.cancelled():
                failure = self._keeper.exception()  # a bug: say so, then listen again
                log.error(
                    "listening for new jobs stopped",
                    exc_info=failure,
                    extra={"action": "storage.listen_crashed"},
                )
            self._first_attempt.clear()
            self._keeper = asyncio.create_task(self._keep_listening())
        if not self._first_attempt.is_set():
            # The first wait waits for LISTEN to begin (as long as connecting takes, at most
            # CONNECT_TIMEOUT): work queued after it returns wakes the next one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_attempt.wait(), CONNECT_TIMEOUT)
        try:
            await asyncio.wait_for(self._signal.wait(), seconds)
        except TimeoutError:
            return
        # Cleared after waking, not before waiting: a notification that came while the worker
        # was busy makes the next wait return at once, so none is ever missed.
        self._signal.clear()

    async def close(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
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

    async def _keep_listening(self) -> None:
        delay = RECONNECT_FIRST
        listened_before = False
        while True:
            conn = await self._listen()
            self._first_attempt.set()
            if conn is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_AT_MOST)
                continue
            delay = RECONNECT_FIRST
            if listened_before:
                log.info("listening for new jobs again", extra={"action": "storage.listening"})
                self._signal.set()  # what was notified while nobody listened: look now
            listened_before = True
            await self._until_lost(conn)
            self._conn = None
            self._signal.set()  # the waiter re-checks the queue meanwhile
            log.warning(
                "the connection listening for new jobs was lost; listening again",
                extra={"action": "storage.listen_lost"},
            )

    async def _listen(self) -> Any:
        """A connection listening on the channel, or None (logged) when that failed."""
        conn: Any = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                conn = await self._connect()
                await conn.add_listener(CHANNEL, self._on_notification)
        except BaseException as exc:
            if conn is not None:  # half made (or cancelled while made): never left open
                conn.terminate()
            if not isinstance(exc, Exception):
                raise
            # the driver's, the socket's, a timeout: "not now", never "stop"
            log.warning(
                "cannot listen for new jobs (%s: %s); polling until it works again",
                type(exc).__name__,
                exc,
                extra={"action": "storage.listen_failed"},
            )
            return None
        self._conn = conn
        return conn

    async def _until_lost(self, conn: Any) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                pass
            else:
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), CONNECT_TIMEOUT)
            except Exception:  # silently dead (a partition, a stalled proxy): drop it
                conn.terminate()
                return

    def _on_notification(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload == self._tag:
            self._signal.set()
