"""Budgets: what may be spent per UTC day, per UTC month, and per value of a metadata key.

Settings (amounts in the active price table's currency, :mod:`.price_table`):

- ``OMNIHOOK_BUDGET_DAILY``: the most all tasks may spend in one UTC day;
- ``OMNIHOOK_BUDGET_MONTHLY``: the same per UTC calendar month;
- ``OMNIHOOK_BUDGET_PER_KEY``: comma-separated ``KEY=AMOUNT/day`` or ``KEY=AMOUNT/month``,
  e.g. ``owner=50/day,owner=1000/month,team=500/month``: each distinct value of the task's
  ``metadata[KEY]`` has a budget of its own (``owner`` ``alice`` and ``bob`` 50 a day each).
  A key is letters, digits, ``_``, ``.`` and ``-``. A task without that key is not under that
  budget. A string value is taken as it is, any other JSON value by its compact JSON text
  (``7`` and ``"7"`` are the same owner).

A budget is counted per *window*: a UTC day (``00:00`` to ``24:00``) or a UTC calendar month.
Each window has a stable key, for deduplicating ``budget.threshold`` events:
``daily:2026-12-03``, ``monthly:2026-12``, ``owner=alice:daily:2026-12-03`` (the value is
percent-encoded, so ``:`` and ``=`` in it cannot make two keys alike).

What a window has *spent* (added up by the storage, :mod:`storage.spending`, inside the
submission's transaction): every task created in it (by its ``created_at``, so an estimate and
its later billing fall in the same window) that is under the budget counts

1. its billed cost, once the provider reported one in the table's currency
   (:attr:`PriceTable.final_cost_comparable <service.costs.price_table.PriceTable>`);
2. otherwise nothing if it failed before anything was sent to the provider (refused, or never
   accepted); a task the provider may have seen counts on, since it may be billed;
3. otherwise its estimate: queued, pending, submitted, processing tasks, and finished ones
   whose provider reports no comparable cost.

A submission is refused (:class:`~service.errors.BudgetExceeded`, HTTP 402) when spent plus its
estimate would be *more* than a limit: reaching it exactly is allowed. Thresholds are 50, 80
and 100 % of the limit; a level is *crossed* when the total before was below it and the total
after is at or above it (:func:`thresholds_crossed`), so each level fires once per window if
the caller records which (window key, level) pairs it announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote

from service.costs.amounts import decimal_text, parse_amount
from service.errors import BudgetExceeded
from storage.spending import METADATA_KEY, scope_text

__all__ = [
    "THRESHOLDS",
    "Budget",
    "BudgetCheck",
    "BudgetWindow",
    "Period",
    "ThresholdCrossing",
    "budgets_from",
    "check_submission",
    "parse_per_key_budgets",
    "thresholds_crossed",
    "windows_at",
]

THRESHOLDS: Final = (50, 80, 100)


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"

    @property
    def adjective(self) -> str:
        return "daily" if self is Period.DAY else "monthly"


@dataclass(frozen=True)
class Budget:
    """A limit per window of ``period``; per value of ``metadata_key`` when one is named."""

    limit: Decimal
    period: Period
    metadata_key: str | None = None

    def __post_init__(self) -> None:
        if not self.limit.is_finite() or self.limit <= 0:
            raise ValueError(f"a budget's limit must be more than 0, not {self.limit}")

    @property
    def name(self) -> str:
        """``daily``, ``monthly``, ``owner/daily``..."""
        prefix = f"{self.metadata_key}/" if self.metadata_key is not None else ""
        return prefix + self.period.adjective


@dataclass(frozen=True)
class BudgetWindow:
    """One budget's window that a moment falls in, for one metadata value if per key."""

    budget: Budget
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    scope: str | None  # the metadata value, for a per-key budget
    key: str  # daily:2026-12-03, monthly:2026-12, owner=alice:daily:2026-12-03

    def contains(self, at: datetime) -> bool:
        return self.start <= _utc(at) < self.end


def windows_at(
    budgets: Iterable[Budget], at: datetime, metadata: Mapping[str, Any]
) -> list[BudgetWindow]:
    """The windows a task created at ``at`` with ``metadata`` counts in, one per budget that
    applies to it (a per-key budget applies when ``metadata`` has its key)."""
    moment = _utc(at)
    windows = []
    for budget in budgets:
        scope = None
        if budget.metadata_key is not None:
            if budget.metadata_key not in metadata:
                continue
            scope = scope_text(metadata[budget.metadata_key])
        start, end, label = _period_bounds(budget.period, moment)
        prefix = f"{budget.metadata_key}={quote(scope, safe='')}:" if scope is not None else ""
        key = f"{prefix}{budget.period.adjective}:{label}"
        windows.append(BudgetWindow(budget, start, end, scope, key))
    return windows


