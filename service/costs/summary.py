"""``GET /v1/costs`` and ``omnihook costs``: estimate against billed, grouped, and the budgets.

Pure: it is handed the tasks (created in the range asked for) and adds them up. Estimates are
in the price table's currency; what was billed is as the provider reports it:
``final_unit_deduction`` (Kling's units, also a task's ``cost``) and ``final_balance_deduction``
(what the account's balance paid). ``comparable`` says whether the billed units are in the
estimates' currency (official Kling), so that the two can be set against each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.costs.amounts import decimal_text
from service.costs.budgets import Budget, windows_at
from storage.records import TaskRecord
from storage.spending import PLAIN_AMOUNT, Spending, committed_amount, in_window, scope_text

#: How tasks are grouped: by UTC day of creation, by model, or by a metadata key's value.
GROUPINGS = ("day", "model")
METADATA_PREFIX = "metadata."


@dataclass
class Group:
    key: str
    tasks: int = 0
    estimated: Decimal = Decimal(0)
    unpriced: int = 0  # tasks without an estimate
    billed_units: Decimal = Decimal(0)
    billed_balance: Decimal = Decimal(0)
    billed_tasks: int = 0  # tasks the provider reported a cost for
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, task: TaskRecord) -> None:
        self.tasks += 1
        self.statuses[task.status.value] = self.statuses.get(task.status.value, 0) + 1
        amount = (task.estimate or {}).get("amount")
        if amount is None:
            self.unpriced += 1
        else:
            self.estimated += Decimal(str(amount))
        units = _plain(task.cost)
        balance = _plain((task.billing or {}).get("final_balance_deduction"))
        if units is not None or balance is not None:
            self.billed_tasks += 1
        self.billed_units += units or 0
        self.billed_balance += balance or 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tasks": self.tasks,
            "statuses": dict(sorted(self.statuses.items())),
            "estimated": decimal_text(self.estimated),
            "unpriced_tasks": self.unpriced,
            "billed_tasks": self.billed_tasks,
            "billed_units": decimal_text(self.billed_units),
            "billed_balance": decimal_text(self.billed_balance),
        }


def _plain(value: Any) -> Decimal | None:
    if isinstance(value, str) and PLAIN_AMOUNT.match(value):
        return Decimal(value)
    return None


def check_grouping(by: str) -> str:
    """``by`` when it is a grouping this summary knows; ValueError saying which ones it does."""
    key = by.removeprefix(METADATA_PREFIX)
    if by in GROUPINGS or (by.startswith(METADATA_PREFIX) and key):
        return by
    raise ValueError("by must be day, model or metadata.KEY (e.g. metadata.owner)")


def group_key(task: TaskRecord, by: str) -> str | None:
    if by == "day":
        return task.created_at.strftime("%Y-%m-%d")
    if by == "model":
        return task.model_name
    key = by.removeprefix(METADATA_PREFIX)
    if key not in task.metadata:
        return None
    return scope_text(task.metadata[key])


def summarise(tasks: Iterable[TaskRecord], by: str) -> list[dict[str, Any]]:
    """The groups of ``tasks`` by ``by``, in key order; tasks without the metadata key under
    ``(none)``."""
    groups: dict[str, Group] = {}
    for task in tasks:
        key = group_key(task, by) or "(none)"
        groups.setdefault(key, Group(key)).add(task)
    return [groups[key].as_dict() for key in sorted(groups)]


def budget_status(
    budgets: Sequence[Budget],
    tasks: Sequence[TaskRecord],
    now: datetime,
    *,
    billed_counts: bool,
    currency: str,
) -> list[dict[str, Any]]:
    """Each budget's current window with what it has spent (the rule submissions are held to),
    ``tasks`` holding at least those created in the current month; a per-key budget once per
    value met."""
    status = []
    for budget in budgets:
        scopes: list[dict[str, Any]] = [{}]
        if budget.metadata_key is not None:
            values = {
                scope_text(task.metadata[budget.metadata_key])
                for task in tasks
                if budget.metadata_key in task.metadata
            }
            scopes = [{budget.metadata_key: value} for value in sorted(values)]
        for metadata in scopes:
            [window] = windows_at([budget], now, metadata)
            spending = Spending(
                window.start, window.end, budget.metadata_key, window.scope, billed_counts
            )
            spent = sum(
                (
                    committed_amount(task, billed_counts=billed_counts)
                    for task in tasks
                    if in_window(task, spending)
                ),
                Decimal(0),
            )
            status.append(
                {
                    "budget": budget.name,
                    "window": window.key,
                    "scope": window.scope,
                    "limit": decimal_text(budget.limit),
                    "spent": decimal_text(spent),
                    "percent": float(spent * 100 / budget.limit),
                    "currency": currency,
                }
            )
    return status


def total_of(tasks: Iterable[TaskRecord]) -> dict[str, Any]:
    group = Group("total")
    for task in tasks:
        group.add(task)
    return group.as_dict()
