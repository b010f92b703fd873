"""Point reads on the event loop's own thread, for the hottest read of a busy worker.

A read through aiosqlite is a trip to its thread and back. On a machine whose cores are busy
(the worker's own event loop, SQLite's writer, the endpoints it posts to) that trip waits for
the thread to be scheduled and to take the GIL: measured at ~3.5 ms for a query that itself
takes ~0.1 ms (``tests/benchmarks/bench_webhooks.py``), and a delivery job holds its worker
slot all that time. This reader runs such a query directly, in WAL mode, on a connection of its
own that never waits: no busy timeout (a reader of a WAL database is only ever held up by rare
recovery or checkpoint locks) and read-only. Whenever it cannot answer at once (busy, any
error, an in-memory database that a second connection would not see), it answers None and the
caller reads through the thread as before. Only for small indexed lookups: a long query here
would stall every coroutine of the process.
"""

from __future__ import annotations

import sqlite3
from typing import Any


class InlineReader:
    """Answers only while its storage is open (between :meth:`start` and :meth:`close`)."""

    def __init__(self, path: str) -> None:
        # ":memory:" and URIs are another database (or another mode) for a second connection
        self._path = path if path != ":memory:" and not path.startswith("file:") else None
        self._conn: sqlite3.Connection | None = None
        self._started = False

    def start(self) -> None:
        self._started = True

    def fetch(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row] | None:
        """The rows of one query, or None: read them through the thread instead."""
        if self._path is None or not self._started:
            return None
        try:
            if self._conn is None:
                self._conn = _connect(self._path)
            return self._conn.execute(sql, parameters).fetchall()
        except sqlite3.Error:
            self._drop()  # opened again at the next read
            return None

    def close(self) -> None:
        self._started = False
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _connect(path: str) -> sqlite3.Connection:
    # check_same_thread: it is only used on the event loop's thread, but closed by whoever
    # closes the storage
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn
