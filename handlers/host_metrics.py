"""Prometheus metrics of one handler host, read from its live state at each scrape.

The host keeps plain counts (``HostCounts``); ``HostCollector`` turns a snapshot of them into
metric families, in a registry of the host's own (``HandlerHost.registry``), which ``/metrics``
can expose next to the app's. The loop metrics count the loops of every handler together (each
async handler has a loop of its own); the thread metrics, the one pool all sync handlers share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class HostSnapshot:
    threads: int = 0  # sync handler threads alive, abandoned ones included
    threads_busy: int = 0  # sync runs in progress, not abandoned
    threads_abandoned: int = 0  # threads still running a run that timed out
    loops: int = 0  # current handler loops alive, one per async handler that has run
    loops_abandoned: int = 0  # replaced handler loops (of any handler) still blocked
    timeouts_sync: int = 0
    timeouts_async: int = 0
    thread_waits_expired: int = 0  # sync runs that timed out before a thread (share) was free
    loop_blocks: int = 0  # times the watchdog found a handler loop blocked
    loops_replaced: int = 0


class HostCounts:
    """The host's counters; incremented from the main loop and the watchdog's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = HostSnapshot()

    def add(self, **increments: int) -> None:
        with self._lock:
            current = self._counts
            self._counts = replace(
                current, **{name: getattr(current, name) + n for name, n in increments.items()}
            )

    def snapshot(self) -> HostSnapshot:
        return self._counts


class HostCollector(Collector):
    def __init__(self, snapshot: Callable[[], HostSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        now = self._snapshot()
        yield _gauge(
            "omnihook_handler_threads",
            "Sync handler threads alive, abandoned ones included",
            now.threads,
        )
        yield _gauge(
            "omnihook_handler_threads_busy",
            "Sync handler runs in progress (not abandoned)",
            now.threads_busy,
        )
        yield _gauge(
            "omnihook_handler_threads_abandoned",
            "Sync handler threads still running a run that timed out (they cannot be stopped)",
            now.threads_abandoned,
        )
        yield _gauge(
            "omnihook_handler_loops",
            "Handler loops in use, one per async handler that has run (abandoned ones aside)",
            now.loops,
        )
        yield _gauge(
            "omnihook_handler_loops_abandoned",
            "Replaced handler loops whose thread a blocking async handler still holds",
            now.loops_abandoned,
        )
        timeouts = CounterMetricFamily(
            "omnihook_handler_timeouts",
            "Handler runs that outlived their timeout, by kind of handler (sync, async)",
            labels=["kind"],
        )
        timeouts.add_metric(["sync"], now.timeouts_sync)
        timeouts.add_metric(["async"], now.timeouts_async)
        yield timeouts
        yield _counter(
            "omnihook_handler_thread_waits_expired",
            "Sync handler runs whose timeout passed while they waited for a free thread (or share)",
            now.thread_waits_expired,
        )
        yield _counter(
            "omnihook_handler_loop_blocks",
            "Times a handler loop (of any handler) was found blocked (blocking code in async def)",
            now.loop_blocks,
        )
        yield _counter(
            "omnihook_handler_loops_replaced",
            "Blocked handler loops (of any handler) replaced by a fresh one",
            now.loops_replaced,
        )


def _gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
