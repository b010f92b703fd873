"""parse_task_data over every task shape of kling-api.md §4-§6, status words and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.errors import NotificationInvalid
from service.kling.parse import parse_task_data
from service.kling.state import IMAGE, VIDEO, ProviderStatus, ProviderTaskState, ProviderVideo

# kling-api.md §4, the create answer's data, verbatim.
CREATED = json.loads(
    """{"task_id": "867283741759111202", "task_status": "submitted",
        "task_info": {"external_task_id": "job-0001"},
        "created_at": 1774805076166, "updated_at": 1774805076166}"""
)

# kling-api.md §4, a finished task's data, verbatim.
FINISHED = json.loads(
    """{"task_id": "871604988408655901", "task_status": "succeed", "task_status_msg": "",
        "task_info": {"external_task_id": "job-0001"}, "final_unit_deduction": "7.2",
        "created_at": 1775835341656, "updated_at": 1775835410960,
        "task_result": {"videos": [{"id": "871604988517720106",
                                    "url": "https://v2-fdl.kechuangai.com/ksc2/....mp4?cacheKey=...",
                                    "duration": "6.041"}]}}"""
)

# A failed task as Kling really sends it (new-api PR #2532): reason in task_status_msg.
FAILED = {
    "task_id": "833446756000000000",
    "task_info": {},
    "created_at": 1766737710125,
    "updated_at": 1766737711775,
    "task_result": {},
    "task_status": "failed",
    "task_status_msg": "Image pixel is invalid",
}

# kling-api.md §5, the newer generation (signing test vector body).
GENERATION = json.loads(
    '{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
    '"update_time":1781080794151}'
)

APIMODELS_DONE = {
    "taskId": "clxxx...",
    "state": "completed",
    "model": "kling-video/kling-video-o1",
    "resultUrls": ["https://...video.mp4"],
    "createTime": 1705123450000,
    "completeTime": 1705123500000,
}


def test_created_task() -> None:
    assert parse_task_data(CREATED) == ProviderTaskState(
        task_id="867283741759111202",
        status=ProviderStatus.SUBMITTED,
        external_task_id="job-0001",
        created_at_ms=1774805076166,
        updated_at_ms=1774805076166,
    )


def test_finished_task() -> None:
    assert parse_task_data(FINISHED) == ProviderTaskState(
        task_id="871604988408655901",
        status=ProviderStatus.SUCCEEDED,
        external_task_id="job-0001",
        cost="7.2",
        created_at_ms=1775835341656,
        updated_at_ms=1775835410960,
        videos=(
            ProviderVideo(
                index=0,
                provider_video_id="871604988517720106",
                url="https://v2-fdl.kechuangai.com/ksc2/....mp4?cacheKey=...",
                duration="6.041",
            ),
        ),
    )


def test_failed_task_keeps_its_reason() -> None:
    state = parse_task_data(FAILED)
    assert state.status is ProviderStatus.FAILED
    assert state.status_message == "Image pixel is invalid"
    assert state.external_task_id is None
    assert state.videos == ()


def test_generation_shape() -> None:
    assert parse_task_data(GENERATION) == ProviderTaskState(
        task_id="1234567890",
        status=ProviderStatus.SUCCEEDED,
        created_at_ms=1781080778802,
        updated_at_ms=1781080794151,
    )


def test_generation_outputs_and_external_id() -> None:
    state = parse_task_data(
        {
            "id": "t1",
            "status": "succeeded",
            "message": "",
            "external_id": "job-9",
            "outputs": [
                {"type": "image", "id": "thumb", "url": "https://x/thumb.jpg"},
                {
                    "type": "video",
                    "id": "v1",
                    "url": "https://x/1.mp4",
                    "duration": "5.0",
                    "watermark_url": "https://x/1-wm.mp4",
                },
                {"type": "video", "id": "v2", "url": "https://x/2.mp4", "duration": 10},
            ],
            "billing": [{"unit": "credit", "amount": 1}],
        }
    )
    assert state.external_task_id == "job-9"
    # videos first, then images: a video's index does not depend on the images beside it
    assert state.videos == (
        ProviderVideo(0, "v1", "https://x/1.mp4", "5.0", "https://x/1-wm.mp4"),
        ProviderVideo(1, "v2", "https://x/2.mp4", "10"),
        ProviderVideo(2, "thumb", "https://x/thumb.jpg", kind=IMAGE),
    )


def test_generation_outputs_of_other_types_are_ignored() -> None:
    state = parse_task_data(
        {
            "id": "t1",
            "status": "succeeded",
            "outputs": [
                {"type": "audio", "id": "a", "url": "https://x/a.mp3"},
                {"id": "v", "url": "https://x/v.mp4"},  # no type: a video, as before
            ],
        }
    )
    assert [(v.index, v.kind, v.url) for v in state.videos] == [(0, VIDEO, "https://x/v.mp4")]


def test_kling_image_outputs_follow_the_videos_with_their_watermarked_copies() -> None:
    data = dict(FINISHED)
    data["task_result"] = {
        "videos": [{"id": "v", "url": "https://x/v.mp4", "duration": "5"}],
        "images": [
            {"id": "i0", "url": "https://x/i0.png", "watermark_url": "https://x/i0-wm.png"},
            {"id": "i1"},  # no URL: skipped, its position kept
            {"id": "i2", "url": "https://x/i2.jpg"},
        ],
    }
    videos = parse_task_data(data).videos
    assert [(v.index, v.kind, v.provider_video_id, v.watermark_url) for v in videos] == [
        (0, VIDEO, "v", None),
        (1, IMAGE, "i0", "https://x/i0-wm.png"),
        (3, IMAGE, "i2", None),
    ]
    assert videos[1].duration is None


def test_console_test_body() -> None:
    body = {
        "id": "1234567890",
        "status": "submitted",
        "message": "",
        "create_time": 1781080778802,
        "update_time": 1781080794151,
        "outputs": [],
    }
    state = parse_task_data(body)
    assert state.status is ProviderStatus.SUBMITTED
    assert state.videos == ()


def test_apimodels_shape() -> None:
    state = parse_task_data(APIMODELS_DONE)
    assert state.task_id == "clxxx..."
    assert state.status is ProviderStatus.SUCCEEDED
    assert state.videos == (ProviderVideo(0, None, "https://...video.mp4"),)
    assert (state.created_at_ms, state.updated_at_ms) == (1705123450000, 1705123500000)


def test_apimodels_failure_message() -> None:
    state = parse_task_data(
        {"taskId": "c1", "state": "failed", "failMsg": "Content policy violation"}
    )
    assert (state.status, state.status_message) == (
        ProviderStatus.FAILED,
        "Content policy violation",
    )


def test_watermark_url_and_several_videos() -> None:
    data = dict(FINISHED)
    data["task_result"] = {
        "videos": [
            {
                "id": "a",
                "url": "https://x/a.mp4",
                "watermark_url": "https://x/a-wm.mp4",
                "duration": "5",
            },
            {"id": "b", "url": "https://x/b.mp4", "duration": "5"},
        ]
    }
    videos = parse_task_data(data).videos
    assert [(v.index, v.provider_video_id, v.watermark_url) for v in videos] == [
        (0, "a", "https://x/a-wm.mp4"),
        (1, "b", None),
    ]


def test_numbers_where_strings_are_expected_become_strings() -> None:
    data = {
        "task_id": 871604988408655901,
        "task_status": "succeed",
        "final_unit_deduction": 7.2,
        "task_result": {"videos": [{"id": 42, "url": "https://x/a.mp4", "duration": 6.041}]},
    }
    state = parse_task_data(data)
    assert state.task_id == "871604988408655901"
    assert state.cost == "7.2"
    assert state.videos[0].provider_video_id == "42"
    assert state.videos[0].duration == "6.041"


def test_minimal_callback_only_id_and_status() -> None:
    assert parse_task_data({"task_id": "1", "task_status": "processing"}) == ProviderTaskState(
        task_id="1", status=ProviderStatus.PROCESSING
    )


def test_malformed_optional_fields_are_ignored() -> None:
    data = {
        "task_id": "1",
        "task_status": "succeed",
        "task_info": "nope",
        "created_at": "soon",
        "updated_at": True,
        "task_status_msg": None,
        "task_result": {"videos": ["junk", {"id": "no-url"}, {"url": "https://x/c.mp4"}]},
    }
    state = parse_task_data(data)
    assert state.external_task_id is None
    assert state.created_at_ms is None and state.updated_at_ms is None
    assert state.status_message == ""
    # The video keeps its position in the provider's list as its index.
    assert state.videos == (ProviderVideo(2, None, "https://x/c.mp4"),)


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        (1775835341656, 1775835341656),
        (1775835341656.0, 1775835341656),
        ("1775835341656", 1775835341656),
        (10**400, 10**400),  # as a float it would overflow
        ("9" * 5000, None),  # int() refuses it
        (float("inf"), None),
        (float("nan"), None),
    ],
    ids=repr,
)
def test_times_of_any_size_never_fail_the_task(value: Any, millis: int | None) -> None:
    state = parse_task_data({"task_id": "1", "task_status": "processing", "created_at": value})
    assert state.created_at_ms == millis


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("submitted", ProviderStatus.SUBMITTED),
        ("queued", ProviderStatus.SUBMITTED),
        ("pending", ProviderStatus.SUBMITTED),
        ("SUBMITTED", ProviderStatus.SUBMITTED),
        ("processing", ProviderStatus.PROCESSING),
        ("in_progress", ProviderStatus.PROCESSING),
        ("IN_PROGRESS", ProviderStatus.PROCESSING),
        ("succeed", ProviderStatus.SUCCEEDED),
        ("succeeded", ProviderStatus.SUCCEEDED),
        ("success", ProviderStatus.SUCCEEDED),
        ("completed", ProviderStatus.SUCCEEDED),
        ("SUCCESS", ProviderStatus.SUCCEEDED),
        ("failed", ProviderStatus.FAILED),
        ("failure", ProviderStatus.FAILED),
        ("FAILURE", ProviderStatus.FAILED),
        ("error", ProviderStatus.FAILED),
    ],
)
@pytest.mark.parametrize("shape", ["kling", "generation", "apimodels"])
def test_status_words(word: str, expected: ProviderStatus, shape: str) -> None:
    data = {
        "kling": {"task_id": "1", "task_status": word},
        "generation": {"id": "1", "status": word},
        "apimodels": {"taskId": "1", "state": word},
    }[shape]
    assert parse_task_data(data).status is expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"task_status": "succeed"}, "no task_id"),
        ({"task_id": "", "task_status": "succeed"}, "no task_id"),
        ({"task_id": "   ", "task_status": "succeed"}, "no task_id"),
        ({"task_id": None, "task_status": "succeed"}, "no task_id"),
        ({"task_id": True, "task_status": "succeed"}, "no task_id"),
        ({"status": "submitted", "outputs": []}, "no id"),
        ({"state": "completed"}, "no taskId"),
        ({"task_id": "1", "task_status": "succeeded-ish"}, "unknown task status 'succeeded-ish'"),
        ({"task_id": "1", "task_status": ""}, "no status"),
        ({"task_id": "1", "task_status": 3}, "no status"),
        ({"task_id": "1"}, "no status"),
        ({"id": "1", "outputs": []}, "no status"),
        ({"code": 0, "message": "SUCCEED"}, "no task found"),
        ({}, "no task found"),
    ],
)
def test_unusable_tasks(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotificationInvalid, match=reason):
        parse_task_data(data)


def test_not_a_mapping() -> None:
    with pytest.raises(NotificationInvalid, match="JSON object"):
        parse_task_data(["task"])  # type: ignore[arg-type]


# --- final costs (issue 13): final_unit_deduction, final_balance_deduction, billing[] ---------


def test_kling_shape_keeps_both_deductions() -> None:
    state = parse_task_data(FINISHED | {"final_balance_deduction": "0.35"})
    assert (state.cost, state.balance_deduction) == ("7.2", "0.35")
    assert state.billing == ()


def test_a_kling_task_without_deductions_has_none() -> None:
    state = parse_task_data(CREATED)
    assert (state.cost, state.balance_deduction, state.billing) == (None, None, ())


def test_balance_deduction_written_as_a_number_becomes_a_string() -> None:
    data = {"task_id": "1", "task_status": "succeed", "final_balance_deduction": 0}
    state = parse_task_data(data)
    assert state.balance_deduction == "0"


def test_generation_billing_is_kept_as_given() -> None:
    billing = [
        {"unit": "credit", "amount": 1},
        {"type": "balance", "amount": "0.42", "currency": "USD", "detail": {"seconds": 5}},
    ]
    state = parse_task_data(GENERATION | {"billing": billing})
    assert state.billing == tuple(billing)
    assert state.cost is None  # billing[] is not final_unit_deduction: cost keeps its meaning


def test_generation_deductions_are_read_when_present() -> None:
    state = parse_task_data(
        GENERATION | {"final_unit_deduction": "3", "final_balance_deduction": "0.1"}
    )
    assert (state.cost, state.balance_deduction) == ("3", "0.1")


@pytest.mark.parametrize(
    ("billing", "kept"),
    [
        (None, ()),
        ("free", ()),
        ({"unit": "credit"}, ()),  # an object, not the array the shape has
        ([], ()),
        (["junk", 3, None, {"unit": "credit"}], ({"unit": "credit"},)),
    ],
    ids=repr,
)
def test_malformed_billing_never_fails_the_task(billing: Any, kept: tuple[Any, ...]) -> None:
    assert parse_task_data(GENERATION | {"billing": billing}).billing == kept


def test_apimodels_shape_has_no_cost_field() -> None:
    # Seed 002 documents no cost in its answers; a stray key is not guessed at.
    state = parse_task_data(APIMODELS_DONE | {"final_unit_deduction": "9"})
    assert (state.cost, state.balance_deduction, state.billing) == (None, None, ())
