"""create_storage(): database URLs to backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigurationError
from storage import create_storage
from storage.memory import MemoryStorage
from storage.sqlite import SQLiteStorage


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
def test_postgresql_names_the_extra_to_install(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"pip install 'omnihook\[postgres\]'"):
        create_storage(url)


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
