"""open/close/ping, reopening, and handles on one database from several "processes"."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from service.errors import StorageError
from storage import create_storage
from storage.base import Storage
from storage.memory.backend import MemoryStorage
from storage.migrate import load_migrations
from storage.postgres.schema import parse_url
from storage.sqlite.backend import SQLiteStorage
from tests.factories import at, make_job, make_task
from tests.storage.postgres_db import fresh_schema, needs_postgres, plain_url

OpenAgain = Callable[[], Awaitable[Storage]]


async def test_ping_and_idempotent_open_close(storage: Storage) -> None:
    await storage.ping()
    await storage.open()  # already open: nothing happens
    await storage.ping()


@pytest.mark.parametrize("make", [MemoryStorage, lambda: SQLiteStorage("unused.db")])
async def test_a_closed_storage_refuses_work(make: Callable[[], Storage]) -> None:
    storage = make()
    with pytest.raises(StorageError):
        await storage.ping()
    with pytest.raises(StorageError):
        await storage.get_task("x")
    await storage.close()  # closing a never-opened storage is fine


async def test_two_handles_see_each_others_writes(open_again: OpenAgain, storage: Storage) -> None:
    other = await open_again()
    task = make_task()
    await storage.create_task(task, [make_job(task_id=task.id)])

    assert await other.get_task(task.id) == task
    assert len(await other.lease_jobs(now=at(1), lease_seconds=30, limit=5)) == 1


async def test_leases_from_two_handles_never_share_a_job(
    open_again: OpenAgain, storage: Storage
) -> None:
    """For SQLite: two connections, as a `serve` and a `worker` process would have."""
    other = await open_again()
    await storage.enqueue([make_job(run_at=at(i % 5)) for i in range(80)])

    batches = await asyncio.gather(
        *(
            handle.lease_jobs(now=at(10), lease_seconds=30, limit=3)
            for _ in range(20)
            for handle in (storage, other)
        )
    )

    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 80


async def test_sqlite_data_survives_reopening_and_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "omnihook.db"  # directories are created
    task = make_task()
    first = SQLiteStorage(str(path))
    await first.open()
    await first.create_task(task)
    await first.close()
    await first.close()  # idempotent

    second = SQLiteStorage(str(path))
    await second.open()
    try:
        assert await second.get_task(task.id) == task
    finally:
        await second.close()

    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert versions == [(m.version, m.name) for m in load_migrations("sqlite")]
    assert journal == ("wal",)


async def test_sqlite_two_handles_migrating_at_once(tmp_path: Path) -> None:
    handles = [SQLiteStorage(str(tmp_path / "omnihook.db")) for _ in range(4)]
    await asyncio.gather(*(h.open() for h in handles))
    try:
        for handle in handles:
            await handle.ping()
    finally:
        for handle in handles:
            await handle.close()


async def test_sqlite_refuses_a_database_from_a_newer_omnihook(tmp_path: Path) -> None:
    path = tmp_path / "omnihook.db"
    storage = SQLiteStorage(str(path))
    await storage.open()
    await storage.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 'x')")
    conn.close()

    with pytest.raises(StorageError, match="upgrade omnihook"):
        await SQLiteStorage(str(path)).open()


async def test_sqlite_unopenable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError):
        await SQLiteStorage(str(blocker / "omnihook.db")).open()


@pytest.mark.parametrize(
    "url", ["postgresql://127.0.0.1:1/omnihook", "postgres://nobody@[::1]:1/x"]
)
async def test_postgresql_unreachable_is_a_storage_error(url: str) -> None:
    storage = create_storage(url)
    with pytest.raises(StorageError):
        await storage.ping()  # never opened
    with pytest.raises(StorageError, match="cannot open PostgreSQL"):
        await storage.open()
    await storage.close()


@needs_postgres
async def test_postgresql_replicas_starting_at_once_migrate_once() -> None:
    import asyncpg

    async with fresh_schema() as url:
        schema = parse_url(url).schema
        handles = [create_storage(url) for _ in range(4)]
        await asyncio.gather(*(h.open() for h in handles))
        try:
            for handle in handles:
                await handle.ping()
        finally:
            for handle in handles:
                await handle.close()

        admin = await asyncpg.connect(plain_url())
        try:
            versions = await admin.fetch(f'SELECT version, name FROM "{schema}".schema_migrations')
            tables = await admin.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
            )
            await admin.execute(
                f"INSERT INTO \"{schema}\".schema_migrations VALUES (9999, 'future', now())"
            )
        finally:
            await admin.close()
        migrations = load_migrations("postgresql")
        assert [tuple(row) for row in versions] == [(m.version, m.name) for m in migrations]
        # five tables, four of outgoing webhooks, health and schema_migrations, all in the schema
        assert tables == 11

        with pytest.raises(StorageError, match="upgrade omnihook"):
            await create_storage(url).open()


@needs_postgres
async def test_postgresql_ping_commits_a_write_and_the_database_does_not_grow() -> None:
    import asyncpg

    async with fresh_schema() as url:
        schema = parse_url(url).schema
        storage = create_storage(url)
        await storage.open()
        admin = await asyncpg.connect(plain_url())
        try:
            await storage.ping()
            first = await admin.fetchval(f'SELECT checked_at FROM "{schema}".health')
            await storage.ping()
            rows = await admin.fetch(f'SELECT checked_at FROM "{schema}".health')
        finally:
            await admin.close()
            await storage.close()
        assert len(rows) == 1
        assert rows[0]["checked_at"] > first  # rewritten by the second ping: it committed
