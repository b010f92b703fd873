"""Opening an SQLite database for omnihook: connection settings and schema migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from service.errors import StorageError
from storage.migrate import Migration, load_migrations, run_migrations
from storage.sqlite.rows import encode_time


async def connect(path: str, *, busy_timeout: float) -> aiosqlite.Connection:
    """A configured connection to ``path`` (its directory is created when missing).

    Several processes share the file (``serve`` and ``worker``), hence WAL (readers never
    block the writer) and a busy timeout (a writer waits for another one instead of failing).
    """
    if path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: the sqlite3 module opens no transactions behind our back; every
    # write transaction is an explicit BEGIN IMMEDIATE (see SQLiteStorage._write)
    # check_same_thread off: the group commit runs a batch's plain statements on the event
    # loop's thread, between a BEGIN and a COMMIT run on aiosqlite's (storage.sqlite.batch);
    # one thread at a time, each step awaited before the next
    conn = await aiosqlite.connect(
        path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await _use_wal(conn, deadline=time.monotonic() + busy_timeout)
        # synchronous stays FULL (the default): an acknowledged callback must survive power loss
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _use_wal(conn: aiosqlite.Connection, *, deadline: float) -> None:
    """Switch the file to WAL (a persistent setting: usually it already is).

    Switching answers "database is locked" at once, without the busy handler, while another
    connection opens the same fresh file; hence the retries.
    """
    delay = 0.005
    while True:
        try:
            rows = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() + delay > deadline:
                raise
        else:
            mode = next(iter(rows))[0]
            if str(mode).lower() in ("wal", "memory"):  # ":memory:" databases have no WAL
                return
            if time.monotonic() + delay > deadline:
                raise StorageError(f"SQLite refused WAL mode (journal_mode is {mode!r})")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def migrate(conn: aiosqlite.Connection) -> list[Migration]:
    """Apply pending migrations in one transaction that holds the database's write lock.

    Foreign keys are off meanwhile (the pragma is a no-op inside a transaction, hence before
    it): a migration that rebuilds a table (SQLite cannot alter a constraint in place) drops
    the old one, which must not cascade into the rows that refer to it. They are checked
    before the commit, so a migration cannot leave a dangling reference behind."""
    available = load_migrations("sqlite")
    await conn.execute("PRAGMA foreign_keys = OFF")
    try:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            applied = await run_migrations(_Session(conn), available)
            dangling = await conn.execute_fetchall("PRAGMA foreign_key_check")
            if dangling:
                raise StorageError(
                    f"a migration left {len(list(dangling))} rows referring to nothing"
                )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    finally:
        await conn.execute("PRAGMA foreign_keys = ON")
    return applied


class _Session:
    """The SQLite side of :class:`storage.migrate.MigrationSession`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def applied_versions(self) -> set[int]:
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        rows = await self._conn.execute_fetchall("SELECT version FROM schema_migrations")
        return {int(row[0]) for row in rows}

    async def apply(self, migration: Migration) -> None:
        for statement in split_statements(migration.sql):
            await self._conn.execute(statement)
        await self._conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, encode_time(datetime.now(UTC))),
        )


def split_statements(script: str) -> list[str]:
    """The statements of an SQL script, one by one.

    ``executescript`` would do it, but it commits first, and a migration must run inside the
    transaction that holds the write lock. ``sqlite3.complete_statement`` knows where a
    statement ends (trigger bodies included); put one statement per line end.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if not _only_comments(buffer):
        raise StorageError(f"migration ends with an incomplete statement: {buffer.strip()!r}")
    return statements


def _only_comments(sql: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in sql.splitlines())
