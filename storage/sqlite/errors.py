"""What SQLite's errors mean to omnihook: the database out of reach, a conflict, or a failure.

Every ``sqlite3`` error of the SQLite backend is translated here. Those that say
the database cannot be used just now, whatever the statement, are :class:`StorageUnavailable`
(transient: try again): its write lock stayed held (BUSY, LOCKED), the disk failed or is full
(IOERR, FULL), the file cannot be opened or written (CANTOPEN, READONLY: a read-only
filesystem...), and the file under the path was deleted or replaced. Anything else (a constraint,
bad SQL, a corrupt file) is :class:`StorageError`; a duplicate ``external_task_id`` is the
:class:`Conflict` the API answers 409 for.
"""

from __future__ import annotations

import sqlite3

from service.errors import Conflict, StorageError, StorageUnavailable

# primary result codes (the low byte of an extended code such as SQLITE_IOERR_WRITE)
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
    }
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used now rather than that the work failed."""
    if isinstance(exc, StorageUnavailable):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _UNAVAILABLE_CODES
    return isinstance(exc, OSError)  # the file itself: stat, mkdir, open


def translate(exc: BaseException, doing: str) -> StorageError | Conflict:
    """The project's error for ``exc``, raised while ``doing`` (e.g. "SQLite write")."""
    if isinstance(exc, StorageError | Conflict):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        error: StorageError | Conflict = _integrity_error(exc)
    elif is_unavailable(exc):
        error = StorageUnavailable(f"{doing} failed, the database is unavailable: {exc}")
    else:
        error = StorageError(f"{doing} failed: {exc}")
    error.__cause__ = exc
    return error


def _integrity_error(exc: sqlite3.IntegrityError) -> StorageError | Conflict:
    """Conflict for a duplicate external_task_id (the one the API answers 409 for)."""
    if "tasks.external_task_id" in str(exc):
        return Conflict("external_task_id already exists")
    return StorageError(f"SQLite constraint failed: {exc}")
