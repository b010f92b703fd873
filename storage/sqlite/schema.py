"""Opening an SQLite database for omnihook: connection settings and schema migrations."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from service.errors import StorageError
from storage.migrate import Migration, load_migrations, pending_migrations
from storage.sqlite.rows import encode_time


def connect(path: str, *, busy_timeout: float) -> sqlite3.Connection:
    """A configured connection to ``path`` (its directory is created when missing), for the
    thread that calls this: the thread of the writer or of the reader
    (:mod:`storage.sqlite.thread`), which alone uses it.

    Several processes share the file (``serve`` and ``worker``), hence WAL (readers never
    block the writer) and a busy timeout (a writer waits for another one instead of failing).
    """
    if path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: the sqlite3 module opens no transactions behind our back; every
    # write transaction is an explicit BEGIN IMMEDIATE (storage.sqlite.writer)
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        _use_wal(conn, deadline=time.monotonic() + busy_timeout)
        # synchronous stays FULL (the default): an acknowledged callback must survive power loss
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, *, deadline: float) -> None:
    """Switch the file to WAL (a persistent setting: usually it already is).

    Switching answers "database is locked" at once, without the busy handler, while another
    connection opens the same fresh file; hence the retries (on the connection's own thread).
    """
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError:
            if time.monotonic() + delay > deadline:
                raise
        else:
            if str(mode).lower() in ("wal", "memory"):  # ":memory:" databases have no WAL
                return
            if time.monotonic() + delay > deadline:
                raise StorageError(f"SQLite refused WAL mode (journal_mode is {mode!r})")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def migrate(conn: sqlite3.Connection) -> list[Migration]:
    """Apply pending migrations in one transaction that holds the database's write lock.

    Foreign keys are off meanwhile (the pragma is a no-op inside a transaction, hence before
    it): a migration that rebuilds a table (SQLite cannot alter a constraint in place) drops
    the old one, which must not cascade into the rows that refer to it. They are checked
    before the commit, so a migration cannot leave a dangling reference behind."""
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = apply_migrations(conn, load_migrations("sqlite"))
            dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise StorageError(f"a migration left {len(dangling)} rows referring to nothing")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return applied


def apply_migrations(conn: sqlite3.Connection, available: list[Migration]) -> list[Migration]:
    """Inside a transaction that holds the write lock: apply what of ``available`` is pending
    (the runner of :mod:`storage.migrate`, on the connection's own thread)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
    todo = pending_migrations(available, applied)
    for migration in todo:
        for statement in split_statements(migration.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, encode_time(datetime.now(UTC))),
        )
    return todo


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
