"""The admission queue's rules, shared by every storage backend.

A provider account runs only so many tasks at once (Kling answers 1303 beyond that). Tasks
wait ``queued`` and are admitted (taken out of the queue to be sent) while the account has
room. Every backend counts the tasks in flight and picks the next queued ones inside one
transaction that no other admission runs beside (SQLite: the write lock; PostgreSQL: an
advisory lock), so two replicas never both fill the last slot; the choice itself is made here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from storage.records import TaskRecord, TaskStatus

#: A task holds a provider slot from the moment it is admitted (its create may be on its way)
#: until it reaches a final state.
IN_FLIGHT = (TaskStatus.PENDING, TaskStatus.SUBMITTED, TaskStatus.PROCESSING)
#: How many queued tasks an admission reads, at most: enough to find some of a model with
#: room while the first ones wait for their own model's slots.
CANDIDATES = 500


@dataclass(frozen=True)
class SlotLimits:
    """How many tasks may be in flight at once: ``total`` for the account (None: no limit of
    ours), and at most ``per_model[name]`` of one model."""

    total: int | None = None
    per_model: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Occupancy:
    """How many tasks wait, and how many are in flight per model."""

    queued: int
    in_flight: Mapping[str, int]

    @property
    def in_flight_total(self) -> int:
        return sum(self.in_flight.values())


def choose_admitted(
    candidates: Sequence[TaskRecord],
    limits: SlotLimits,
    in_flight: Mapping[str, int],
    *,
    limit: int,
) -> list[TaskRecord]:
    """The queued tasks to admit now, in queue order: each while the account and its model
    have room, at most ``limit``. A task whose model is full is passed over (another model's
    task behind it may go); none goes once the account is full."""
    total = sum(in_flight.values())
    by_model = dict(in_flight)
    chosen: list[TaskRecord] = []
    for task in candidates:
        if len(chosen) >= limit or (limits.total is not None and total >= limits.total):
            break
        cap = limits.per_model.get(task.model_name)
        if cap is not None and by_model.get(task.model_name, 0) >= cap:
            continue
        chosen.append(task)
        total += 1
        by_model[task.model_name] = by_model.get(task.model_name, 0) + 1
    return chosen


def choose_admitted_alone(
    candidates: Sequence[TaskRecord], limits: SlotLimits, in_flight: Mapping[str, int], task_id: str
) -> list[TaskRecord]:
    """The one task ``task_id``, when it would be admitted with every task before it in the
    queue (each of those keeps its place and its slot: it is admitted by its own submission or
    by the worker, never passed by a newer task while room is short); else none."""
    chosen = choose_admitted(candidates, limits, in_flight, limit=len(candidates))
    return [task for task in chosen if task.id == task_id]


def choose(
    candidates: Sequence[TaskRecord],
    limits: SlotLimits,
    in_flight: Mapping[str, int],
    *,
    limit: int,
    alone: str | None,
) -> list[TaskRecord]:
    """What one admission takes: see ``Storage.admit_queued``."""
    if alone is not None:
        return choose_admitted_alone(candidates, limits, in_flight, alone)
    return choose_admitted(candidates, limits, in_flight, limit=limit)


def queue_key(task: TaskRecord) -> tuple[int, object, str]:
    """The queue's order: highest priority first, then oldest (then by id, for a total order)."""
    return (-task.priority, task.created_at, task.id)
