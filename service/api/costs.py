"""``GET /v1/costs``: what tasks were estimated to cost and what the provider billed, grouped
by day, model or a metadata key, with each budget's current window (:mod:`service.costs`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.query import BadQuery
from service.api.tasks import services_of
from service.clock import isoformat
from service.costs.summary import budget_status, check_grouping, summarise, total_of
from service.services import Services
from storage.base import Storage
from storage.records import TaskRecord

PAGE = 500
MAX_TASKS = 100_000  # a summary reads at most this many tasks; beyond, it says it stopped


async def costs(request: Request) -> Response:
    services = services_of(request)
    now = services.clock()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    params = request.query_params
    since = _day(params, "since") or month_start
    until = _day(params, "until") or _midnight_after(now)
    if until <= since:
        raise BadQuery("until must come after since")
    try:
        by = check_grouping(params.get("by", "day"))
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
    tasks, truncated = await tasks_created(services.storage, since, until)
    return JSONResponse(
        {
            "since": isoformat(since),
            "until": isoformat(until),
            "by": by,
            "currency": services.prices.currency,
            # whether billed_units are in the estimates' currency (then they can be compared)
            "comparable": services.prices.final_cost_comparable,
            "truncated": truncated,
            "total": total_of(tasks),
            "groups": summarise(tasks, by),
            "budgets": await _budgets(
                services, now, month_start, None if truncated else (since, until, tasks)
            ),
        }
    )


async def _budgets(
    services: Services,
    now: datetime,
    month_start: datetime,
    read: tuple[datetime, datetime, list[TaskRecord]] | None,
) -> list[Any]:
    """Each budget's current window; from the tasks already ``read`` (their range and them)
    when they hold this month's (the default range does), else read again."""
    budgets = services.settings.budgets
    if not budgets:
        return []
    if read is not None and read[0] <= month_start and read[1] >= _midnight_after(now):
        this_month = read[2]
    else:
        this_month, _ = await tasks_created(services.storage, month_start, _midnight_after(now))
    return budget_status(
        budgets,
        this_month,
        now,
        billed_counts=services.prices.final_cost_comparable,
        currency=services.prices.currency,
    )


async def tasks_created(
    storage: Storage, since: datetime, until: datetime
) -> tuple[list[TaskRecord], bool]:
    """Tasks created in [since, until), newest first, page by page; and whether it stopped at
    :data:`MAX_TASKS`."""
    found: list[TaskRecord] = []
    before = (until, "")  # the keyset cursor: created before ``until``
    while len(found) < MAX_TASKS:
        page = await storage.list_tasks(limit=PAGE, before=before)
        for task in page:
            if task.created_at < since:
                return found, False
            found.append(task)
        if len(page) < PAGE:
            return found, False
        before = (page[-1].created_at, page[-1].id)
    return found, True


def _day(params: QueryParams, name: str) -> datetime | None:
    """A ``YYYY-MM-DD`` parameter as that UTC midnight."""
    if name not in params:
        return None
    try:
        day = date.fromisoformat(params[name])
    except ValueError:
        raise BadQuery(f"{name} must be a date, YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _midnight_after(now: datetime) -> datetime:
    today = now.astimezone(UTC)
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
