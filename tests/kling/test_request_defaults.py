"""Per-provider defaults: filled in before validation, sent and stored; none guessed."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidRequest
from service.kling.request import parse_submission

V3, O1 = "kling-v3-omni", "kling-video-o1"
VIDEO = "https://cdn.example.com/clip.mp4"
FRAME = "https://cdn.example.com/first.png"
SHOTS = [
    {"prompt": "a door opens", "duration": "4"},
    {"prompt": "she sits down", "duration": "4"},
    {"prompt": "rain outside", "duration": "5"},
]


def sent(body: dict[str, Any], provider: str) -> dict[str, Any]:
    return parse_submission(body, provider=provider).provider_body(model_field="model_name")


def problems(body: dict[str, Any], provider: str | None) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_submission(body, provider=provider)
    return {problem.field: problem.message for problem in caught.value.problems}


@pytest.mark.parametrize(
    ("provider", "mode"), [("kling", "pro"), ("newapi", "std"), ("apimodels", "std")]
)
def test_a_text_request_gets_every_documented_default(provider: str, mode: str) -> None:
    body = {"model_name": V3, "prompt": "a fox", "aspect_ratio": "9:16"}
    assert sent(body, provider) == {**body, "mode": mode, "duration": "5", "sound": "off"}


@pytest.mark.parametrize("provider", ["kling", "newapi"])
def test_aspect_ratio_defaults_to_16_9_where_documented(provider: str) -> None:
    assert sent({"model_name": V3, "prompt": "a fox"}, provider)["aspect_ratio"] == "16:9"


def test_apimodels_documents_no_aspect_ratio_default_so_it_stays_required() -> None:
    found = problems({"model_name": V3, "prompt": "a fox"}, "apimodels")
    assert list(found) == ["aspect_ratio"] and found["aspect_ratio"].startswith("required")


def test_the_callers_values_are_never_replaced() -> None:
    body = {
        "model_name": O1,
        "prompt": "a fox",
        "mode": "std",
        "duration": "10",
        "aspect_ratio": "1:1",
        "sound": "on",
    }
    assert sent(body, "kling") == body


def test_the_model_defaults_only_at_the_kling_shape() -> None:
    assert parse_submission({"prompt": "a fox"}, provider="kling").model_name == O1
    for provider in ("newapi", "apimodels"):
        assert list(problems({"prompt": "a fox", "aspect_ratio": "1:1"}, provider)) == [
            "model_name"
        ]


def test_without_a_provider_nothing_is_filled_in() -> None:
    request = parse_submission({"model_name": V3, "prompt": "a fox", "aspect_ratio": "1:1"})
    assert request.provider is None
    assert request.provider_body() == {"model_name": V3, "prompt": "a fox", "aspect_ratio": "1:1"}


def test_a_first_frame_or_an_edited_video_sets_the_shape_and_an_edit_its_length() -> None:
    framed = sent(
        {
            "model_name": V3,
            "prompt": "p",
            "image_list": [{"image_url": FRAME, "type": "first_frame"}],
        },
        "kling",
    )
    assert "aspect_ratio" not in framed and framed["duration"] == "5"
    edited = sent(
        {
            "model_name": V3,
            "prompt": "p",
            "video_list": [{"video_url": VIDEO, "refer_type": "base"}],
        },
        "newapi",
    )
    assert "aspect_ratio" not in edited and "duration" not in edited


def test_a_video_without_refer_type_is_an_edit_at_the_kling_shape() -> None:
    body = {"model_name": V3, "prompt": "p", "video_list": [{"video_url": VIDEO}]}
    assert sent(body, "kling")["video_list"] == [{"video_url": VIDEO, "refer_type": "base"}]


def test_a_defaulted_value_that_breaks_a_rule_says_it_was_the_default() -> None:
    found = problems(
        {"model_name": O1, "prompt": "p", "video_list": [{"video_url": VIDEO}]}, "kling"
    )
    message = found["video_list.0.refer_type"]
    assert "needs kling-v3-omni" in message
    assert message.endswith("(left out: the kling provider sets it to 'base')")


@pytest.mark.parametrize("provider", ["newapi", "apimodels"])
def test_refer_type_stays_required_where_no_default_is_documented(provider: str) -> None:
    body = {"model_name": V3, "prompt": "p", "video_list": [{"video_url": VIDEO}]}
    assert list(problems(body, provider)) == ["video_list.0.refer_type"]


def test_new_api_shots_alone_are_a_customized_multi_shot_summing_to_the_duration() -> None:
    request = parse_submission({"model": V3, "multi_prompt": SHOTS}, provider="newapi")
    assert (request.multi_shot, request.shot_type, request.duration) == (True, "customize", "13")
    # EzModel's dialect goes out as its page shows it: no multi_shot, shot_type or duration.
    assert request.provider_body(model_field="model") == {
        "model": V3,
        "multi_prompt": SHOTS,
        "mode": "std",
        "sound": "off",
        "aspect_ratio": "16:9",
    }


def test_new_api_gets_its_dialect_for_the_official_multi_shot_form_too() -> None:
    body = {
        "model": V3,
        "prompt": "ignored by a customized multi-shot",
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": SHOTS,
        "duration": "13",
        "aspect_ratio": "1:1",
    }
    out = sent(body, "newapi")
    assert not {"multi_shot", "shot_type", "duration", "prompt"} & out.keys()
    assert out["multi_prompt"] == SHOTS


def test_new_api_shots_outside_3_to_15_seconds_are_refused() -> None:
    shots = [{"prompt": "long", "duration": "8"}, {"prompt": "longer", "duration": "8"}]
    found = problems({"model": V3, "multi_prompt": shots}, "newapi")
    assert list(found) == ["duration"] and "sets it to '16'" in found["duration"]


def test_the_official_shape_takes_no_new_api_dialect() -> None:
    found = problems({"model": V3, "multi_prompt": SHOTS, "aspect_ratio": "1:1"}, "kling")
    assert "multi_prompt" in found and "only used when multi_shot is true" in found["multi_prompt"]


def test_customized_shots_must_add_up_to_the_default_duration_at_kling() -> None:
    body = {"model_name": V3, "multi_shot": True, "shot_type": "customize", "multi_prompt": SHOTS}
    found = problems(body, "kling")
    assert "add up to 13 s but duration is 5 s" in found["multi_prompt"]
    assert "(duration left out: the kling provider sets it to '5')" in found["multi_prompt"]
    five = [{"prompt": "a", "duration": "2"}, {"prompt": "b", "duration": "3"}]
    assert sent({**body, "multi_prompt": five}, "kling")["duration"] == "5"


def test_o1_multi_shot_is_refused_whatever_the_provider() -> None:
    for provider in ("kling", "newapi", "apimodels"):
        body = {"model": O1, "multi_shot": True, "shot_type": "intelligence", "prompt": "p"}
        assert "multi_shot" in problems(body, provider)


@pytest.mark.parametrize("provider", ["newapi", "apimodels"])
def test_4k_is_refused_where_the_page_lists_std_and_pro_only(provider: str) -> None:
    body = {"model_name": V3, "prompt": "p", "aspect_ratio": "1:1", "mode": "4k"}
    assert problems(body, provider) == {"mode": f"must be std or pro at the {provider} provider"}
    assert sent(body, "kling")["mode"] == "4k"


def test_a_provider_rule_is_reported_beside_a_broken_field() -> None:
    body = {"model_name": V3, "prompt": "p", "aspect_ratio": "1:1", "mode": "4k", "sound": 1}
    assert set(problems(body, "newapi")) == {"mode", "sound"}
