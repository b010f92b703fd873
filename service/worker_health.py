"""Whether this process's worker can run: what ``/readyz`` and ``omnihook_worker_up`` say.

A process that runs a worker registers one :class:`WorkerHealth` in its services
(``Services.worker_health``; None in a ``serve --no-worker`` process, whose readiness is its
storage alone). Each supervised loop of the worker (:mod:`service.supervise`) has a
:class:`LoopHealth`: the loop beats whenever it completes a round, and the supervisor records
its crashes and restarts. The worker cannot run when:

- a loop is crash-looping: it failed :data:`CRASH_LOOP` times in a row without a round
  completed in between;
- a loop has not beaten for longer than its ``stale_after`` (stuck, e.g. on a hung database);
- leasing jobs has failed for longer than ``storage_grace`` seconds (storage unavailable).

Times are the process's monotonic clock (``clock``), except the wall-clock instants shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CRASH_LOOP = 2  # failures in a row, none of its rounds completed in between
STORAGE_GRACE = 5.0  # seconds leasing may fail before the worker is reported unable to run

Monotonic = Callable[[], float]


def _wall() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class LoopHealth:
    name: str
    stale_after: float  # seconds without a beat after which the loop counts as stuck
    clock: Monotonic
    last_beat: float
    restarts: int = 0
    failures_in_a_row: int = 0
    last_error: str | None = None
    failing_since: str | None = None  # wall clock: the first failure of the current streak

    def beat(self) -> None:
        """One round of the loop completed: it runs."""
        self.last_beat = self.clock()
        self.failures_in_a_row = 0
        self.failing_since = None

    def failed(self, error: str) -> None:
        """The loop ended with ``error``; the supervisor starts it again after a backoff."""
        self.failures_in_a_row += 1
        self.last_error = error
        if self.failing_since is None:
            self.failing_since = _wall()

    def restarted(self) -> None:
        self.restarts += 1

    def problem(self) -> str | None:
        if self.failures_in_a_row >= CRASH_LOOP:
            return (
                f"worker loop {self.name} keeps failing ({self.failures_in_a_row} times in a "
                f"row since {self.failing_since}; last: {self.last_error})"
            )
        quiet = self.clock() - self.last_beat
        if quiet > self.stale_after:
            return f"worker loop {self.name} has not completed a round for {quiet:.0f}s"
        return None

    def view(self) -> dict[str, Any]:
        return {
            "restarts": self.restarts,
            "failures_in_a_row": self.failures_in_a_row,
            "last_error": self.last_error,
            "failing_since": self.failing_since,
            "seconds_since_beat": round(self.clock() - self.last_beat, 3),
        }


@dataclass
class WorkerHealth:
    clock: Monotonic = time.monotonic
    storage_grace: float = STORAGE_GRACE
    loops: dict[str, LoopHealth] = field(default_factory=dict)
    running: bool = False  # between the start and the end of Worker.run
    lease_error: str | None = None
    lease_failing_since: float | None = None  # monotonic
    lease_failing_since_wall: str | None = None

    def loop(self, name: str, *, stale_after: float) -> LoopHealth:
        """The health of loop ``name``, new (a loop started again by a new run)."""
        made = LoopHealth(name, stale_after, self.clock, last_beat=self.clock())
        self.loops[name] = made
        return made

    def lease_failed(self, error: str) -> None:
        self.lease_error = error
        if self.lease_failing_since is None:
            self.lease_failing_since = self.clock()
            self.lease_failing_since_wall = _wall()

    def lease_succeeded(self) -> None:
        self.lease_failing_since = None
        self.lease_failing_since_wall = None

    def problem(self) -> str | None:
        """Why the worker cannot run now, or None when it can."""
        if not self.running:
            return "the worker is not running"
        if self.lease_failing_since is not None:
            failing_for = self.clock() - self.lease_failing_since
            if failing_for > self.storage_grace:
                return (
                    f"the worker could not lease jobs for {failing_for:.0f}s (since "
                    f"{self.lease_failing_since_wall}): {self.lease_error}"
                )
        for loop in self.loops.values():
            found = loop.problem()
            if found is not None:
                return found
        return None

    @property
    def up(self) -> bool:
        return self.problem() is None

    def view(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "lease_error": self.lease_error if self.lease_failing_since is not None else None,
            "lease_failing_since": self.lease_failing_since_wall,
            "loops": {name: loop.view() for name, loop in self.loops.items()},
        }
