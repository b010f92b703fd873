"""Reconciliation: callbacks can be lost, so a task with no news for a while is queried.

Every pass lists unfinished tasks quiet for ``OMNIHOOK_RECONCILE_AFTER`` seconds and enqueues
one ``sync`` job each, spread over time rather than in a burst. The dedupe key names the news it
follows up, so several workers enqueue one job per quiet spell, and a query that brings news
(even "still processing") starts a new spell.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from service.jobs.kinds import SYNC, new_job
from service.services import Services

log = logging.getLogger(__name__)

SPACING = timedelta(seconds=0.5)  # between the queries of one pass


async def enqueue_overdue_syncs(services: Services, *, limit: int = 200) -> int:
    now = services.clock()
    quiet_since = now - timedelta(seconds=services.settings.reconcile_after)
    stale = await services.storage.list_stale_tasks(quiet_since=quiet_since, limit=limit)
    jobs = []
    for position, task in enumerate(stale):
        last_news = task.last_news_at or task.updated_at
        jobs.append(
            new_job(
                SYNC,
                {"task_id": task.id, "reason": "no news since " + last_news.isoformat()},
                now=now,
                task_id=task.id,
                dedupe_key=f"reconcile:{task.id}:{last_news.isoformat()}",
                run_at=now + SPACING * position,
            )
        )
    if jobs:
        await services.storage.enqueue(jobs)
        services.jobs_ready.set()
        log.info("%d quiet tasks will be queried", len(jobs), extra={"action": "reconcile"})
    return len(jobs)
