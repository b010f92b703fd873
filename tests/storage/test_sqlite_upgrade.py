"""Upgrading an SQLite database in use: migration 0005 rebuilds the tasks table (SQLite cannot
change a CHECK constraint in place); nothing that refers to a task may be lost on the way."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from service.errors import StorageError
from storage.migrate import load_migrations
from storage.records import TaskStatus
from storage.sqlite.backend import SQLiteStorage
from storage.sqlite.schema import apply_migrations  # the runner's own steps, to stop at 0004

BEFORE_THE_QUEUE = 4


async def test_a_database_of_before_the_queue_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "omnihook.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        apply_migrations(conn, load_migrations("sqlite")[:BEFORE_THE_QUEUE])
        conn.execute(
            "INSERT INTO tasks (id, external_task_id, callback_token_hash, status, model_name,"
            " request, metadata, created_at, updated_at, version) VALUES ('task_1', 'job-1',"
            " 'hash', 'processing', 'kling-v3-omni', '{}', '{}', '2026-01-01T00:00:00.000000Z',"
            " '2026-01-01T00:00:00.000000Z', 3)"
        )
        conn.execute(
            "INSERT INTO videos (task_id, video_index, url, updated_at, download_status) VALUES"
            " ('task_1', 0, 'https://cdn.example/v.mp4', '2026-01-01T00:00:00.000000Z', 'pending')"
        )
        conn.execute(
            "INSERT INTO events (id, task_id, type, event_key, timestamp, data) VALUES"
            " ('evt_1', 'task_1', 'task.submitted', 'task.submitted',"
            " '2026-01-01T00:00:00.000000Z', '{}')"
        )
        conn.execute("COMMIT")

    storage = SQLiteStorage(str(path))
    await storage.open()  # applies 0005 and the rest
    try:
        task = await storage.get_task("task_1")
        assert task is not None
        assert (task.status, task.version, task.priority) == (TaskStatus.PROCESSING, 3, 0)
        [video] = await storage.list_videos("task_1")  # not cascaded away with the old table
        assert video.url == "https://cdn.example/v.mp4"
        assert [e.id for e in await storage.list_events("task_1")] == ["evt_1"]
        await storage.delete_task("task_1")  # the foreign keys still hold, and cascade
        assert await storage.list_videos("task_1") == []
    finally:
        await storage.close()


async def test_a_failed_migration_names_the_database_and_leaves_it_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # someone else's tables
        conn.execute("CREATE TABLE tasks (x)")
        conn.commit()
    storage = SQLiteStorage(str(path))
    with pytest.raises(StorageError, match=f"migrating '{path}'.*table tasks already exists"):
        await storage.open()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"tasks"}  # the migration's transaction rolled back whole
