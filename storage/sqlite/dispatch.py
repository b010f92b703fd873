"""The write of one event's dispatch in the SQLite backend (``Storage.record_dispatch``).

A unit of the writer (:mod:`storage.sqlite.writer`), a plain function of the ``sqlite3`` connection,
run in one transaction: handler jobs by their dedupe keys, then each delivery that is new (its
(event, endpoint) pair is unique) and whose endpoint still exists, with its job, and the end of the
dispatch job, fenced by its lease.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from storage.base import JobEnd
from storage.records import EventDispatch
from storage.sqlite.jobs import INSERT_JOB, job_end_step
from storage.sqlite.rows import DELIVERY_COLUMNS, delivery_params, job_row, placeholders

_EVENT_EXISTS = "SELECT 1 FROM events WHERE id = ?"
# a delivery whose pair is already there (a dispatch run again) or whose endpoint was deleted
# since it was chosen inserts nothing, and then neither does its job
_INSERT_NEW_DELIVERY = (
    f"INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) "
    f"SELECT {placeholders(DELIVERY_COLUMNS)} "
    "WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = :endpoint_id) "
    "ON CONFLICT (event_id, endpoint_id) DO NOTHING"
)


def dispatch_writer(
    dispatch: EventDispatch, job_end: JobEnd | None
) -> Callable[[sqlite3.Connection], bool]:
    """The statements of ``record_dispatch``, for a transaction that is open: the function
    answers whether it added jobs."""
    handler_jobs = [job_row(job) for job in dispatch.handler_jobs]
    deliveries = [(delivery_params(d), job_row(job)) for d, job in dispatch.deliveries]
    end = None if job_end is None else job_end_step(job_end)

    def write(raw: sqlite3.Connection) -> bool:
        added = False
        if raw.execute(_EVENT_EXISTS, (dispatch.event.id,)).fetchone() is not None:
            added = raw.executemany(INSERT_JOB, handler_jobs).rowcount > 0
            for delivery, job in deliveries:
                if raw.execute(_INSERT_NEW_DELIVERY, delivery).rowcount == 1:
                    raw.execute(INSERT_JOB, job)
                    added = True
        # else the event is gone with its task: nothing to pass on, the job ends all the same
        if end is not None:
            raw.execute(*end)
        return added

    return write
