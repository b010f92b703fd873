"""The admission queue's metrics, read at each scrape: how many tasks wait, how many are in
flight per model against the slots configured, and whether this process holds admissions
back (the provider said it was full)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.submit.admission.pace import AdmissionPace
from storage.admission import Occupancy, SlotLimits

ACCOUNT = "*"  # the model label of the account's own numbers (all models together)


class AdmissionCollector(Collector):
    def __init__(self, occupancy: Occupancy, limits: SlotLimits, pace: AdmissionPace) -> None:
        self._occupancy = occupancy
        self._limits = limits
        self._pace = pace

    def collect(self) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "omnihook_tasks_queued", "Tasks waiting for a free provider slot (status queued)"
        )
        queued.add_metric([], float(self._occupancy.queued))
        yield queued
        in_flight = GaugeMetricFamily(
            "omnihook_tasks_in_flight",
            "Tasks holding a provider slot (pending, submitted, processing), by model "
            f"({ACCOUNT!r}: all)",
            labels=["model"],
        )
        in_flight.add_metric([ACCOUNT], float(self._occupancy.in_flight_total))
        for model, count in sorted(self._occupancy.in_flight.items()):
            in_flight.add_metric([model], float(count))
        yield in_flight
        slots = GaugeMetricFamily(
            "omnihook_provider_slots",
            f"OMNIHOOK_PROVIDER_CONCURRENCY, by model ({ACCOUNT!r}: the account); absent: "
            "no limit of ours",
            labels=["model"],
        )
        if self._limits.total is not None:
            slots.add_metric([ACCOUNT], float(self._limits.total))
        for model, count in sorted(self._limits.per_model.items()):
            slots.add_metric([model], float(count))
        yield slots
        held = GaugeMetricFamily(
            "omnihook_admission_held_seconds",
            "Seconds before this process admits queued tasks again (the provider said full)",
        )
        held.add_metric([], self._pace.held_for())
        yield held
        full = CounterMetricFamily(
            "omnihook_provider_full_answers",
            "Creates this process sent that the provider refused for want of room (1303/1302)",
        )
        full.add_metric([], float(self._pace.full_answers))
        yield full


def admission_exposition(occupancy: Occupancy, limits: SlotLimits, pace: AdmissionPace) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AdmissionCollector(occupancy, limits, pace))
    return generate_latest(registry)
