"""The migration runner and the SQLite statement splitter."""

from __future__ import annotations

import pytest

from service.errors import StorageError
from storage.migrate import Migration, load_migrations, pending_migrations, run_migrations
from storage.sqlite.schema import split_statements


def test_shipped_sqlite_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations("sqlite")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"


def test_a_dialect_without_migrations_has_none() -> None:
    assert load_migrations("no-such-dialect") == []


def test_pending_skips_applied_and_refuses_unknown_versions() -> None:
    available = [Migration(1, "a", ""), Migration(2, "b", "")]
    assert pending_migrations(available, {1}) == [available[1]]
    with pytest.raises(StorageError, match="upgrade omnihook"):
        pending_migrations(available, {1, 3})


class _Recorder:
    def __init__(self, applied: set[int]) -> None:
        self.applied = applied
        self.ran: list[int] = []

    async def applied_versions(self) -> set[int]:
        return set(self.applied)

    async def apply(self, migration: Migration) -> None:
        self.ran.append(migration.version)
        self.applied.add(migration.version)


async def test_run_migrations_applies_in_order_once() -> None:
    available = [Migration(1, "a", ""), Migration(2, "b", ""), Migration(3, "c", "")]
    session = _Recorder({1})

    assert [m.version for m in await run_migrations(session, available)] == [2, 3]
    assert await run_migrations(session, available) == []
    assert session.ran == [2, 3]


def test_split_statements() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'z';
    END;
    -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[0].endswith("DEFAULT 'x;y');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_split_statements_refuses_an_unfinished_one() -> None:
    with pytest.raises(StorageError, match="incomplete"):
        split_statements("CREATE TABLE t (a TEXT)")
