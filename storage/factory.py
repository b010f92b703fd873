"""Choose a storage backend from ``OMNIHOOK_DATABASE_URL``.

Accepted forms::

    memory://                      in-memory (tests, throw-away runs)
    sqlite:///relative/path.db     SQLite, relative to the working directory
    sqlite:////absolute/path.db    SQLite, absolute path
    postgresql://user:password@host:5432/db[?schema=NAME]
    postgres://...                 PostgreSQL (needs ``pip install 'omnihook[postgres]'``);
                                   ``schema``: the tables' schema, created when missing

The factory only parses: nothing touches the disk or the network before ``Storage.open()``.
"""

from __future__ import annotations

from service.errors import ConfigurationError
from storage.base import Storage

_ACCEPTED = (
    "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db "
    "or postgresql://user:password@host/dbname"
)
_SQLITE_PREFIX = "sqlite:///"


def create_storage(url: str) -> Storage:
    """A closed backend for ``url``; call ``await storage.open()`` before use."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigurationError(f"database URL {url!r} has no scheme; use {_ACCEPTED}")
    if scheme == "memory":
        from storage.memory.backend import MemoryStorage

        return MemoryStorage()
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgresql", "postgres"):
        return _postgresql(url)
    raise ConfigurationError(f"unsupported database URL scheme {scheme!r}; use {_ACCEPTED}")


def _sqlite(url: str) -> Storage:
    from storage.sqlite.backend import SQLiteStorage

    if not url.lower().startswith(_SQLITE_PREFIX):
        raise ConfigurationError(
            f"SQLite URLs take three slashes before a relative path and four before an "
            f"absolute one (got {url!r}); use {_ACCEPTED}"
        )
    path = url[len(_SQLITE_PREFIX) :]
    if not path or "?" in path:
        raise ConfigurationError(
            f"SQLite URL {url!r} needs a file path and no query; use {_ACCEPTED}"
        )
    return SQLiteStorage(path)


def _postgresql(url: str) -> Storage:
    # imported here, not at the top: asyncpg is an optional dependency (the postgres extra)
    try:
        from storage.postgres.backend import PostgresStorage
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != "asyncpg":
            raise
        raise ConfigurationError(
            "PostgreSQL needs the asyncpg driver: pip install 'omnihook[postgres]' "
            "(or use sqlite:///path/to/omnihook.db)"
        ) from exc
    return PostgresStorage(url)
