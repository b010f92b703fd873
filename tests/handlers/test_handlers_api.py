"""The plugin-author API: ``@on``, ``Event``, ``DoNotRetry``, ``EVENT_TYPES``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import handlers
from handlers import EVENT_TYPES, DoNotRetry, Event, on
from handlers.api import spec_of
from handlers.payloads import EventData, TaskData, VideoData
from service.views import task_json, video_json
from tests.factories import make_task, make_video, task_data, video_data

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_the_package_exports_the_plugin_api() -> None:
    assert set(handlers.__all__) == {
        "on",
        "Event",
        "DoNotRetry",
        "EVENT_TYPES",
        "EventData",
        "BudgetData",
        "TaskData",
        "VideoData",
        "WatermarkData",
    }


def test_event_types_are_the_contracts() -> None:
    assert {
        "task.queued",
        "task.submitted",
        "task.processing",
        "task.succeeded",
        "task.failed",
        "video.downloaded",
        "video.download_failed",
        "task.completed",
        "task.timed_out",
        "budget.threshold",
    } == EVENT_TYPES


def test_on_attaches_a_spec_and_returns_the_function_unchanged() -> None:
    def publish(event: Event) -> str:
        return event.id

    decorated = on("video.downloaded")(publish)

    assert decorated is publish
    spec = spec_of(publish)
    assert spec is not None
    assert spec.event_types == frozenset({"video.downloaded"})
    assert spec.timeout is None
    assert spec.retries is None


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (("*",), {"*"}),
        (("task.failed", "video.download_failed"), {"task.failed", "video.download_failed"}),
        (("task.failed", "task.failed"), {"task.failed"}),
    ],
)
def test_on_keeps_every_type(types: tuple[str, ...], expected: set[str]) -> None:
    @on(*types)
    def handler(event: Event) -> None: ...

    spec = spec_of(handler)
    assert spec is not None
    assert spec.event_types == expected


def test_on_keeps_timeout_and_retries() -> None:
    @on("task.completed", timeout=2.5, retries=[1, 10, 60])
    async def handler(event: Event) -> None: ...

    spec = spec_of(handler)
    assert spec is not None
    assert spec.timeout == 2.5
    assert spec.retries == (1.0, 10.0, 60.0)


def test_no_retries_is_an_empty_schedule() -> None:
    @on("task.completed", retries=())
    def handler(event: Event) -> None: ...

    spec = spec_of(handler)
    assert spec is not None
    assert spec.retries == ()


def test_on_without_types_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="at least one event type"):
        on()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": 0}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": float("inf")}, ValueError),
        ({"timeout": "5"}, TypeError),
        ({"retries": [5, -1]}, ValueError),
        ({"retries": "5,10"}, TypeError),
        ({"retries": [True]}, TypeError),
    ],
)
def test_on_refuses_bad_timeout_or_retries(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        on("task.failed", **kwargs)


def test_on_refuses_non_string_types() -> None:
    with pytest.raises(TypeError, match="non-empty strings"):
        on("task.failed", 3)  # type: ignore[arg-type]


def test_stacking_on_is_refused() -> None:
    def handler(event: Event) -> None: ...

    on("task.failed")(handler)
    with pytest.raises(TypeError, match="already decorated"):
        on("task.succeeded")(handler)


def test_decorated_functions_stay_callable() -> None:
    @on("task.failed")
    def handler(event: Event) -> str:
        return f"{event.type} {event.attempt}"

    event = Event(id="evt_1", type="task.failed", timestamp=T0, data={"task": task_data()})
    assert handler(event) == "task.failed 1"


def test_event_to_dict_is_the_contract_json() -> None:
    task, video = task_data(id="task_1"), video_data(index=0)
    event = Event(
        id="evt_1",
        type="video.downloaded",
        timestamp=T0,
        data={"task": task, "video": video},
        attempt=3,
    )

    assert event.to_dict() == {
        "id": "evt_1",
        "type": "video.downloaded",
        "timestamp": "2025-01-01T12:00:00Z",
        "data": {"task": task, "video": video},
    }
    assert event.task == task
    assert event.video == video


def test_event_round_trips_through_its_json() -> None:
    task = task_data()
    event = Event(id="evt_1", type="task.completed", timestamp=T0, data={"task": task})

    again = Event.from_dict(event.to_dict(), attempt=2)

    assert again == Event(
        id="evt_1", type="task.completed", timestamp=T0, data={"task": task}, attempt=2
    )
    assert again.video is None
    assert again.is_retry and not event.is_retry


def test_every_payload_key_a_plugin_reads_is_declared() -> None:
    # The TypedDicts are the reference for plugin authors: they must name what the API shows.
    task = make_task()
    video = make_video(task.id)

    assert set(TaskData.__annotations__) <= set(task_json(task, [video], Path("/media")))
    assert set(VideoData.__annotations__) <= set(video_json(video, Path("/media")))


def test_event_timestamps_are_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    data: EventData = {"task": task_data()}
    event = Event(id="evt_1", type="task.failed", timestamp=T0.astimezone(paris), data=data)

    assert event.timestamp.utcoffset() == timedelta(0)
    assert event.timestamp == T0


@pytest.mark.parametrize(
    "kwargs",
    [{"timestamp": datetime(2025, 1, 1, 12, 0)}, {"timestamp": T0, "attempt": 0}],
)
def test_event_refuses_naive_times_and_attempt_zero(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Event(id="evt_1", type="task.failed", data={"task": task_data()}, **kwargs)


def test_do_not_retry_is_a_plain_exception_with_a_message() -> None:
    error = DoNotRetry("the payload is broken")
    assert isinstance(error, Exception)
    assert str(error) == "the payload is broken"
