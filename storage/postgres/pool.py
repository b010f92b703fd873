"""The connection side of the PostgreSQL backend: the pool, units of work, error translation
and the wake-up of workers; the base the job queue and the rest of the interface build on.

A connection pool serves every operation. An operation is a *body* (a coroutine function of a
connection) run by one of :meth:`PostgresConnection._read`, ``_execute`` (one autocommit
statement), ``_transact`` (one transaction) or ``_insert_new``. Driver errors become the
project's at this boundary (:mod:`storage.postgres.errors`): a lost connection
:class:`StorageUnavailable`, anything else :class:`StorageError` (a duplicate
``external_task_id``: :class:`Conflict`).

A connection lost under a body (a terminated backend, a failover, a reset socket) is not the
work's fault, so the body runs again on a fresh connection, after :data:`RETRY_DELAYS`, and only
when every run lost its connection is the error StorageUnavailable. Whether it may run again
depends on when the connection was lost:

- while connecting or before COMMIT was sent: the server rolled the transaction back, nothing
  of it happened; it always runs again;
- during COMMIT (or during an autocommit statement): the outcome is unknown, the first run may
  have landed. It runs again only if the operation is *repeatable*: a second run after a landed
  first one leaves the same rows and answers what the caller expects (reads; absolute updates
  such as ``renew_lease``, ``set_download_progress``, ``set_notification_outcome``;
  ``delete_task``; leasing, whose stranded leases merely expire; the health probe). Inserts of
  new rows (``create_task``, ``record_notification``, ``create_endpoint``, ``enqueue``) first
  look, on the fresh connection, for their own ids (:meth:`PostgresConnection._insert_new`).
  The others (compare-and-set and fenced writes: ``apply``, job ends, ``requeue_job``,
  deliveries' writes, endpoint updates) would answer "someone else changed it" about their own
  write: they raise StorageUnavailable, and the caller (the worker's job, the API client) tries
  again with the state it then reads.

The URL, schema and migrations: :mod:`storage.postgres.schema`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, TypeVar

import asyncpg

from service.errors import OmnihookError, StorageError, StorageUnavailable
from storage.base import Storage
from storage.postgres import sql as sql
from storage.postgres.errors import connection_gone, is_connection_lost, translate
from storage.postgres.listen import NOTIFY_SQL, JobsListener
from storage.postgres.rows import job_args
from storage.postgres.schema import init_connection, migrate, parse_url
from storage.records import JobRecord

log = logging.getLogger(__name__)

R = TypeVar("R")
Body = Callable[[Any], Awaitable[R]]

# seconds before each further run of a body whose connection was lost (4 runs in all)
RETRY_DELAYS = (0.05, 0.2, 0.5)
_HEALTH_PROBE = (
    "INSERT INTO health (id, checked_at) VALUES (1, now()) "
    "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
)


class _Stage(Enum):
    CONNECTING = "acquiring a connection"
    RUNNING = "running"
    COMMITTING = "committing"
    DONE = "done"


class _Lost(Exception):
    """One run of a body lost its connection (internal: becomes StorageUnavailable)."""

    def __init__(self, cause: Exception, stage: _Stage, *, outcome_unknown: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause} ({stage.value})")
        self.cause = cause
        self.outcome_unknown = outcome_unknown


class PostgresConnection(Storage):
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self._target = parse_url(url)
        self._pool_size = (min_size, max_size)
        self._pool: Any = None
        self._open_lock = asyncio.Lock()
        # the NOTIFY payload: listeners of other schemas in the same database ignore ours
        self._tag = self._target.schema or ""
        self._listener = JobsListener(self._connect, self._tag)

    def __repr__(self) -> str:
        return f"PostgresStorage({self._target.display!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        async with self._open_lock:
            if self._pool is not None:
                return
            display = self._target.display
            try:
                conn = await self._connect()
                try:
                    await migrate(conn, self._target.schema)
                finally:
                    await conn.close()
                pool = await asyncpg.create_pool(
                    **self._target.connect_kwargs(),
                    min_size=self._pool_size[0],
                    max_size=self._pool_size[1],
                    init=init_connection,
                )
            except OmnihookError:
                raise
            except Exception as exc:
                unavailable = is_connection_lost(exc)
                error = StorageUnavailable if unavailable else StorageError
                raise error(f"cannot open PostgreSQL at {display}: {exc}") from exc
            self._pool = pool

    async def close(self) -> None:
        async with self._open_lock:
            await self._listener.close()
            pool, self._pool = self._pool, None
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=10)
                except Exception as exc:
                    pool.terminate()
                    raise StorageError(f"closing {self._target.display} failed: {exc}") from exc

    async def ping(self) -> None:
        """A write that commits (one row, rewritten: the table never grows)."""
        await self._transact(lambda conn: conn.execute(_HEALTH_PROBE), repeatable=True)

    async def wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        if self._pool is None:  # closed (or never opened): no listening connection to open
            await asyncio.sleep(max(timeout, 0.0))
            return
        await self._listener.wait(timeout)

    async def _connect(self) -> Any:
        """A connection of its own, outside the pool (migrations, LISTEN); raises the driver's
        errors (the callers translate them)."""
        conn = await asyncpg.connect(**self._target.connect_kwargs())
        try:
            await init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    # -- units of work -----------------------------------------------------------------------

    async def _read(self, body: Body[R]) -> R:
        """Reads on a pooled connection (autocommit): run again whenever the connection is lost."""
        return await self._run(body, transaction=False, repeatable=True)

    async def _execute(self, body: Body[R], *, repeatable: bool) -> R:
        """One write statement on a pooled connection (autocommit); see the module docstring
        for ``repeatable``."""
        return await self._run(body, transaction=False, repeatable=repeatable)

    async def _transact(self, body: Body[R], *, repeatable: bool = False) -> R:
        """``body`` in one transaction: committed when it returns, rolled back if it raises;
        see the module docstring for ``repeatable``."""
        return await self._run(body, transaction=True, repeatable=repeatable)

    async def _insert_new(self, body: Body[None], *, landed: Body[bool]) -> None:
        """A transaction that inserts rows of new ids. Run again after a lost connection, it
        first asks ``landed`` whether a run before it committed (its ids exist): then it is
        done, else it inserts them now."""
        runs = 0

        async def once(conn: Any) -> None:
            nonlocal runs
            runs += 1
            if runs > 1 and await landed(conn):
                return
            await body(conn)

        await self._run(once, transaction=True, repeatable=True)

    async def _run(self, body: Body[R], *, transaction: bool, repeatable: bool) -> R:
        delays = iter(RETRY_DELAYS)
        runs = 0
        while True:
            runs += 1
            try:
                return await self._run_once(body, transaction=transaction)
            except _Lost as lost:
                if lost.outcome_unknown and not repeatable:
                    raise StorageUnavailable(
                        f"PostgreSQL connection lost, the outcome is unknown: {lost}"
                    ) from lost.cause
                delay = next(delays, None)
                if delay is None:
                    raise StorageUnavailable(
                        f"PostgreSQL connection lost {runs} times in a row: {lost}"
                    ) from lost.cause
                log.warning(
                    "PostgreSQL connection lost (%s); running again on a fresh one in %g s",
                    lost,
                    delay,
                    extra={"action": "storage.connection_lost"},
                )
                await asyncio.sleep(delay)

    async def _run_once(self, body: Body[R], *, transaction: bool) -> R:
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self!r} is not open")
        stage = _Stage.CONNECTING
        lost: bool | None = None  # judged while the connection can still be asked
        result: R
        try:
            async with pool.acquire() as conn:
                stage = _Stage.RUNNING
                try:
                    if transaction:
                        result = await self._in_transaction(conn, body)
                        stage = _Stage.COMMITTING
                        await conn.execute("COMMIT")
                    else:
                        result = await body(conn)
                except Exception as exc:
                    lost = is_connection_lost(exc, conn)
                    if lost and not connection_gone(conn):
                        conn.terminate()  # in a state nobody knows: the pool opens a new one
                    raise
                stage = _Stage.DONE
        except OmnihookError:
            raise
        except Exception as exc:
            if stage is _Stage.DONE:  # handing back a connection that died just then: done
                log.debug("releasing a PostgreSQL connection failed: %r", exc)
                return result
            if lost is None:  # acquiring or releasing: no connection to judge by
                lost = is_connection_lost(exc)
            if not lost:
                raise translate(exc, lost=False) from exc
            unknown = stage is _Stage.COMMITTING or (stage is _Stage.RUNNING and not transaction)
            raise _Lost(exc, stage, outcome_unknown=unknown) from exc
        return result

    @staticmethod
    async def _in_transaction(conn: Any, body: Body[R]) -> R:
        """``body`` after BEGIN; rolled back if it raises (unless its connection is gone,
        with the transaction: then the error says so, not the ROLLBACK's)."""
        await conn.execute("BEGIN")
        try:
            return await body(conn)
        except BaseException:
            if not connection_gone(conn):
                await conn.execute("ROLLBACK")
            raise

    async def _insert_jobs(self, conn: Any, jobs: Sequence[JobRecord]) -> None:
        """Insert jobs (a taken dedupe_key is skipped) and wake the listening workers."""
        if jobs:
            await conn.executemany(sql.INSERT_JOB, [job_args(job) for job in jobs])
            await self._notify(conn)

    async def _notify(self, conn: Any) -> None:
        """Wake the listening workers when (and if) the transaction of ``conn`` commits."""
        await conn.execute(NOTIFY_SQL, self._tag)
