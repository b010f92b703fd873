"""Versioned schema migrations, shared by the SQL backends.

Migrations are numbered files, ``storage/migrations/<dialect>/NNNN_name.sql`` (``sqlite``,
``postgresql``), applied in order and recorded in a ``schema_migrations`` table. A migration is
never edited once released: a change of schema is a new file.

The runner is backend-neutral. A backend supplies a :class:`MigrationSession`: the database
side of *one* transaction that already holds the backend's write lock (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: ``pg_advisory_xact_lock``), so that two processes starting at once
(``serve`` and ``worker``) cannot both apply the same migration: the second one waits, then
reads the versions again and finds nothing left to do. (SQLite, whose connection lives on a
thread of its own, runs the same steps there: :func:`storage.sqlite.schema.apply_migrations`.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Protocol

from service.errors import StorageError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class MigrationSession(Protocol):
    async def applied_versions(self) -> set[int]:
        """The versions recorded so far (creating ``schema_migrations`` when missing)."""

    async def apply(self, migration: Migration) -> None:
        """Run the migration's SQL and record it, inside the session's transaction."""


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect``, in order; malformed file names are an error."""
    directory = files("storage") / "migrations" / dialect
    if not directory.is_dir():
        return []
    migrations: dict[int, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise StorageError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise StorageError(f"two {dialect} migrations share version {version}")
        migrations[version] = Migration(version, match.group(2), entry.read_text("utf-8"))
    return [migrations[version] for version in sorted(migrations)]


def pending_migrations(available: list[Migration], applied: set[int]) -> list[Migration]:
    """What is left to apply; refuses a database that a newer omnihook already migrated."""
    unknown = applied - {m.version for m in available}
    if unknown:
        raise StorageError(
            f"the database has schema versions {sorted(unknown)} this omnihook does not know; "
            "upgrade omnihook"
        )
    return [m for m in available if m.version not in applied]


async def run_migrations(session: MigrationSession, available: list[Migration]) -> list[Migration]:
    """Apply what is pending, in order; answers what was applied (empty when up to date)."""
    todo = pending_migrations(available, await session.applied_versions())
    for migration in todo:
        await session.apply(migration)
    return todo
