"""The simulator refuses what the provider refuses (kling-api.md §3), in each profile's own
error shape, and honours each profile's documented defaults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app

from .helpers import AUTH, BASE

V3, O1 = "kling-v3-omni", "kling-video-o1"
PATHS = {
    "kling": "/v1/videos/omni-video",
    "newapi": "/kling/v1/videos/omni-video",
    "apimodels": "/api/v1/video/generations",
}
MODEL_FIELD = {"kling": "model_name", "newapi": "model", "apimodels": "model"}
PROFILES = list(PATHS)
IMAGE = "https://cdn.example.com/a.png"
VIDEO = "https://cdn.example.com/clip.mp4"
FIRST = {"image_url": IMAGE, "type": "first_frame"}
END = {"image_url": IMAGE, "type": "end_frame"}
PLAIN = {"image_url": IMAGE}
FEATURE = {"video_url": VIDEO, "refer_type": "feature", "keep_original_sound": "no"}
BASE_VIDEO = {"video_url": VIDEO, "refer_type": "base"}
SHOTS = [
    {"index": 1, "prompt": "a door opens", "duration": "4"},
    {"index": 2, "prompt": "she sits", "duration": "4"},
    {"index": 3, "prompt": "rain", "duration": "5"},
]


@pytest.fixture(params=PROFILES)
async def profile(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    name: str = request.param
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02, profile=name))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers=AUTH
        ) as client,
    ):
        yield name, client


def create_body(name: str, model: str = V3, **fields: Any) -> dict[str, Any]:
    return {MODEL_FIELD[name]: model, "prompt": "a fox", "aspect_ratio": "16:9", **fields}


async def refusal(name: str, client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """The message of a 1201 in ``name``'s error shape (HTTP 400 in each)."""
    response = await client.post(PATHS[name], json=body)
    assert response.status_code == 400, response.text
    payload = response.json()
    if name == "kling":
        assert payload["code"] == 1201 and set(payload) == {"code", "message", "request_id"}
        return str(payload["message"])
    if name == "newapi":
        assert payload["code"] == "task_failed" and payload["data"] is None
        return str(payload["message"])
    assert payload["code"] == 400 and payload["data"] is None
    return str(payload["msg"])


