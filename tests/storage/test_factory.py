"""create_storage(): database URLs to backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.errors import ConfigurationError
from storage import create_storage
from storage.memory.backend import MemoryStorage
from storage.postgres.backend import PostgresStorage
from storage.postgres.schema import parse_url
from storage.sqlite.backend import SQLiteStorage


def test_memory() -> None:
    assert isinstance(create_storage("memory://"), MemoryStorage)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///omnihook.db", "omnihook.db"),
        ("sqlite:///data/omnihook.db", "data/omnihook.db"),
        ("sqlite:////var/lib/omnihook/omnihook.db", "/var/lib/omnihook/omnihook.db"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    storage = create_storage(url)
    assert isinstance(storage, SQLiteStorage)
    assert storage.path == path


@pytest.mark.parametrize("url", ["postgresql://u:p@db/omnihook", "postgres://db/omnihook"])
def test_postgresql_is_chosen_without_connecting(url: str) -> None:
    storage = create_storage(url)
    assert isinstance(storage, PostgresStorage)
    assert ":p@" not in repr(storage)  # the password never shows


def test_postgresql_without_asyncpg_names_the_extra_to_install() -> None:
    """As on an installation without the postgres extra: asyncpg cannot be imported."""
    script = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "from service.errors import ConfigurationError\n"
        "from storage import create_storage\n"
        "create_storage('memory://'); create_storage('sqlite:///x.db')\n"
        "try:\n"
        "    create_storage('postgresql://db/omnihook')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'omnihook[postgres]'" in done.stdout, done.stderr


def test_postgresql_url_schema_and_password() -> None:
    target = parse_url("postgresql://me:secret@db:5433/omnihook?sslmode=disable&schema=team_a")
    assert target.schema == "team_a"
    assert target.dsn == "postgresql://me:secret@db:5433/omnihook?sslmode=disable"
    assert target.display == "postgresql://me@db:5433/omnihook?sslmode=disable&schema=team_a"
    assert target.connect_kwargs()["server_settings"] == {
        "application_name": "omnihook",
        "search_path": "team_a",
    }
    assert "secret" not in repr(target)
    plain = parse_url("postgres://db/omnihook?password=secret")
    assert plain.schema is None
    assert plain.connect_kwargs()["server_settings"] == {"application_name": "omnihook"}
    assert "secret" not in plain.display


def test_postgresql_url_application_name() -> None:
    target = parse_url("postgresql://db/omnihook?application_name=test_42&sslmode=disable")
    assert target.dsn == "postgresql://db/omnihook?sslmode=disable"
    assert target.connect_kwargs()["server_settings"] == {"application_name": "test_42"}
    with pytest.raises(ConfigurationError, match="application_name"):
        parse_url("postgresql://db/omnihook?application_name=a&application_name=b")


@pytest.mark.parametrize(
    "query",
    ["schema=", "schema=Team", "schema=1a", "schema=pg_x", "schema=a-b", "schema=a&schema=b"],
)
def test_postgresql_refuses_a_bad_schema(query: str) -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        create_storage(f"postgresql://db/omnihook?{query}")


@pytest.mark.parametrize(
    "url",
    ["", "omnihook.db", "mysql://db", "sqlite://omnihook.db", "sqlite:///", "sqlite:///a?x=1"],
)
def test_anything_else_names_the_accepted_forms(url: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite:///"):
        create_storage(url)


async def test_sqlite_creates_the_parent_directory(tmp_path: Path) -> None:
    storage = create_storage(f"sqlite:///{tmp_path}/a/b/omnihook.db")
    await storage.open()
    try:
        await storage.ping()
    finally:
        await storage.close()
