"""The SQLite backend's reads: a connection of their own, on a thread of its own.

In WAL mode a reader sees the last commit and never waits for the writer, so reads neither see
a batch's uncommitted writes nor break up the writer's group commits. Each read is one call of
the thread (:mod:`storage.sqlite.thread`): the query and its ``fetchall`` in one trip, in
autocommit (each statement sees the last committed snapshot).

The thread takes the reads queued, up to :data:`READ_BATCH`, runs them one after another and
answers them together: one wake-up of the event loop for them all. Answered one by one, an
inbox job's mix of point reads and writes ran at about 0.6 of the rate it runs at so (a
concurrent loop of ``get_task``, ``list_videos`` and ``apply``); a read waits at most for the
few small reads taken with it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from storage.sqlite.thread import Call, ConnectionThread, Function, R, translate

READ_BATCH = 16


class Reader(ConnectionThread):
    batch_size = READ_BATCH

    async def run(self, function: Function[R]) -> R:
        return await self.call(function, deadline=0.0)  # reads wait for no write lock

    def _serve(self, conn: sqlite3.Connection, calls: list[Call[Any]]) -> list[Call[Any]]:
        for call in calls:
            if call.abandoned:
                continue
            try:
                call.value, call.error = call.function(conn), None
            except Exception as exc:
                call.fail(translate(exc, "SQLite read"))
        return []
