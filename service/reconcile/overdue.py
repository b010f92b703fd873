"""Reconciliation: callbacks can be lost, so a task with no news for a while is queried.

Every pass lists at most ``OMNIHOOK_RECONCILE_BATCH`` unfinished tasks quiet for
``OMNIHOOK_RECONCILE_AFTER`` seconds (oldest news first) and enqueues one ``sync`` job each,
spread over time rather than in a burst. The dedupe key names the news it follows up, so
several workers enqueue one job per quiet spell, and a query that brings news (even "still
processing") starts a new spell.

A task still unfinished ``OMNIHOOK_TASK_DEADLINE`` seconds after its submission gets one more
query under its own key (``reconcile:{id}:deadline``); unless the provider then reports a final
state, the task fails with ``task.timed_out`` (see :func:`service.apply.lifecycle.plan_timed_out`).

When the provider rate-limits us (1302/1303), a ``sync`` job holds the process's
:class:`~service.kling.backoff.ProviderBackoff` (``Services.provider_backoff``) until the
provider's ``Retry-After`` (at least a few seconds): meanwhile other ``sync`` jobs wait
without calling the provider and passes schedule nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from service.jobs.kinds import SYNC, new_job
from service.services import Services
from storage.records import JobRecord, TaskRecord

log = logging.getLogger(__name__)

SPACING = timedelta(seconds=0.5)  # between the queries of one pass
MIN_RATE_LIMIT_BACKOFF = 5.0  # seconds, when a 1302/1303 answer names no Retry-After


def is_overdue(services: Services, task: TaskRecord, now: datetime) -> bool:
    """Whether the task has been unfinished for longer than ``OMNIHOOK_TASK_DEADLINE`` since it
    was sent (time spent waiting in the admission queue does not count)."""
    sent = task.admitted_at or task.created_at
    return now - sent >= timedelta(seconds=services.settings.task_deadline)


async def enqueue_overdue_syncs(services: Services, *, limit: int | None = None) -> int:
    """One pass: the number of ``sync`` jobs enqueued (or already there for the same spell)."""
    now = services.clock()
    waiting = services.provider_backoff.remaining(now)
    if waiting:
        log.info(
            "provider rate-limited us: no queries scheduled for %.0f s",
            waiting,
            extra={"action": "reconcile.backoff"},
        )
        return 0
    quiet_since = now - timedelta(seconds=services.settings.reconcile_after)
    batch = limit if limit is not None else services.settings.reconcile_batch
    stale = await services.storage.list_stale_tasks(quiet_since=quiet_since, limit=batch)
    jobs = [_sync_job(services, task, now, position) for position, task in enumerate(stale)]
    if jobs:
        await services.storage.enqueue(jobs)
        services.jobs_ready.set()
        log.info("%d quiet tasks will be queried", len(jobs), extra={"action": "reconcile"})
    return len(jobs)


def _sync_job(services: Services, task: TaskRecord, now: datetime, position: int) -> JobRecord:
    if is_overdue(services, task, now):
        key = f"reconcile:{task.id}:deadline"
        reason = "deadline passed"
    else:
        last_news = (task.last_news_at or task.updated_at).isoformat()
        key = f"reconcile:{task.id}:{last_news}"
        reason = f"no news since {last_news}"
    return new_job(
        SYNC,
        {"task_id": task.id, "reason": reason},
        now=now,
        task_id=task.id,
        dedupe_key=key,
        run_at=now + SPACING * position,
    )
