"""``dispatch`` jobs: pass one new event on, to the handler plugins and the webhook endpoints.

The state change that makes an event writes it with one ``dispatch`` job (a transactional
outbox, :mod:`service.apply.events`); this runner, in the worker, decides what the event causes:

- one ``handler`` job per handler of the *worker's* registry subscribed to its type (dedupe key
  ``handler:{task}:{event key}:{handler}``), so a web process with other plugins, or none
  (``serve --no-worker``), still gets the worker's handler runs;
- one delivery, with its ``delivery`` job, per endpoint that gets it
  (:func:`service.webhooks.routing.endpoints_for`: enabled, subscribed, created by then).

All of it and the job's end are one storage write (``Storage.record_dispatch``), which skips
whatever is already there: a dispatch run again (a crash before its end was recorded, a lost
lease) creates nothing twice. Deliveries keep the event's time as their own (due at once, in
the order of the events), whenever the dispatch ran.

Events written by a version before this one were routed when they were written (their handler
runs and deliveries exist): they have no dispatch job, and need none.
"""

from __future__ import annotations

import logging

from service.errors import StorageError
from service.ids import new_id
from service.jobs.kinds import HANDLER, new_job
from service.jobs.outcome import Ended, RetryLater
from service.retry import RetrySchedule
from service.services import Services
from service.webhooks.routing import endpoints_for
from storage.base import JobEnd
from storage.records import EventDispatch, EventRecord, JobRecord, new_delivery

log = logging.getLogger(__name__)

# A dispatch fails only when the database does. It never gives up: an event left undispatched
# would be lost to its handlers and endpoints (seconds, by the number of failed attempts).
_BACKOFF = (1.0, 5.0, 30.0, 120.0, 600.0, 1800.0)


async def run_dispatch(services: Services, job: JobRecord) -> Ended | None:
    try:
        event = await services.storage.get_event(str(job.payload["event_id"]))
        if event is None:
            # gone with its task (or never written: its key was announced before)
            log.info(
                "event %s to dispatch no longer exists",
                job.payload["event_id"],
                extra={"action": "dispatch.gone", "job_id": job.id},
            )
            return None
        end = JobEnd.of(job, now=services.clock(), retry_at=None, error=None)
        dispatch = await dispatch_event(services, event, end)
    except StorageError as exc:  # retried on the schedule, logged by the worker
        raise RetryLater(f"storage: {exc}") from exc
    log.debug(
        "event %s (%s): %d handler runs, %d deliveries",
        event.id,
        event.type,
        len(dispatch.handler_jobs),
        len(dispatch.deliveries),
        extra={"action": "dispatch.done", "job_id": job.id, "task_id": event.task_id},
    )
    return Ended.RECORDED


async def dispatch_event(
    services: Services, event: EventRecord, job_end: JobEnd | None = None
) -> EventDispatch:
    """Write what ``event`` causes with this process's handlers and the endpoints as they are
    now (and ``job_end``, the end of its dispatch job); answers what was asked to be written
    (whatever was there already is skipped). RetryLater: a type this worker does not know."""
    try:
        handler_names = [handler.name for handler in services.registry.handlers_for(event.type)]
    except ValueError:
        # written by a newer version of omnihook: leave it to a worker that knows the type
        raise RetryLater(f"event type {event.type!r} is unknown to this worker") from None
    endpoints = endpoints_for(event, await services.storage.list_endpoints())
    dispatch = plan_dispatch(event, handler_names, [endpoint.id for endpoint in endpoints])
    await services.storage.record_dispatch(dispatch, job_end)
    if dispatch.handler_jobs or dispatch.deliveries:
        services.jobs_ready.set()  # an in-process worker takes them at once
    return dispatch


def plan_dispatch(
    event: EventRecord, handler_names: list[str], endpoint_ids: list[str]
) -> EventDispatch:
    """What ``event`` causes, for these handlers and endpoints. Each job is due at the event's
    time, as if made with it: the queue keeps the events' order."""
    handler_jobs = [
        new_job(
            HANDLER,
            {"event_id": event.id, "event_type": event.type, "handler": name},
            now=event.timestamp,
            task_id=event.task_id,
            dedupe_key=f"handler:{event.task_id}:{event.key}:{name}",
        )
        for name in handler_names
    ]
    deliveries = [
        new_delivery(event, endpoint_id, delivery_id=new_id("dlv"), job_id=new_id("job"))
        for endpoint_id in endpoint_ids
    ]
    return EventDispatch(event, handler_jobs, deliveries)


def dispatch_schedule(services: Services, job: JobRecord) -> RetrySchedule:
    """Never gives up: the delay grows with the failed attempts up to its last step."""
    steps = max(job.attempts, 1)
    delays = [_BACKOFF[min(n, len(_BACKOFF) - 1)] for n in range(steps)]
    return RetrySchedule.of(delays)
