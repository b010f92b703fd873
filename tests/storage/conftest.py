"""One storage suite, run against every backend.

``storage`` is an open backend, closed after the test. ``open_again`` opens a second,
independent handle on the *same* database (another process, as far as the database can tell:
SQLite gets a new connection to the same file, PostgreSQL a second connection pool; the
in-memory backend, which cannot be shared, answers the same object). PostgreSQL runs when
``OMNIHOOK_TEST_POSTGRES_URL`` is set, each test in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from storage import create_storage
from storage.base import Storage
from storage.memory.backend import MemoryStorage
from storage.sqlite.backend import SQLiteStorage
from tests.storage.postgres_db import drop_schema, needs_postgres, new_schema_name, url_with_schema

BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgresql", marks=needs_postgres),
]

OpenAgain = Callable[[], Awaitable[Storage]]


class Backend:
    """Makes handles on one database of one backend kind."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._path = tmp_path / "omnihook.db"
        self._memory: MemoryStorage | None = None
        self.schema = new_schema_name() if kind == "postgresql" else None

    def new(self) -> Storage:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryStorage()
            return self._memory
        if self.kind == "sqlite":
            return SQLiteStorage(str(self._path))
        assert self.schema is not None  # created by the first handle that opens
        return create_storage(url_with_schema(self.schema))


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = Backend(request.param, tmp_path)
    try:
        yield made
    finally:
        if made.schema is not None:
            await drop_schema(made.schema)


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
