"""A submission's cost: its estimate, and the budgets it must stay within.

The estimate is made from the task's stored provider body before anything is stored. The
budgets the task counts in (:func:`~service.costs.budgets.windows_at`) are added up by the
storage inside the transaction that stores the task (:meth:`storage.base.Storage.submit_task`),
serialised against every other submission, so two submissions at once cannot both take the
last of a budget; :class:`BudgetGuard` is what that transaction calls with the sums. The levels
a submission reaches are announced afterwards by ``budget.threshold`` events on its task.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

from service.apply.events import BUDGET_THRESHOLD
from service.apply.lifecycle import Plan
from service.costs.budgets import (
    BudgetCheck,
    BudgetWindow,
    ThresholdCrossing,
    check_submission,
    windows_at,
)
from service.costs.estimate import CostEstimate, estimate_cost
from service.errors import PriceUnknown
from service.services import Services
from storage.records import TaskChange, TaskRecord, VideoRecord
from storage.spending import Spending

log = logging.getLogger(__name__)


def estimate_of(services: Services, task: TaskRecord) -> CostEstimate | PriceUnknown:
    """The task's estimate, or why the price table cannot price it."""
    try:
        return estimate_cost(task.request, services.settings.provider, services.prices)
    except PriceUnknown as exc:
        log.info("no estimate for %s: %s", task.id, exc, extra={"action": "costs.unpriced"})
        return exc


class BudgetGuard:
    """The budget windows one new task counts in; called with what each has spent."""

    def __init__(
        self, services: Services, windows: list[BudgetWindow], estimate: CostEstimate
    ) -> None:
        self._estimate = estimate
        self.windows = windows
        billed = services.prices.final_cost_comparable
        self.spending = [
            Spending(w.start, w.end, w.budget.metadata_key, w.scope, billed_counts=billed)
            for w in self.windows
        ]
        self.checks: list[BudgetCheck] = []

    def __call__(self, sums: list[Decimal]) -> None:
        """Raises BudgetExceeded when the task would take a window past its limit."""
        spent = list(zip(self.windows, sums, strict=True))
        self.checks = check_submission(spent, self._estimate.amount, self._estimate.currency)

    @property
    def crossings(self) -> list[ThresholdCrossing]:
        return [crossing for check in self.checks for crossing in check.crossed]


def budget_guard(
    services: Services, task: TaskRecord, estimate: CostEstimate | PriceUnknown
) -> BudgetGuard | None:
    """The guard of a task under at least one budget, None when none applies to it. A task a
    budget applies to but that cannot be priced is refused (its PriceUnknown): a budget
    unpriced tasks slip past would be no budget."""
    windows = windows_at(services.settings.budgets, task.created_at, task.metadata)
    if not windows:
        return None
    if isinstance(estimate, PriceUnknown):
        raise estimate
    return BudgetGuard(services, windows, estimate)


async def announce_thresholds(
    services: Services, task_id: str, crossings: list[ThresholdCrossing]
) -> None:
    """``budget.threshold`` for each level the task's submission reached, on the task."""
    if not crossings:
        return
    for crossing in crossings:
        log.warning(
            "budget %s reached %d %% (%s of %s %s)",
            crossing.window.key,
            crossing.level,
            crossing.total,
            crossing.window.budget.limit,
            crossing.currency,
            extra={"action": "budget.threshold", "task_id": task_id},
        )

    def planner(task: TaskRecord, videos: list[VideoRecord]) -> Plan:
        now = services.clock()
        events, jobs = [], []
        for crossing in crossings:
            event, handler_jobs = services.emitter.emit(
                BUDGET_THRESHOLD, task=task, videos=videos, now=now, budget=crossing.as_dict()
            )
            events.append(event)
            jobs += handler_jobs
        change = TaskChange(task=replace(task), events=events, jobs=jobs)
        return Plan(change, f"{len(events)} budget thresholds reached")

    await services.change_task(task_id, planner)
