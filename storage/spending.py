"""What a budget window has spent, added up by the storage inside a submission's transaction.

The rule (``service.costs.budgets``): each task created in the window, and under the budget
(its metadata's value for a per-key budget), counts its billed cost when the provider reported
one in the budget's currency (``billed_counts``), else nothing when it failed before anything
was sent (no provider task id), else its estimate. The SQL backends add it up in SQL; the
in-memory one, and the tests, with :func:`committed_amount`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from storage.records import TaskRecord, TaskStatus

# A reported cost the sums take: a plain decimal ("7.2"); anything else leaves the estimate.
PLAIN_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
# The metadata keys a per-key budget may name: they go into JSON paths.
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Spending:
    """One budget window to add up: tasks created in [start, end), with ``metadata[key]``
    equal to ``scope`` when a key is named."""

    start: datetime
    end: datetime
    metadata_key: str | None = None
    scope: str | None = None
    billed_counts: bool = False

    def __post_init__(self) -> None:
        if self.metadata_key is not None and not METADATA_KEY.match(self.metadata_key):
            raise ValueError(f"metadata key {self.metadata_key!r}: letters, digits, _ . - only")


def scope_text(value: Any) -> str:
    """A metadata value as the sums compare it: a string as it is, else its JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def in_window(task: TaskRecord, spending: Spending) -> bool:
    if not spending.start <= task.created_at < spending.end:
        return False
    if spending.metadata_key is None:
        return True
    if spending.metadata_key not in task.metadata:
        return False
    return scope_text(task.metadata[spending.metadata_key]) == spending.scope


def committed_amount(task: TaskRecord, *, billed_counts: bool) -> Decimal:
    if billed_counts and task.cost is not None and PLAIN_AMOUNT.match(task.cost):
        return Decimal(task.cost)
    if task.status == TaskStatus.FAILED and task.provider_task_id is None:
        return Decimal(0)
    if task.estimate is None or task.estimate.get("amount") is None:
        return Decimal(0)
    return Decimal(str(task.estimate["amount"]))
