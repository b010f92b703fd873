"""The state machine's trust rules: an unsigned final notification is only a reason to ask the
provider; a task without a final state by its deadline times out, announced once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.apply.events import EventEmitter
from service.apply.lifecycle import describe_duration, plan_provider_state, plan_timed_out
from service.kling.state import ProviderStatus, ProviderTaskState, ProviderVideo
from storage.records import TaskStatus
from tests.factories import at, make_task

VIDEO = ProviderVideo(index=0, provider_video_id="v1", url="https://evil.example/x.mp4")


@pytest.mark.parametrize("status", [ProviderStatus.SUCCEEDED, ProviderStatus.FAILED])
@pytest.mark.parametrize(
    "before", [TaskStatus.PENDING, TaskStatus.SUBMITTED, TaskStatus.PROCESSING]
)
def test_an_unsigned_final_state_changes_nothing_but_asks_the_provider(
    emitter: EventEmitter, status: ProviderStatus, before: TaskStatus
) -> None:
    task = make_task(status=before, provider_task_id=None, version=3)
    news = ProviderTaskState(task_id="kt-evil", status=status, videos=(VIDEO,))
    plan = plan_provider_state(task, [], news, now=at(1), emitter=emitter, needs_confirmation=True)
    assert plan.change is not None
    changed = plan.change.task
    assert (changed.status, changed.provider_task_id, changed.last_news_at) == (before, None, at(1))
    assert plan.change.events == [] and plan.change.videos == []
    [job] = plan.change.jobs
    assert (job.kind, job.payload) == ("sync", {"task_id": task.id, "confirm": status.value})
    assert job.dedupe_key == f"confirm:{task.id}:3"


@pytest.mark.parametrize("status", [ProviderStatus.SUBMITTED, ProviderStatus.PROCESSING])
def test_an_unsigned_state_on_the_way_is_applied(
    emitter: EventEmitter, status: ProviderStatus
) -> None:
    task = make_task(status=TaskStatus.PENDING, provider_task_id=None)
    news = ProviderTaskState(task_id="kt-1", status=status)
    plan = plan_provider_state(task, [], news, now=at(1), emitter=emitter, needs_confirmation=True)
    assert plan.change is not None
    assert plan.change.task.status == TaskStatus(status.value)
    assert plan.change.task.provider_task_id == "kt-1"


def test_an_unsigned_final_state_after_the_end_is_just_a_repeat(emitter: EventEmitter) -> None:
    task = make_task(status=TaskStatus.SUCCEEDED, provider_task_id="kt-1")
    news = ProviderTaskState(task_id="kt-1", status=ProviderStatus.FAILED)
    plan = plan_provider_state(task, [], news, now=at(1), emitter=emitter, needs_confirmation=True)
    assert plan.change is not None
    assert plan.change.jobs == [] and plan.change.task.status == TaskStatus.SUCCEEDED


def test_the_query_answer_is_taken_even_for_a_notification_needing_confirmation(
    emitter: EventEmitter,
) -> None:
    task = make_task(status=TaskStatus.PROCESSING, provider_task_id="kt-1")
    news = ProviderTaskState(task_id="kt-1", status=ProviderStatus.SUCCEEDED, videos=(VIDEO,))
    plan = plan_provider_state(
        task, [], news, now=at(1), emitter=emitter, confirmed=True, needs_confirmation=True
    )
    assert plan.change is not None and plan.change.task.status == TaskStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("before", "events"),
    [
        (TaskStatus.SUBMITTED, ["task.timed_out", "task.failed"]),
        (TaskStatus.PROCESSING, ["task.timed_out", "task.failed"]),
        (TaskStatus.PENDING, ["task.submitted", "task.timed_out", "task.failed"]),
    ],
)
def test_timing_out_fails_the_task_and_says_why(
    emitter: EventEmitter, before: TaskStatus, events: list[str]
) -> None:
    task = make_task(status=before)
    plan = plan_timed_out(task, [], deadline=timedelta(hours=24), now=at(86400), emitter=emitter)
    assert plan.change is not None
    changed = plan.change.task
    assert changed.status == TaskStatus.FAILED
    assert changed.status_message == (
        f"timed out: no final state from the provider after 24 h (last known state: {before})"
    )
    assert [e.type for e in plan.change.events] == events
    assert plan.change.events[-1].data["task"]["status"] == "failed"
    handler_jobs = [j.payload["event_type"] for j in plan.change.jobs if j.kind == "handler"]
    assert handler_jobs == events


@pytest.mark.parametrize("status", [TaskStatus.SUCCEEDED, TaskStatus.FAILED])
def test_a_finished_task_never_times_out(emitter: EventEmitter, status: TaskStatus) -> None:
    plan = plan_timed_out(
        make_task(status=status), [], deadline=timedelta(hours=1), now=at(1e6), emitter=emitter
    )
    assert plan.change is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(86400, "24 h"), (3 * 86400, "3 d"), (90, "90 s"), (120, "2 min"), (1.5, "1.5 s")],
)
def test_durations_read_well(seconds: float, text: str) -> None:
    assert describe_duration(timedelta(seconds=seconds)) == text
