"""Throw-away PostgreSQL schemas for tests: each test run gets its own, dropped afterwards.

``OMNIHOOK_TEST_POSTGRES_URL`` names the server and database (``.ci/run`` sets it); tests that
need PostgreSQL skip when it is unset. Runs never disturb each other, nor anything else in the
database: every table lives in a schema of its own (``?schema=`` of the backend's URL).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

POSTGRES_URL = os.environ.get("OMNIHOOK_TEST_POSTGRES_URL")

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="set OMNIHOOK_TEST_POSTGRES_URL to test PostgreSQL"
)


def new_schema_name() -> str:
    return f"omnihook_test_{secrets.token_hex(6)}"


def url_with_schema(schema: str) -> str:
    """The test database's URL with ``schema=`` set (any schema it named is replaced)."""
    assert POSTGRES_URL is not None
    parts = urlsplit(POSTGRES_URL)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"] + [("schema", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_application_name(url: str, name: str) -> str:
    """``url`` whose connections carry ``application_name=name`` (found in pg_stat_activity)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("application_name", name)])))


def plain_url() -> str:
    """The test database's URL as asyncpg takes it (no omnihook parameters)."""
    assert POSTGRES_URL is not None
    parts = urlsplit(POSTGRES_URL)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_url())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A new schema's backend URL for the duration of the block; the schema is then dropped
    (it is created by the first backend opened on it)."""
    schema = new_schema_name()
    try:
        yield url_with_schema(schema)
    finally:
        await drop_schema(schema)
