"""parse_notification over every callback body of kling-api.md §5-§6, wrapped or bare."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from service.errors import NotificationInvalid
from service.kling.notification import parse_notification
from service.kling.state import ProviderStatus

# kling-api.md §5, the bare callback, verbatim.
BARE = (
    b'{"task_id": "871604988408655901", "task_status": "succeed", "task_status_msg": "",\n'
    b' "created_at": 1775835341656, "updated_at": 1775835410960, "final_unit_deduction": "7.2",\n'
    b' "task_info": {"external_task_id": "job-0001"},\n'
    b' "task_result": {"videos": [{"id": "871604988517720106", "url": "https://...mp4",'
    b' "duration": "6.041"}]}}'
)
TASK: dict[str, Any] = json.loads(BARE)

# kling-api.md §4, the query answer envelope around the same task.
ENVELOPE = {"code": 0, "message": "SUCCEED", "request_id": "93887a3b-...", "data": TASK}

# kling-api.md §5, the newer generation's body (signing test vector) and the console's test body.
GENERATION = (
    b'{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
    b'"update_time":1781080794151}'
)
CONSOLE_TEST = (
    b'{"id":"1234567890","status":"submitted","message":"","create_time":1781080778802,'
    b'"update_time":1781080794151,"outputs":[]}'
)


def _dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_bare_callback() -> None:
    state = parse_notification(BARE)
    assert state.task_id == "871604988408655901"
    assert state.status is ProviderStatus.SUCCEEDED
    assert state.external_task_id == "job-0001"
    assert state.cost == "7.2"
    assert [video.url for video in state.videos] == ["https://...mp4"]


def test_generation_body() -> None:
    state = parse_notification(GENERATION)
    assert (state.task_id, state.status) == ("1234567890", ProviderStatus.SUCCEEDED)


def test_console_test_body_parses() -> None:
    state = parse_notification(CONSOLE_TEST)
    assert (state.task_id, state.status, state.videos) == (
        "1234567890",
        ProviderStatus.SUBMITTED,
        (),
    )


# Every wrapping of §6 around the same Kling task must give the Kling task's own fields.
WRAPPED = {
    "kling envelope": ENVELOPE,
    "cometapi with envelope": {"code": "success", "data": {"status": "SUCCESS", "data": ENVELOPE}},
    "cometapi with task": {"data": {"status": "SUCCESS", "data": TASK}},
    "new-api relaying kling's id": {
        "code": "success",
        "data": {"task_id": TASK["task_id"], "status": "SUCCESS", "data": ENVELOPE},
    },
}


@pytest.mark.parametrize("document", WRAPPED.values(), ids=list(WRAPPED))
def test_wrapped_callbacks_read_the_inner_kling_task(document: dict[str, Any]) -> None:
    state = parse_notification(_dumps(document))
    assert state == parse_notification(BARE)


def test_a_gateway_id_on_the_wrapper_names_the_task() -> None:
    # A new-api gateway that hands out its own ids: its query takes only that id, so the task is
    # named by it, while everything else comes from Kling's own record inside.
    body = {
        "code": "success",
        "message": "",
        "data": {
            "task_id": "task_9Hq2cVx",
            "action": "generate",
            "status": "IN_PROGRESS",  # coarser and staler than Kling's word inside
            "progress": "100%",
            "fail_reason": "",
            "submit_time": 1775835341,
            "data": ENVELOPE,
        },
    }
    state = parse_notification(_dumps(body))
    assert state == replace(parse_notification(BARE), task_id="task_9Hq2cVx")


def test_newapi_kling_shaped_callback_with_the_gateway_id() -> None:
    # What a new-api gateway with its own ids relays: Kling's body, named by the gateway's id.
    body = TASK | {"task_id": "task_9Hq2cVx"}
    state = parse_notification(_dumps(body))
    assert (state.task_id, state.status, state.external_task_id) == (
        "task_9Hq2cVx",
        ProviderStatus.SUCCEEDED,
        "job-0001",
    )
    assert [video.provider_video_id for video in state.videos] == ["871604988517720106"]


def test_new_api_wrapper_failure_reason_without_inner_task() -> None:
    body = {
        "code": "success",
        "data": {"task_id": "gw-2", "status": "FAILURE", "fail_reason": "upstream timeout"},
    }
    state = parse_notification(_dumps(body))
    assert (state.task_id, state.status, state.status_message) == (
        "gw-2",
        ProviderStatus.FAILED,
        "upstream timeout",
    )


def test_new_api_wrapper_without_inner_task_is_read_itself() -> None:
    body = {"code": "success", "data": {"task_id": "gw-1", "status": "IN_PROGRESS", "data": None}}
    state = parse_notification(_dumps(body))
    assert (state.task_id, state.status) == ("gw-1", ProviderStatus.PROCESSING)


def test_unreadable_inner_task_falls_back_to_the_wrapper() -> None:
    inner = {"code": 0, "data": {"task_id": "k-1", "task_status": "mystery"}}
    body = {"code": "success", "data": {"task_id": "gw-1", "status": "FAILURE", "data": inner}}
    state = parse_notification(_dumps(body))
    assert (state.task_id, state.status) == ("gw-1", ProviderStatus.FAILED)


def test_apimodels_callback() -> None:
    body = {
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": "clxxx...",
            "state": "completed",
            "model": "kling-video/kling-video-o1",
            "resultUrls": ["https://...video.mp4"],
            "createTime": 1705123450000,
            "completeTime": 1705123500000,
        },
    }
    state = parse_notification(_dumps(body))
    assert state.task_id == "clxxx..."
    assert state.status is ProviderStatus.SUCCEEDED
    assert [video.url for video in state.videos] == ["https://...video.mp4"]


def test_apimodels_failed_callback() -> None:
    body = {
        "code": 200,
        "msg": "success",
        "data": {"taskId": "clxxx...", "state": "failed", "failMsg": "Content policy violation"},
    }
    state = parse_notification(_dumps(body))
    assert (state.status, state.status_message) == (
        ProviderStatus.FAILED,
        "Content policy violation",
    )


def test_failed_task_in_envelope() -> None:
    body = (
        b'{"code": 0, "data": {"task_id": "833446756*******", "task_info": {}, "created_at":'
        b' 1766737710125, "updated_at": 1766737711775, "task_result": {}, "task_status": "failed",'
        b' "task_status_msg": "Image pixel is invalid"}, "message": "SUCCEED",'
        b' "request_id": "ace7625a-3e18-49aa-abc4-*******"}'
    )
    state = parse_notification(body)
    assert (state.status, state.status_message) == (ProviderStatus.FAILED, "Image pixel is invalid")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not readable JSON"),
        (b"{not json", "not readable JSON"),
        (b"\xff\xfe\x00garbage", "not readable JSON"),
        (b"[]", "JSON list, not an object"),
        (b'"task"', "JSON str, not an object"),
        (b"null", "JSON NoneType, not an object"),
        (b"{}", "no task object found"),
        (b'{"code": 0, "message": "SUCCEED", "data": []}', "no task object found"),
        (
            b'{"code": 1303, "message": "parallel task over resource pack limit",'
            b' "request_id": "r"}',
            "error answer \\(code 1303",
        ),
        (b'{"task_id": "1", "task_status": "paused"}', "unknown task status 'paused'"),
        (b'{"code": 0, "data": {"task_status": "succeed"}}', "no task_id"),
        (b'{"data": {"data": {"data": {"data": {"data": {"data": {"data": {}}}}}}}}', "no task"),
        (b"[" * 100_000 + b"]" * 100_000, "not readable JSON"),
    ],
)
def test_bad_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(NotificationInvalid, match=reason):
        parse_notification(body)


@pytest.mark.parametrize("name", list(WRAPPED))
def test_wrapped_callbacks_carry_kling_s_final_costs(name: str) -> None:
    # Gateways relay Kling's own record: its deductions come through every wrapping.
    costly = TASK | {"final_unit_deduction": "7.2", "final_balance_deduction": "1.05"}
    document = json.loads(json.dumps(WRAPPED[name]).replace(json.dumps(TASK), json.dumps(costly)))
    state = parse_notification(_dumps(document))
    assert (state.cost, state.balance_deduction) == ("7.2", "1.05")
