from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli.submit import DEFAULT_MODEL, build_request

from .conftest import Invoke
from .fake_api import FakeApi, make_task, make_video


def sent_body(fake_api: FakeApi) -> dict[str, object]:
    posts = [request for request in fake_api.requests if request.method == "POST"]
    assert len(posts) == 1
    body: dict[str, object] = json.loads(posts[0].content)
    return body


class TestBuildRequest:
    def test_the_default_model_fills_in(self) -> None:
        assert build_request({}) == {"model_name": DEFAULT_MODEL}

    def test_the_files_model_or_its_alias_is_kept(self) -> None:
        assert build_request({"model": "kling-video-o1"}) == {"model": "kling-video-o1"}
        assert build_request({"model_name": "kling-video-o1"})["model_name"] == "kling-video-o1"

    def test_flags_win_over_the_file(self) -> None:
        base = {"model": "kling-video-o1", "prompt": "old", "duration": "10", "cfg_scale": 0.5}
        body = build_request(base, model="kling-v3-omni", prompt="new", sound=False)
        assert body == {
            "model_name": "kling-v3-omni",
            "prompt": "new",
            "duration": "10",
            "cfg_scale": 0.5,
            "sound": "off",
        }

    def test_image_flags_replace_the_files_image_list(self) -> None:
        base = {"image_list": [{"image_url": "https://old"}]}
        body = build_request(
            base, images=("https://a", "https://b"), first_frame="https://f", end_frame="https://e"
        )
        assert body["image_list"] == [
            {"image_url": "https://a"},
            {"image_url": "https://b"},
            {"image_url": "https://f", "type": "first_frame"},
            {"image_url": "https://e", "type": "end_frame"},
        ]
        assert build_request(base)["image_list"] == [{"image_url": "https://old"}]


