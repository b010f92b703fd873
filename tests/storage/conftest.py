"""One storage suite, run against every backend.

``storage`` is an open backend, closed after the test. ``open_again`` opens a second,
independent handle on the *same* database (another process, as far as the database can tell:
SQLite gets a new connection to the same file; the in-memory backend, which cannot be shared,
answers the same object). PostgreSQL runs when ``OMNIHOOK_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from storage import create_storage
from storage.base import Storage
from storage.memory import MemoryStorage
from storage.sqlite import SQLiteStorage

POSTGRES_URL = os.environ.get("OMNIHOOK_TEST_POSTGRES_URL")

BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL, reason="set OMNIHOOK_TEST_POSTGRES_URL to test PostgreSQL"
        ),
    ),
]

OpenAgain = Callable[[], Awaitable[Storage]]


class Backend:
    """Makes handles on one database of one backend kind."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._path = tmp_path / "omnihook.db"
        self._memory: MemoryStorage | None = None

    def new(self) -> Storage:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryStorage()
            return self._memory
        if self.kind == "sqlite":
            return SQLiteStorage(str(self._path))
        assert POSTGRES_URL is not None
        # a PostgreSQL test database must start empty: the backend's test helper (with the
        # backend itself) will truncate it here
        return create_storage(POSTGRES_URL)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    store = backend.new()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def open_again(backend: Backend, storage: Storage) -> AsyncIterator[OpenAgain]:
    opened: list[Storage] = []

    async def open_another() -> Storage:
        store = backend.new()
        if store is not storage:
            await store.open()
            opened.append(store)
        return store

    try:
        yield open_another
    finally:
        for store in opened:
            await store.close()
