"""What asyncpg's errors mean to omnihook: a lost connection, a conflict, or a failure.

Every exception that leaves the driver while the PostgreSQL backend works is translated here,
whatever its class: asyncpg raises much besides ``PostgresError`` and ``InterfaceError``
(``InternalClientError`` when a connection dies under the pool, the socket's ``OSError``, a
timeout...), and none may reach the callers. Two kinds matter to them:

- the connection is gone or cannot be made (terminated backend, server shutting down or not
  accepting connections yet, too many connections, refused or reset socket, timeout, the
  driver's own state lost with it): :class:`StorageUnavailable`, transient; the pool
  (:mod:`storage.postgres.pool`) first runs the work again on a fresh connection;
- anything else (a constraint, bad SQL, a configuration the server refuses): :class:`StorageError`,
  except a duplicate ``external_task_id``, which is the :class:`Conflict` the API answers 409 for.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from service.errors import Conflict, StorageError, StorageUnavailable

_EXTERNAL_ID_CONSTRAINT = "tasks_external_task_id_key"

# the connection is gone (or never came): running the work again on another one may succeed
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.AdminShutdownError,  # 57P01: pg_terminate_backend, a fast shutdown
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: starting up, in recovery
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.InternalClientError,  # the driver's bookkeeping of a connection that died under it
    OSError,  # refused, reset, unreachable, DNS (ConnectionError is one)
    TimeoutError,  # connecting, or a command timeout (asyncio.TimeoutError is this one)
)


def connection_gone(conn: Any) -> bool:
    """Whether ``conn`` (a pooled connection, or None before one was had) can no longer be used:
    closed, or handed back to its pool because it was lost."""
    if conn is None:
        return True
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # a proxy the pool took back when its connection died
        return True


def is_connection_lost(exc: BaseException, conn: Any = None) -> bool:
    """Whether ``exc`` means the connection failed rather than the work: for any error raised
    while ``conn`` was in use, a closed ``conn`` says so too."""
    if isinstance(exc, _CONNECTION_LOST):
        return True
    return conn is not None and isinstance(exc, asyncpg.InterfaceError) and connection_gone(conn)


def translate(exc: Exception, *, lost: bool) -> StorageError | Conflict:
    """The project's error for a driver error; ``lost``: what :func:`is_connection_lost` said
    of it (while its connection could still be asked)."""
    if lost:
        return StorageUnavailable(f"PostgreSQL connection lost: {type(exc).__name__}: {exc}")
    if (
        isinstance(exc, asyncpg.UniqueViolationError)
        and getattr(exc, "constraint_name", None) == _EXTERNAL_ID_CONSTRAINT
    ):
        return Conflict("external_task_id already exists")
    return StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}")
