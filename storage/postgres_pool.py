"""The connection side of the PostgreSQL backend: the pool, transactions, error translation
and the wake-up of workers; the base the job queue and the rest of the interface build on.

A connection pool serves every operation; each write is one transaction. Driver errors become
:class:`StorageError` at this boundary (a duplicate ``external_task_id``: :class:`Conflict`).
The URL, schema and migrations: :mod:`storage.postgres_schema`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from service.errors import Conflict, StorageError
from storage import postgres_sql as sql
from storage.base import Storage
from storage.postgres_listen import NOTIFY_SQL, JobsListener
from storage.postgres_rows import job_args
from storage.postgres_schema import init_connection, migrate, parse_url
from storage.records import JobRecord

# what asyncpg and the socket under it raise; everything else is a bug and propagates as is
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_EXTERNAL_ID_CONSTRAINT = "tasks_external_task_id_key"


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
            except _DRIVER_ERRORS as exc:
                raise StorageError(f"cannot open PostgreSQL at {display}: {exc}") from exc
            self._pool = pool

    async def close(self) -> None:
        async with self._open_lock:
            await self._listener.close()
            pool, self._pool = self._pool, None
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=10)
                except _DRIVER_ERRORS as exc:
                    pool.terminate()
                    raise StorageError(f"closing {self._target.display} failed: {exc}") from exc

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        if self._pool is None:  # closed (or never opened): no listening connection to open
            await asyncio.sleep(max(timeout, 0.0))
            return
        await self._listener.wait(timeout)

    async def _connect(self) -> Any:
        """A connection of its own, outside the pool (migrations, LISTEN)."""
        conn = await asyncpg.connect(**self._target.connect_kwargs())
        try:
            await init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    # -- connections and transactions --------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; driver errors become StorageError (or Conflict)."""
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self!r} is not open")
        try:
            async with pool.acquire() as conn:
                yield conn
        except _DRIVER_ERRORS as exc:
            raise _translate(exc) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """One transaction: committed on success, rolled back on any error."""
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _insert_jobs(self, conn: Any, jobs: Sequence[JobRecord]) -> None:
        """Insert jobs (a taken dedupe_key is skipped) and wake the listening workers."""
        if jobs:
            await conn.executemany(sql.INSERT_JOB, [job_args(job) for job in jobs])
            await self._notify(conn)

    async def _notify(self, conn: Any) -> None:
        """Wake the listening workers when (and if) the transaction of ``conn`` commits."""
        await conn.execute(NOTIFY_SQL, self._tag)


def _translate(exc: BaseException) -> Exception:
    """Conflict for a duplicate external_task_id (the one the API answers 409 for); every
    other driver error is a StorageError."""
    if (
        isinstance(exc, asyncpg.UniqueViolationError)
        and getattr(exc, "constraint_name", None) == _EXTERNAL_ID_CONSTRAINT
    ):
        return Conflict("external_task_id already exists")
    return StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}")
