"""Reaching a PostgreSQL database for omnihook: the URL, connection setup and migrations.

``OMNIHOOK_DATABASE_URL`` is a libpq-style URL (``postgresql://user:password@host:5432/db``,
``postgres://`` too, any query parameter asyncpg knows, such as ``sslmode``). omnihook adds one
parameter of its own, ``schema=NAME``: the tables live in that schema (created when missing)
instead of ``public``, so several installations, or test runs, can share one database. Every
connection carries an ``application_name`` (``omnihook``, or the URL's ``application_name=``),
so an operator, or a test, finds the service's own sessions in ``pg_stat_activity``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from service.errors import ConfigurationError
from storage.migrate import Migration, load_migrations, run_migrations

# lowercase: an unquoted name in search_path is folded to lowercase, so only such names mean
# the same thing everywhere; pg_ names are reserved by PostgreSQL
_SCHEMA_NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")
# the two halves of the advisory lock key taken while migrating (a schema's own lock)
_MIGRATION_LOCK = "omnihook.migrate"
DEFAULT_APPLICATION_NAME = "omnihook"


@dataclass(frozen=True)
class PostgresTarget:
    """Where to connect: what asyncpg is given, and what may be shown to people."""

    dsn: str = field(repr=False)  # may hold a password
    display: str  # the URL without its password
    schema: str | None
    application_name: str = DEFAULT_APPLICATION_NAME

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``asyncpg.create_pool``."""
        settings = {"application_name": self.application_name}
        if self.schema is not None:
            settings["search_path"] = self.schema
        return {"dsn": self.dsn, "server_settings": settings}


def parse_url(url: str) -> PostgresTarget:
    """Split omnihook's ``schema`` parameter off a PostgreSQL URL; ConfigurationError if bad."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:
        raise ConfigurationError(f"malformed PostgreSQL URL: {exc}") from None
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigurationError("a PostgreSQL URL starts with postgresql:// or postgres://")
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise ConfigurationError("the PostgreSQL URL names more than one schema")
    schema = schemas[0] if schemas else None
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"schema {schema!r} in the PostgreSQL URL: use lowercase letters, digits and _ "
            "(at most 63, not starting with a digit or pg_)"
        )
    names = [value for key, value in query if key == "application_name"]
    if len(names) > 1:
        raise ConfigurationError("the PostgreSQL URL names more than one application_name")
    application_name = names[0] if names else DEFAULT_APPLICATION_NAME
    # given to asyncpg as server settings (connect_kwargs), next to the schema's search_path
    ours = ("schema", "application_name")
    rest = urlencode([(key, value) for key, value in query if key not in ours])
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    # for people: no password, neither in the user part nor as a parameter
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}@{hosts}" if at else hosts
    shown = urlencode([(key, value) for key, value in query if key != "password"])
    display = urlunsplit((parts.scheme, netloc, parts.path, shown, ""))
    return PostgresTarget(
        dsn=dsn, display=display, schema=schema, application_name=application_name
    )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def init_connection(conn: Any) -> None:
    """Per-connection setup: jsonb arrives as text already encoded (storage.postgres.rows) and
    leaves as Python values."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_same, decoder=json.loads, format="text"
    )


def _same(text: str) -> str:
    return text


async def migrate(conn: Any, schema: str | None) -> list[Migration]:
    """Create the schema if needed and apply pending migrations, in one transaction.

    A transaction-level advisory lock (released at commit) makes several processes that start
    at once (replicas, workers) take turns: the first migrates, the others then find nothing
    left to do. The lock is per schema, so installations in other schemas never wait.
    """
    available = load_migrations("postgresql")
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext(coalesce($2, current_schema())))",
            _MIGRATION_LOCK,
            schema,
        )
        if schema is not None:
            quoted = quote_identifier(schema)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            # the connection's search_path named a schema that may not have existed before
            await conn.execute(f"SET LOCAL search_path TO {quoted}")
        return await run_migrations(_Session(conn), available)


class _Session:
    """The PostgreSQL side of :class:`storage.migrate.MigrationSession`."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def applied_versions(self) -> set[int]:
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
        )
        rows = await self._conn.fetch("SELECT version FROM schema_migrations")
        return {int(row["version"]) for row in rows}

    async def apply(self, migration: Migration) -> None:
        # a script of several statements: sent as one simple query (no parameters)
        await self._conn.execute(migration.sql)
        await self._conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            datetime.now(UTC),
        )
