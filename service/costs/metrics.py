"""Cost metrics, read from the database at each scrape: what today and this month are estimated
to cost, what they count against the budgets (billed costs where the provider reports them in
the table's currency), and the budgets' limits. Per-key budgets are left out: one series per
metadata value would grow without bound."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.costs.budgets import Budget, Period, windows_at
from service.costs.price_table import PriceTable
from storage.base import Storage
from storage.spending import Spending

PERIODS = (Period.DAY, Period.MONTH)


class CostCollector(Collector):
    def __init__(
        self,
        currency: str,
        estimated: dict[str, Decimal],
        spent: dict[str, Decimal],
        limits: dict[str, Decimal],
    ) -> None:
        self._currency = currency
        self._estimated, self._spent, self._limits = estimated, spent, limits

    def collect(self) -> Iterator[Metric]:
        labels = ["period", "currency"]
        estimated = GaugeMetricFamily(
            "omnihook_cost_estimated",
            "Estimated cost of the tasks created this UTC day or month (failed before sending: 0)",
            labels=labels,
        )
        spent = GaugeMetricFamily(
            "omnihook_cost_spent",
            "What this UTC day or month counts against its budget: billed where the provider "
            "reports it in the table's currency, else estimated",
            labels=labels,
        )
        for period, amount in self._estimated.items():
            estimated.add_metric([period, self._currency], float(amount))
        for period, amount in self._spent.items():
            spent.add_metric([period, self._currency], float(amount))
        limit = GaugeMetricFamily(
            "omnihook_budget_limit",
            "OMNIHOOK_BUDGET_DAILY / _MONTHLY: the most a UTC day or month may spend",
            labels=labels,
        )
        for period, amount in self._limits.items():
            limit.add_metric([period, self._currency], float(amount))
        yield from (estimated, spent, limit)


async def cost_exposition(
    storage: Storage, prices: PriceTable, budgets: Sequence[Budget], now: datetime
) -> bytes:
    """The cost gauges at ``now`` (``budgets``: the configured ones, for their limits).
    Raises StorageError when the database cannot be read."""
    billed = prices.final_cost_comparable
    windows = {
        period.value: window
        for period in PERIODS
        for window in windows_at([Budget(Decimal(1), period)], now.astimezone(UTC), {})
    }
    queries = [Spending(w.start, w.end) for w in windows.values()]
    queries += [Spending(w.start, w.end, billed_counts=billed) for w in windows.values()]
    sums = await storage.spending(queries)
    periods = list(windows)
    estimated = dict(zip(periods, sums[: len(periods)], strict=True))
    spent = dict(zip(periods, sums[len(periods) :], strict=True))
    limits = {
        budget.period.value: budget.limit for budget in budgets if budget.metadata_key is None
    }
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CostCollector(prices.currency, estimated, spent, limits))
    return generate_latest(registry)