def _period_bounds(period: Period, moment: datetime) -> tuple[datetime, datetime, str]:
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if period is Period.DAY:
        return day, day + timedelta(days=1), day.strftime("%Y-%m-%d")
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end, start.strftime("%Y-%m")


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a budget window needs an aware datetime (UTC), not a naive one")
    return at.astimezone(UTC)


@dataclass(frozen=True)
class ThresholdCrossing:
    """A level (50, 80, 100 %) of a budget's window reached; ``dedupe_key`` is one per
    window and level, for announcing ``budget.threshold`` once."""

    window: BudgetWindow
    level: int
    total: Decimal
    currency: str

    @property
    def dedupe_key(self) -> str:
        return f"{self.window.key}:{self.level}"

    def as_dict(self) -> dict[str, Any]:
        """The ``budget.threshold`` event's data: JSON-safe, amounts as decimal strings."""
        return {
            "budget": self.window.budget.name,
            "window": self.window.key,
            "scope": self.window.scope,
            "level": self.level,
            "limit": decimal_text(self.window.budget.limit),
            "spent": decimal_text(self.total),
            "currency": self.currency,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
        }


@dataclass(frozen=True)
class BudgetCheck:
    """A submission allowed in one window: the totals, and the levels it crosses."""

    window: BudgetWindow
    spent: Decimal
    estimate: Decimal
    crossed: tuple[ThresholdCrossing, ...]

    @property
    def total(self) -> Decimal:
        return self.spent + self.estimate


def thresholds_crossed(limit: Decimal, before: Decimal, after: Decimal) -> tuple[int, ...]:
    """The levels of :data:`THRESHOLDS` that ``before`` is below and ``after`` reaches.

    Also for a billed cost that moves a window's total after the submission was allowed.
    """
    return tuple(level for level in THRESHOLDS if before * 100 < limit * level <= after * 100)


def check_submission(
    windows: Iterable[tuple[BudgetWindow, Decimal]], estimate: Decimal, currency: str
) -> list[BudgetCheck]:
    """Each (window, what it has spent) with ``estimate`` added, or BudgetExceeded for the
    first window it would take past its limit. All or nothing: nothing is crossed when refused."""
    checks = []
    for window, already in windows:
        limit = window.budget.limit
        if already + estimate > limit:
            raise BudgetExceeded(
                budget=window.budget.name,
                window=window.key,
                limit=limit,
                spent=already,
                estimate=estimate,
                currency=currency,
            )
        crossed = tuple(
            ThresholdCrossing(window, level, already + estimate, currency)
            for level in thresholds_crossed(limit, already, already + estimate)
        )
        checks.append(BudgetCheck(window, already, estimate, crossed))
    return checks


def parse_per_key_budgets(text: str) -> tuple[Budget, ...]:
    """``owner=50/day,team=500/month`` -> budgets; ValueError naming the part that is wrong."""
    budgets: list[Budget] = []
    seen: set[tuple[str, Period]] = set()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        key, equals, rest = part.partition("=")
        amount_text, slash, period_text = rest.rpartition("/")
        key = key.strip()
        if not equals or not slash:
            raise ValueError(f"{part!r} must read KEY=AMOUNT/day or KEY=AMOUNT/month")
        if not METADATA_KEY.match(key):
            raise ValueError(f"{part!r}: the metadata key must be letters, digits, _ . - only")
        try:
            period = Period(period_text.strip().lower())
        except ValueError:
            raise ValueError(f"{part!r}: the period must be day or month") from None
        try:
            limit = parse_amount(amount_text)
        except ValueError as exc:
            raise ValueError(f"{part!r}: {exc}") from None
        if limit == 0:
            raise ValueError(f"{part!r}: the amount must be more than 0")
        if (key, period) in seen:
            raise ValueError(f"{part!r}: {key} already has a {period.adjective} budget")
        seen.add((key, period))
        budgets.append(Budget(limit, period, key))
    return tuple(budgets)


def budgets_from(
    daily: Decimal | None, monthly: Decimal | None, per_key: str = ""
) -> tuple[Budget, ...]:
    """The budgets the three settings describe, in a stable order."""
    budgets = []
    if daily is not None:
        budgets.append(Budget(daily, Period.DAY))
    if monthly is not None:
        budgets.append(Budget(monthly, Period.MONTH))
    return (*budgets, *parse_per_key_budgets(per_key))
