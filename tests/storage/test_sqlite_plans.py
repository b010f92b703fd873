"""SQLite looks due jobs up along the partial indexes of migration 0003: leasing costs the same
at any backlog and any number of finished jobs (no query scans the jobs table)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.sqlite.backend import SQLiteStorage
from storage.sqlite.jobs import NEXT_DUE, first_due


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "plans.db"
    storage = SQLiteStorage(str(path))
    await storage.open()
    await storage.close()
    return path


@pytest.mark.parametrize("kinds", ["", "AND kind IN ('inbox', 'sync')"], ids=["all", "kinds"])
def test_leasing_searches_the_queued_and_the_leased_jobs_index(database: Path, kinds: str) -> None:
    with sqlite3.connect(database) as conn:
        plan = _plan(conn, first_due(kinds), {"now": "2026-01-01", "limit": 10})
    conn.close()
    assert any("USING INDEX jobs_queued" in step for step in plan), plan
    assert any("USING INDEX jobs_leased" in step for step in plan), plan
    assert not any(step.startswith("SCAN jobs") for step in plan), plan


def test_the_next_due_time_is_read_from_the_two_indexes(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        plan = _plan(conn, NEXT_DUE, {})
    conn.close()
    assert sum("jobs_queued" in step or "jobs_leased" in step for step in plan) == 2, plan
    assert not any(step.startswith("SCAN jobs") for step in plan), plan


def _plan(conn: sqlite3.Connection, sql: str, params: dict[str, str | int]) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
