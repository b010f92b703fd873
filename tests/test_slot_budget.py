"""The worker's slots per kind of job: caps, reservations, and what each group may still take."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import ConfigurationError
from service.jobs.kinds import ALL_KINDS
from service.settings import load_settings
from service.worker.slot_budget import (
    DELIVERIES,
    DOWNLOADS,
    HANDLERS,
    TASKS,
    SlotBudget,
    budget_for,
    giving_way_budget,
    group_of,
    groups_of,
)


def _budget(kinds: tuple[str, ...] = ALL_KINDS, **settings: Any) -> SlotBudget:
    return budget_for(load_settings(isolated=True, **settings), kinds)


def test_the_kinds_fall_into_groups_leased_state_machine_first() -> None:
    assert [group_of(kind) for kind in ("inbox", "submit", "sync")] == [TASKS] * 3
    assert group_of("custom") == "custom"
    assert list(groups_of(["delivery", "custom", "handler", "sync", "download", "inbox"])) == [
        TASKS,
        DOWNLOADS,
        HANDLERS,
        DELIVERIES,
        "custom",
    ]


@pytest.mark.parametrize(
    ("settings", "caps", "reserved"),
    [
        ({}, {DELIVERIES: 4, HANDLERS: 4, DOWNLOADS: 3}, {TASKS: 2, DOWNLOADS: 1}),
        (
            {"worker_concurrency": 4},
            {DELIVERIES: 2, HANDLERS: 2, DOWNLOADS: 3},
            {TASKS: 1, DOWNLOADS: 1},
        ),
        ({"worker_concurrency": 2}, {DELIVERIES: 1, HANDLERS: 1, DOWNLOADS: 3}, {TASKS: 1}),
        ({"worker_concurrency": 1}, {DELIVERIES: 1, HANDLERS: 1, DOWNLOADS: 3}, {}),
        (
            {"worker_concurrency": 16, "download_concurrency": 5},
            {DELIVERIES: 8, HANDLERS: 8, DOWNLOADS: 5},
            {TASKS: 4, DOWNLOADS: 1},
        ),
        (
            {
                "worker_slots_delivery": 6,
                "worker_slots_handler": 2,
                "worker_slots_download": 2,
                "worker_slots_tasks_reserved": 3,
                "worker_slots_download_reserved": 2,
            },
            {DELIVERIES: 6, HANDLERS: 2, DOWNLOADS: 2},
            {TASKS: 3, DOWNLOADS: 2},
        ),
    ],
)
def test_default_and_configured_shares(
    settings: dict[str, Any], caps: dict[str, int], reserved: dict[str, int]
) -> None:
    budget = _budget(**settings)
    assert dict(budget.caps) == caps
    assert dict(budget.reserved) == reserved


def test_only_the_groups_a_worker_runs_get_caps_and_reservations() -> None:
    assert _budget(("t", "quick")) == SlotBudget(8)
    assert _budget(("delivery", "t")) == SlotBudget(8, {DELIVERIES: 4})


@pytest.mark.parametrize(
    ("held", "group", "room"),
    [
        ({}, DELIVERIES, 4),  # its cap
        ({}, TASKS, 7),  # every slot but the one kept for a download
        ({DELIVERIES: 4}, HANDLERS, 1),  # 8 - 4 - 2 kept for tasks - 1 kept for downloads
        ({DELIVERIES: 4, HANDLERS: 1}, TASKS, 2),  # its reserved 2, not the download's
        ({DELIVERIES: 4, HANDLERS: 1}, DOWNLOADS, 1),  # its reserved one (2 kept for tasks)
        ({DELIVERIES: 4, HANDLERS: 1, TASKS: 2}, DOWNLOADS, 1),
        ({TASKS: 7}, DOWNLOADS, 1),
        ({TASKS: 7}, DELIVERIES, 0),  # the last slot is kept for a download
        ({TASKS: 5, DOWNLOADS: 1}, DELIVERIES, 2),
        ({TASKS: 8}, TASKS, 0),
        ({"custom": 3}, DELIVERIES, 2),
    ],
)
def test_room_of_a_group(held: dict[str, int], group: str, room: int) -> None:
    assert _budget((*ALL_KINDS, "custom")).room(group, held) == room


@pytest.mark.parametrize(
    "order",
    [
        [DELIVERIES] * 6 + [HANDLERS] * 6,
        [HANDLERS] * 6 + [DELIVERIES] * 6,
        [DELIVERIES, HANDLERS] * 6,
    ],
)
def test_deliveries_and_handlers_can_never_starve_the_state_machine_nor_downloads(
    order: list[str],
) -> None:
    budget = _budget()
    held: dict[str, int] = {}
    for group in order:  # they take whatever they may
        if budget.room(group, held) > 0:
            held[group] = held.get(group, 0) + 1
    assert held.get(DELIVERIES, 0) + held.get(HANDLERS, 0) == 5  # of 8
    assert budget.room(TASKS, held) == 3 - 1  # its reserved 2 (the last one is a download's)
    assert budget.room(DOWNLOADS, held) == 1


def test_scaled_budget_keeps_the_shares_of_the_queue_ahead() -> None:
    scaled = _budget().scaled(2)
    assert scaled.total == 16
    assert scaled.room(DELIVERIES, {DELIVERIES: 4}) == 4


def test_while_giving_way_one_job_runs_and_one_of_the_state_machine_beside_it() -> None:
    budget = giving_way_budget(ALL_KINDS)
    assert budget.room(DELIVERIES, {}) == 1
    assert budget.room(HANDLERS, {DELIVERIES: 1}) == 0
    assert budget.room(TASKS, {DELIVERIES: 1}) == 1
    assert budget.room(TASKS, {TASKS: 1}) == 0
    assert budget.room(DELIVERIES, {TASKS: 1}) == 1
    assert giving_way_budget(("t",)) == SlotBudget(1)


def test_reservations_must_leave_a_slot_to_the_others() -> None:
    with pytest.raises(ConfigurationError, match="must leave at least one"):
        load_settings(
            isolated=True, worker_slots_tasks_reserved=5, worker_slots_download_reserved=3
        )