def test_submit_sends_the_flags_and_prints_the_task(invoke: Invoke, fake_api: FakeApi) -> None:
    result = invoke(
        "submit",
        "--prompt", "a fox in snow",
        "--duration", "5",
        "--aspect-ratio", "16:9",
        "--mode", "std",
        "--first-frame", "https://img/f.png",
        "--sound",
        "--external-id", "job-9",
        "--metadata", '{"order": 7}',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sent_body(fake_api) == {
        "model_name": "kling-v3-omni",
        "prompt": "a fox in snow",
        "duration": "5",
        "aspect_ratio": "16:9",
        "mode": "std",
        "image_list": [{"image_url": "https://img/f.png", "type": "first_frame"}],
        "sound": "on",
        "external_task_id": "job-9",
        "metadata": {"order": 7},
    }
    assert "task_new" in result.stdout
    assert "job-9" in result.stdout


def test_submit_merges_a_json_file(invoke: Invoke, fake_api: FakeApi, tmp_path: Path) -> None:
    request = {
        "model_name": "kling-v3-omni",
        "multi_shot": True,
        "shot_type": "customize",
        "duration": "6",
        "multi_prompt": [{"index": 1, "prompt": "a", "duration": "6"}],
    }
    (tmp_path / "req.json").write_text(json.dumps(request))
    result = invoke("submit", "--json", "req.json", "--duration", "7")
    assert result.exit_code == 0, result.output
    assert sent_body(fake_api) == {**request, "duration": "7"}


def test_submit_json_output_is_the_task(invoke: Invoke) -> None:
    result = invoke("submit", "--prompt", "x", "--output", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "task_new"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--metadata", "{nope"], "--metadata is not valid JSON"),
        (["--metadata", "[1]"], "--metadata must be a JSON object"),
        (["--json", "missing.json"], "missing.json"),
    ],
)
def test_bad_local_input_is_a_usage_error(
    invoke: Invoke, fake_api: FakeApi, args: list[str], complaint: str
) -> None:
    result = invoke("submit", *args)
    assert result.exit_code == 2
    assert complaint in result.stderr
    assert fake_api.requests == []


def test_invalid_request_lists_the_problems(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.submit_answer = (
        422,
        {
            "error": "invalid_request",
            "message": "the request breaks 2 rules",
            "problems": [
                {"field": "duration", "message": "must be between 3 and 15"},
                {"field": "aspect_ratio", "message": "required without a first frame"},
            ],
        },
    )
    result = invoke("submit", "--prompt", "x", "--duration", "99")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: invalid_request (HTTP 422): the request breaks 2 rules",
        "  - duration: must be between 3 and 15",
        "  - aspect_ratio: required without a first frame",
    ]
    assert "Traceback" not in result.output


def test_provider_refusal(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.submit_answer = (
        502,
        {
            "error": "provider_error",
            "message": "the provider refused the task",
            "provider_code": 1102,
            "provider_message": "resource pack used up",
        },
    )
    result = invoke("submit", "--prompt", "x")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: provider_error (HTTP 502): the provider refused the task "
        "[provider code 1102: resource pack used up]"
    )


def test_duplicate_external_id(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.submit_answer = (409, {"error": "conflict", "message": "job-1 exists"})
    result = invoke("submit", "--prompt", "x", "--external-id", "job-1")
    assert result.exit_code == 1
    assert "conflict (HTTP 409): job-1 exists" in result.stderr


def test_a_lost_provider_answer_is_explained(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.submit_answer = (202, make_task(status="pending"))
    result = invoke("submit", "--prompt", "x")
    assert result.exit_code == 0
    assert "the provider's answer was lost" in result.stderr


def succeeded(videos: int = 1) -> dict[str, object]:
    return make_task(
        "task_new", "succeeded", videos=[make_video(i) for i in range(videos)], cost="3"
    )


def test_wait_follows_the_task_until_its_videos_are_stored(
    invoke: Invoke, fake_api: FakeApi
) -> None:
    submitted = make_task("task_new", "submitted")
    fake_api.submit_answer = (201, submitted)
    fake_api.add(
        submitted,
        make_task("task_new", "processing"),
        make_task(
            "task_new", "succeeded", videos=[make_video(0, "pending"), make_video(1, "downloading")]
        ),
        make_task("task_new", "succeeded", videos=[make_video(0), make_video(1, "downloading")]),
        succeeded(videos=2),
    )
    result = invoke("submit", "--prompt", "x", "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "task task_new succeeded; 2 video(s) stored" in result.stdout
    assert "/srv/media/task_1/1.mp4" in result.stdout
    gets = [request for request in fake_api.requests if request.method == "GET"]
    assert len(gets) == 4


def test_wait_exits_1_when_the_provider_fails_the_task(invoke: Invoke, fake_api: FakeApi) -> None:
    submitted = make_task("task_new", "submitted")
    fake_api.submit_answer = (201, submitted)
    failed = make_task("task_new", "failed", status_message="Image pixel is invalid")
    fake_api.add(submitted, failed)
    result = invoke("submit", "--prompt", "x", "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 1
    assert "task task_new failed: Image pixel is invalid" in result.stdout


def test_wait_exits_1_when_a_video_could_not_be_stored(invoke: Invoke, fake_api: FakeApi) -> None:
    submitted = make_task("task_new", "submitted")
    fake_api.submit_answer = (201, submitted)
    broken = make_video(0, "failed", error="HTTP 404 from the CDN")
    fake_api.add(submitted, make_task("task_new", "succeeded", videos=[broken]))
    result = invoke("submit", "--prompt", "x", "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 1
    assert "not every video was stored" in result.stdout
    assert "HTTP 404 from the CDN" in result.stdout


def test_wait_gives_up_after_the_timeout(invoke: Invoke, fake_api: FakeApi) -> None:
    submitted = make_task("task_new", "processing")
    fake_api.submit_answer = (201, submitted)
    fake_api.add(submitted)
    result = invoke(
        "submit", "--prompt", "x", "--wait", "--poll-interval", "0.05", "--timeout", "0.2"
    )
    assert result.exit_code == 1
    assert "gave up waiting: task task_new is still processing" in result.stdout


def test_wait_in_json_mode_keeps_stdout_one_document(invoke: Invoke, fake_api: FakeApi) -> None:
    submitted = make_task("task_new", "submitted")
    fake_api.submit_answer = (201, submitted)
    fake_api.add(submitted, succeeded())
    result = invoke(
        "submit", "--prompt", "x", "--wait", "--poll-interval", "0.05", "--output", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert "succeeded; 1 video(s) stored" in result.stderr