async def accepted(name: str, client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """The simulator's record of the task ``body`` created."""
    response = await client.post(PATHS[name], json=body)
    assert response.status_code == 200, response.text
    [task] = (await client.get("/_sim/tasks")).json()["tasks"]
    return dict(task)


# (name, model, fields, a word the message must hold); customized shots are left out here
# (new-api words them its own way, see below).
RULES: list[tuple[str, str, dict[str, Any], str]] = [
    ("o1 multi-shot", O1, {"multi_shot": True, "shot_type": "intelligence"}, "multi-shot"),
    ("sound on with a video", V3, {"video_list": [FEATURE], "sound": "on"}, "sound on"),
    ("odd aspect ratio", V3, {"aspect_ratio": "4:3"}, "aspect_ratio"),
    ("unknown mode", V3, {"mode": "8k"}, "mode"),
    ("unknown sound", V3, {"sound": "loud"}, "sound"),
    ("duration out of range", V3, {"duration": "20"}, "duration"),
    ("multi_shot not a boolean", V3, {"multi_shot": "yes"}, "multi_shot"),
    ("multi-shot without shot_type", V3, {"multi_shot": True}, "shot_type"),
    ("unknown shot_type", V3, {"multi_shot": True, "shot_type": "random"}, "shot_type"),
    (
        "frames with multi-shot",
        V3,
        {"multi_shot": True, "shot_type": "intelligence", "image_list": [FIRST]},
        "image_list",
    ),
    ("unknown image type", V3, {"image_list": [{"image_url": IMAGE, "type": "middle"}]}, "type"),
    ("empty image url", V3, {"image_list": [{"image_url": ""}]}, "image_url"),
    ("end frame alone", V3, {"image_list": [END]}, "end_frame needs a first_frame"),
    ("two first frames", V3, {"image_list": [FIRST, FIRST]}, "first_frame"),
    ("o1 frames with 3 images", O1, {"image_list": [FIRST, END, PLAIN]}, "at most 2 images"),
    ("two videos", V3, {"video_list": [FEATURE, FEATURE]}, "at most 1 video"),
    ("unknown refer_type", V3, {"video_list": [{**FEATURE, "refer_type": "edit"}]}, "refer_type"),
    ("base on o1", O1, {"video_list": [BASE_VIDEO]}, "base is not supported"),
    ("base with a first frame", V3, {"video_list": [BASE_VIDEO], "image_list": [FIRST]}, "base"),
    (
        "odd keep_original_sound",
        V3,
        {"video_list": [{**FEATURE, "keep_original_sound": "maybe"}]},
        "keep_original_sound",
    ),
    ("v3 feature video over 10 s", V3, {"video_list": [FEATURE], "duration": "12"}, "duration"),
    ("o1 text of 7 s", O1, {"duration": "7"}, "5 or 10"),
    ("o1 first frame over 10 s", O1, {"image_list": [FIRST], "duration": "12"}, "duration"),
    ("8 images", V3, {"image_list": [PLAIN] * 8}, "must not exceed 7"),
    (
        "5 references with a video",
        V3,
        {
            "image_list": [PLAIN] * 3,
            "element_list": [{"element_id": 1}] * 2,
            "video_list": [FEATURE],
        },
        "must not exceed 4",
    ),
    (
        "v3 first frame with 4 elements",
        V3,
        {"image_list": [FIRST], "element_list": [{"element_id": 1}] * 4},
        "at most 3 elements",
    ),
    (
        "o1 frames with an element",
        O1,
        {"image_list": [FIRST], "element_list": [{"element_id": 1}]},
        "no elements",
    ),
    ("element id not a number", V3, {"element_list": [{"element_id": "x"}]}, "element_id"),
    ("negative prompt too long", V3, {"negative_prompt": "x" * 2501}, "negative_prompt"),
    ("cfg_scale over 1", V3, {"cfg_scale": 1.5}, "cfg_scale"),
    ("watermark_info not an object", V3, {"watermark_info": True}, "watermark_info"),
]


@pytest.mark.parametrize(
    ("model", "fields", "word"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
async def test_each_rule_is_a_1201_in_the_profiles_shape(
    profile: tuple[str, httpx.AsyncClient], model: str, fields: dict[str, Any], word: str
) -> None:
    name, client = profile
    assert word in await refusal(name, client, create_body(name, model, **fields))
    assert (await client.get("/_sim/tasks")).json()["tasks"] == []


async def test_sound_with_a_video_is_refused_in_the_providers_words(
    profile: tuple[str, httpx.AsyncClient],
) -> None:
    name, client = profile
    body = create_body(name, video_list=[FEATURE], sound="on")
    message = await refusal(name, client, body)  # apimodels puts "Bad Request - " before it
    assert message.endswith("sound on is not supported with video input")


async def test_customized_shots_must_add_up_to_the_duration(
    profile: tuple[str, httpx.AsyncClient],
) -> None:
    name, client = profile
    if name == "newapi":  # its total is the shots' sum; more than 15 s is refused
        long = [{"prompt": "a", "duration": "8"}, {"prompt": "b", "duration": "8"}]
        body = {"model": V3, "multi_prompt": long, "aspect_ratio": "16:9"}
        assert "duration" in await refusal(name, client, body)
        return
    body = create_body(name, multi_shot=True, shot_type="customize", multi_prompt=SHOTS)
    assert "add up to duration (5)" in await refusal(name, client, body)  # 5: the default
    for shots, word in [
        ([*SHOTS, *SHOTS, *SHOTS], "1..6 shots"),
        ([{"prompt": "a", "duration": "0"}], "multi_prompt[0].duration"),
    ]:
        body = create_body(name, multi_shot=True, shot_type="customize", multi_prompt=shots)
        assert word in await refusal(name, client, body)
    customize = create_body(name, multi_shot=True, shot_type="customize", duration="13")
    assert "multi_prompt" in await refusal(name, client, customize)
    task = await accepted(name, client, {**customize, "multi_prompt": SHOTS})
    assert task["duration"] == "13"


@pytest.mark.parametrize("field", ["prompt", "duration"])
async def test_new_api_takes_no_prompt_or_duration_beside_multi_prompt(field: str) -> None:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02, profile="newapi"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers=AUTH
        ) as client,
    ):
        body = {"model": V3, "multi_prompt": SHOTS, field: {"prompt": "p", "duration": "13"}[field]}
        message = await refusal("newapi", client, body)
        assert message == f"Invalid parameter {field}: cannot be used together with multi_prompt"


# --- defaults ----------------------------------------------------------------------------------

MODES = {"kling": "pro", "newapi": "std", "apimodels": "std"}


async def test_mode_and_duration_default_as_each_provider_documents(
    profile: tuple[str, httpx.AsyncClient],
) -> None:
    name, client = profile
    task = await accepted(name, client, {MODEL_FIELD[name]: V3, "prompt": "a fox"})
    assert (task["mode"], task["duration"]) == (MODES[name], "5")


async def test_the_kling_shape_defaults_the_model_and_an_edit(
    profile: tuple[str, httpx.AsyncClient],
) -> None:
    name, client = profile
    no_model = {"prompt": "a fox", "aspect_ratio": "1:1"}
    no_refer_type = create_body(name, video_list=[{"video_url": VIDEO}])
    if name != "kling":  # neither is documented at the gateways
        assert MODEL_FIELD[name] in await refusal(name, client, no_model)
        assert "refer_type" in await refusal(name, client, no_refer_type)
        return
    assert (await accepted(name, client, no_model))["model_name"] == O1
    # base, which v3-omni edits (and an o1 cannot: it is refused like a base given outright)
    assert "base is not supported" in await refusal(
        name, client, {**no_refer_type, "model_name": O1}
    )


async def test_new_api_shots_alone_are_a_customized_multi_shot() -> None:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02, profile="newapi"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers=AUTH
        ) as client,
    ):
        shots = [{"prompt": s["prompt"], "duration": s["duration"]} for s in SHOTS]
        task = await accepted("newapi", client, {"model": V3, "multi_prompt": shots})
        assert (task["duration"], task["mode"]) == ("13", "std")


async def test_4k_only_where_the_page_lists_it(profile: tuple[str, httpx.AsyncClient]) -> None:
    name, client = profile
    body = create_body(name, mode="4k")
    if name == "kling":
        assert (await accepted(name, client, body))["mode"] == "4k"
    else:
        assert "mode" in await refusal(name, client, body)
