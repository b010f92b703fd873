"""How a worker's slots are shared between the kinds of jobs, so that no kind starves another.

The kinds fall into groups: the task state machine (``inbox``, ``submit``, ``sync``: applying
callbacks, finishing submissions, queries), ``download``, ``handler`` and ``delivery`` (any
other kind is a group of its own). A group may hold at most its *cap* of the worker's
``OMNIHOOK_WORKER_CONCURRENCY`` slots, and slots *reserved* for a group are never taken by the
others, even when it has nothing to do (a slot cannot be taken back from a running job). With
the defaults (8 slots):

=============  ===  =====================================  ====================================
group          cap  reserved                               setting
=============  ===  =====================================  ====================================
tasks          8    2 (a quarter of the slots, at least 1)  ``OMNIHOOK_WORKER_SLOTS_TASKS_RESERVED``
downloads      3    1 (with at least 4 slots)                ``OMNIHOOK_WORKER_SLOTS_DOWNLOAD``,
                                                            ``..._DOWNLOAD_RESERVED``
handlers       4    0                                       ``OMNIHOOK_WORKER_SLOTS_HANDLER``
deliveries     4    0                                       ``OMNIHOOK_WORKER_SLOTS_DELIVERY``
=============  ===  =====================================  ====================================

The download cap defaults to ``OMNIHOOK_DOWNLOAD_CONCURRENCY`` (a download beyond it would only
wait in its slot), the handler and delivery caps to half the slots. Deliveries and handler runs
together hold at most the slots nobody reserved (5 of 8). Reservations are made only for the
groups the worker runs, and always leave one slot to the others.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from service.jobs import kinds
from service.settings import Settings

TASKS = "tasks"
DOWNLOADS = "downloads"
HANDLERS = "handlers"
DELIVERIES = "deliveries"

_GROUP_OF = {
    kinds.INBOX: TASKS,
    kinds.SUBMIT: TASKS,
    kinds.SYNC: TASKS,
    kinds.DOWNLOAD: DOWNLOADS,
    kinds.HANDLER: HANDLERS,
    kinds.DELIVERY: DELIVERIES,
}
# The order in which groups are leased when not all can be in one lease: the work that moves
# tasks forward first.
_PRIORITY = (TASKS, DOWNLOADS, HANDLERS, DELIVERIES)


def group_of(kind: str) -> str:
    return _GROUP_OF.get(kind, kind)


def groups_of(job_kinds: Collection[str]) -> dict[str, list[str]]:
    """The groups of these kinds, each with its kinds, in leasing order."""
    found: dict[str, list[str]] = {}
    for kind in job_kinds:
        found.setdefault(group_of(kind), []).append(kind)
    rank = {group: n for n, group in enumerate(_PRIORITY)}
    ordered = sorted(found, key=lambda group: (rank.get(group, len(rank)), group))
    return {group: found[group] for group in ordered}


@dataclass(frozen=True)
class SlotBudget:
    total: int
    caps: Mapping[str, int] = field(default_factory=dict)  # a group absent: up to ``total``
    reserved: Mapping[str, int] = field(default_factory=dict)

    def room(self, group: str, held: Mapping[str, int]) -> int:
        """How many more jobs of ``group`` may be taken, ``held`` counting the jobs each group
        holds now: within the group's cap and the free slots, leaving the slots still reserved
        for the other groups."""
        kept = sum(
            max(0, wanted - held.get(other, 0))
            for other, wanted in self.reserved.items()
            if other != group
        )
        own = self.caps.get(group, self.total) - held.get(group, 0)
        return max(0, min(own, self.free(held) - kept))

    def free(self, held: Mapping[str, int]) -> int:
        return max(0, self.total - sum(held.values()))

    def scaled(self, factor: int) -> SlotBudget:
        """The same shares of ``factor`` times the slots (jobs queued ahead of the slots)."""
        return SlotBudget(
            self.total * factor,
            {group: cap * factor for group, cap in self.caps.items()},
            {group: wanted * factor for group, wanted in self.reserved.items()},
        )


def budget_for(settings: Settings, job_kinds: Collection[str]) -> SlotBudget:
    """The budget of a worker running ``job_kinds`` with ``settings``."""
    total = settings.worker_concurrency
    present = set(groups_of(job_kinds))
    half = max(1, total // 2)
    caps = {
        DELIVERIES: settings.worker_slots_delivery or half,
        HANDLERS: settings.worker_slots_handler or half,
        DOWNLOADS: settings.worker_slots_download or settings.download_concurrency,
    }
    tasks = settings.worker_slots_tasks_reserved
    downloads = settings.worker_slots_download_reserved
    wanted = [
        (TASKS, min(max(total // 4, 1), total - 1) if tasks is None else tasks),
        (DOWNLOADS, (1 if total >= 4 else 0) if downloads is None else downloads),
    ]
    reserved: dict[str, int] = {}
    left = total - 1  # a slot for the groups without a reservation
    for group, count in wanted:
        count = min(count, left, caps.get(group, total))
        if group in present and count > 0:
            reserved[group] = count
            left -= count
    return SlotBudget(
        total, {group: cap for group, cap in caps.items() if group in present}, reserved
    )


def giving_way_budget(job_kinds: Collection[str]) -> SlotBudget:
    """While the receiver of the process is busy (``Worker(gives_way=True)``): one job at a
    time, and one more of the task state machine when the first is not one (a slow delivery
    or handler run must not hold back applying the callbacks being received)."""
    present = groups_of(job_kinds)
    if TASKS not in present:
        return SlotBudget(1)
    return SlotBudget(2, dict.fromkeys(present, 1), {TASKS: 1})
