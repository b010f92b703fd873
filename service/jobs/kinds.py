"""The kinds of durable jobs, and how to make one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.ids import new_id
from storage.records import DELIVERY_JOB_KIND, JobRecord

INBOX = "inbox"  # read one stored notification and apply it
SUBMIT = "submit"  # finish a submission whose create answer was lost
SYNC = "sync"  # ask the provider where a task stands and apply the answer
DOWNLOAD = "download"  # fetch one video into the media directory
DISPATCH = "dispatch"  # pass one new event on: its handler runs and webhook deliveries
HANDLER = "handler"  # run one handler plugin on one event (made by a dispatch)
DELIVERY = DELIVERY_JOB_KIND  # attempt one outgoing webhook delivery (made by a dispatch)

ALL_KINDS = (INBOX, SUBMIT, SYNC, DOWNLOAD, DISPATCH, HANDLER, DELIVERY)


def new_job(
    kind: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    task_id: str | None = None,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
) -> JobRecord:
    return JobRecord(
        id=new_id("job"),
        kind=kind,
        payload=payload,
        run_at=run_at or now,
        created_at=now,
        updated_at=now,
        task_id=task_id,
        dedupe_key=dedupe_key,
    )
