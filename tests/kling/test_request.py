from __future__ import annotations

import base64
import json
import struct
import textwrap
import zlib
from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import InvalidRequest, Problem
from service.kling.request import SubmitRequest, parse_submission

V3 = "kling-v3-omni"
O1 = "kling-video-o1"
URL = "https://example.com/a.jpg"
VIDEO = "https://example.com/clip.mp4"
DROP = object()  # in a change set: remove the key


def png(width: int, height: int) -> str:
    """A real, tiny, all-black PNG, as raw base64."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * ((width + 1) * height))
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels)
    return base64.b64encode(raw + chunk(b"IEND", b"")).decode()


def jpeg(width: int, height: int) -> str:
    """A JPEG header (SOI, APP0, SOF0): enough for the checks, which read no further."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return base64.b64encode(b"\xff\xd8" + app0 + sof0 + b"\xff\xd9").decode()


def images(*types: str | None) -> list[dict[str, Any]]:
    return [{"image_url": URL} if t is None else {"image_url": URL, "type": t} for t in types]


def elements(count: int) -> list[dict[str, Any]]:
    return [{"element_id": 1000 + n} for n in range(count)]


def video(refer_type: str = "feature") -> list[dict[str, Any]]:
    return [{"video_url": VIDEO, "refer_type": refer_type, "keep_original_sound": "no"}]


def shots(*durations: str | int, indexed: bool = True) -> list[dict[str, Any]]:
    return [
        {"prompt": f"shot {n}", "duration": d} | ({"index": n + 1} if indexed else {})
        for n, d in enumerate(durations)
    ]


TEXT_V3: dict[str, Any] = {"model_name": V3, "prompt": "a fox in the snow", "aspect_ratio": "16:9"}
TEXT_O1: dict[str, Any] = {"model_name": O1, "prompt": "a fox in the snow", "aspect_ratio": "1:1"}
FRAMES_V3: dict[str, Any] = {
    "model_name": V3,
    "prompt": "she sits down",
    "image_list": images("first_frame", "end_frame"),
}
FRAMES_O1 = FRAMES_V3 | {"model_name": O1}
CUSTOMIZE: dict[str, Any] = {
    "model_name": V3,
    "multi_shot": True,
    "shot_type": "customize",
    "multi_prompt": shots("4", "4", "5"),
    "duration": "13",
    "aspect_ratio": "16:9",
}
FEATURE_V3 = TEXT_V3 | {"video_list": video("feature")}
BASE_V3: dict[str, Any] = {"model_name": V3, "prompt": "snowy", "video_list": video("base")}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = dict(base)
    for key, value in changes.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def problems(body: object) -> list[Problem]:
    with pytest.raises(InvalidRequest) as caught:
        parse_submission(body)
    return caught.value.problems


def fields(body: object) -> list[str]:
    return [p.field for p in problems(body)]


VALID: dict[str, dict[str, Any]] = {
    "v3 text": changed(TEXT_V3, duration="15", sound="on", mode="4k", negative_prompt="blur"),
    "v3 text, model alias, int duration": {"model": V3, "prompt": "p", "aspect_ratio": "9:16"}
    | {"duration": 3},
    "v3 first/end frame, 3 elements": changed(FRAMES_V3, element_list=elements(3), duration="5"),
    "v3 first frame only": changed(FRAMES_V3, image_list=images("first_frame", None)),
    "v3 multi-shot customize": CUSTOMIZE,
    "v3 customize, no indexes, int durations": changed(
        CUSTOMIZE, multi_prompt=shots(1, 2, indexed=False), duration=3
    ),
    "v3 customize, one shot of 15 s": changed(CUSTOMIZE, multi_prompt=shots("15"), duration="15"),
    "v3 customize, prompt ignored": changed(CUSTOMIZE, prompt="ignored"),
    "v3 multi-shot intelligence": changed(
        TEXT_V3, multi_shot=True, shot_type="intelligence", duration="15"
    ),
    "v3 multi_shot false": changed(TEXT_V3, multi_shot=False),
    "v3 reference video": changed(
        FEATURE_V3, duration="10", image_list=images(None, None), element_list=elements(2)
    ),
    "v3 base edit, duration ignored": changed(BASE_V3, duration="15", sound="off"),
    "o1 text 10 s": changed(TEXT_O1, duration="10", mode="std"),
    "o1 text default duration": TEXT_O1,
    "o1 first/end frame 7 s": changed(FRAMES_O1, duration="7"),
    "o1 reference video 3 s": changed(TEXT_O1, video_list=video("feature"), duration="3"),
    "o1 seven plain images": changed(TEXT_O1, image_list=images(*[None] * 7), duration=5),
    "o1 plain images and elements": changed(
        TEXT_O1, image_list=images(None, None, None), element_list=elements(4)
    ),
    "references in range": changed(
        TEXT_V3,
        prompt="<<<image_1>>> meets <<<element_2>>> in <<<video_1>>>",
        image_list=images(None),
        element_list=elements(2),
        video_list=video(),
    ),
    "base64 png first frame": changed(
        FRAMES_V3, image_list=[{"image_url": png(300, 750), "type": "first_frame"}]
    ),
    "base64 png wrapped in lines": changed(
        TEXT_V3, image_list=[{"image_url": "\n".join(textwrap.wrap(png(400, 400), 76))}]
    ),
    "base64 jpeg reference": changed(TEXT_V3, image_list=[{"image_url": jpeg(1920, 1080)}]),
    "our own fields": changed(
        TEXT_V3,
        external_task_id="job-0001",
        metadata={"user": 7, "tags": ["a"]},
        cfg_scale=0.5,
        watermark_info={"enabled": True},
    ),
    "cfg_scale bounds, int": changed(TEXT_V3, cfg_scale=1),
    "explicit nulls": changed(TEXT_V3, negative_prompt=None, duration=None, image_list=None),
}


@pytest.mark.parametrize("body", VALID.values(), ids=VALID.keys())
def test_valid_bodies_parse(body: dict[str, Any]) -> None:
    request = parse_submission(body)
    assert request.model_name in (V3, O1)


INVALID: dict[str, tuple[object, list[str]]] = {
    # the body and the model
    "body is a list": ([TEXT_V3], ["body"]),
    "body is a string": ("{}", ["body"]),
    "model missing": (changed(TEXT_V3, model_name=DROP), ["model_name"]),
    "model unknown": (changed(TEXT_V3, model_name="kling-v2"), ["model_name"]),
    "model alias unknown": (changed(TEXT_V3, model_name=DROP, model="kling-v2"), ["model"]),
    "model given twice": (changed(TEXT_V3, model=O1), ["model"]),
    "unknown field": (changed(TEXT_V3, seed=42), ["seed"]),
    "unknown nested field": (
        changed(TEXT_V3, image_list=[{"image_url": URL, "weight": 1}]),
        ["image_list.0.weight"],
    ),
    "callback_url given": (changed(TEXT_V3, callback_url="https://me/cb"), ["callback_url"]),
    # prompt
    "prompt missing": (changed(TEXT_V3, prompt=DROP), ["prompt"]),
    "prompt blank": (changed(TEXT_V3, prompt="   "), ["prompt"]),
    "prompt too long": (changed(TEXT_V3, prompt="x" * 2501), ["prompt"]),
    "prompt not a string": (changed(TEXT_V3, prompt=["a"]), ["prompt"]),
    "intelligence needs a prompt": (
        changed(TEXT_V3, prompt=DROP, multi_shot=True, shot_type="intelligence"),
        ["prompt"],
    ),
    "negative_prompt too long": (changed(TEXT_V3, negative_prompt="x" * 2501), ["negative_prompt"]),
    # multi-shot
    "multi_shot on o1": (
        changed(TEXT_O1, multi_shot=True, shot_type="intelligence"),
        ["multi_shot"],
    ),
    "multi_shot not a bool": (changed(TEXT_V3, multi_shot="true"), ["multi_shot"]),
    "shot_type missing": (changed(CUSTOMIZE, shot_type=DROP), ["shot_type"]),
    "shot_type unknown": (changed(CUSTOMIZE, shot_type="auto"), ["shot_type"]),
    "shot_type without multi_shot": (changed(TEXT_V3, shot_type="intelligence"), ["shot_type"]),
    "multi_prompt without multi_shot": (
        changed(CUSTOMIZE, multi_shot=DROP, shot_type=DROP, prompt="p"),
        ["multi_prompt"],
    ),
    "customize without multi_prompt": (changed(CUSTOMIZE, multi_prompt=DROP), ["multi_prompt"]),
    "intelligence with multi_prompt": (
        changed(CUSTOMIZE, shot_type="intelligence", prompt="p"),
        ["multi_prompt"],
    ),
    "no shots": (changed(CUSTOMIZE, multi_prompt=[]), ["multi_prompt"]),
    "seven shots": (
        changed(CUSTOMIZE, multi_prompt=shots(*["2"] * 7), duration="14"),
        ["multi_prompt"],
    ),
    "shot prompt too long": (
        changed(CUSTOMIZE, multi_prompt=[{"prompt": "x" * 513, "duration": "13"}]),
        ["multi_prompt.0.prompt"],
    ),
    "shot prompt empty": (
        changed(CUSTOMIZE, multi_prompt=[{"prompt": "", "duration": "13"}]),
        ["multi_prompt.0.prompt"],
    ),
    "shot of 0 s": (
        changed(CUSTOMIZE, multi_prompt=shots("8", "0", "5")),
        ["multi_prompt.1.duration"],
    ),
    "shot duration missing": (
        changed(CUSTOMIZE, multi_prompt=[{"prompt": "a"}]),
        ["multi_prompt.0.duration"],
    ),
    "shots don't add up": (changed(CUSTOMIZE, duration="12"), ["multi_prompt"]),
    "multi-shot without duration": (changed(CUSTOMIZE, duration=DROP), ["duration"]),
    "shots over 15 s without duration": (
        changed(CUSTOMIZE, multi_prompt=shots("8", "8"), duration=DROP),
        ["duration"],
    ),
    "index repeated": (
        changed(CUSTOMIZE, multi_prompt=[s | {"index": 1} for s in shots("4", "4", "5")]),
        ["multi_prompt.1.index", "multi_prompt.2.index"],
    ),
    "index out of range": (
        changed(
            CUSTOMIZE, multi_prompt=[*shots("4", "4"), {"index": 9, "prompt": "c", "duration": 5}]
        ),
        ["multi_prompt.2.index"],
    ),
    "index only on some shots": (
        changed(CUSTOMIZE, multi_prompt=shots("4", "4", indexed=False) + shots("5")),
        ["multi_prompt.0.index", "multi_prompt.1.index"],
    ),
    "index not an integer": (
        changed(CUSTOMIZE, multi_prompt=[{"index": "1", "prompt": "a", "duration": "13"}]),
        ["multi_prompt.0.index"],
    ),
    "frames with multi_shot": (
        changed(CUSTOMIZE, image_list=images(None, "first_frame")),
        ["image_list.1.type"],
    ),
    # images
    "image_list not a list": (changed(TEXT_V3, image_list={"image_url": URL}), ["image_list"]),
    "image item not an object": (changed(TEXT_V3, image_list=[URL]), ["image_list.0"]),
    "image type unknown": (
        changed(TEXT_V3, image_list=images("last_frame")),
        ["image_list.0.type"],
    ),
    "image_url missing": (
        changed(TEXT_V3, image_list=[{"type": None}]),
        ["image_list.0.image_url"],
    ),
    "end frame alone": (changed(TEXT_V3, image_list=images("end_frame")), ["image_list.0.type"]),
    "two first frames": (
        changed(FRAMES_V3, image_list=images("first_frame", "first_frame")),
        ["image_list.1.type"],
    ),
    "two end frames": (
        changed(FRAMES_V3, image_list=images("first_frame", "end_frame", "end_frame")),
        ["image_list.2.type"],
    ),
    "o1 frames with 3 images": (
        changed(FRAMES_O1, image_list=images("first_frame", None, None)),
        ["image_list"],
    ),
    "end frame alone needs an aspect ratio": (
        changed(FRAMES_V3, image_list=images("end_frame")),
        ["image_list.0.type", "aspect_ratio"],
    ),
    # image sources
    "image_url empty": (
        changed(TEXT_V3, image_list=[{"image_url": ""}]),
        ["image_list.0.image_url"],
    ),
    "image_url ftp": (
        changed(TEXT_V3, image_list=[{"image_url": "ftp://h/a.png"}]),
        ["image_list.0.image_url"],
    ),
    "image_url without host": (
        changed(TEXT_V3, image_list=[{"image_url": "https:///a.png"}]),
        ["image_list.0.image_url"],
    ),
    "image as data URI": (
        changed(TEXT_V3, image_list=[{"image_url": "data:image/png;base64," + png(300, 300)}]),
        ["image_list.0.image_url"],
    ),
    "image neither URL nor base64": (
        changed(TEXT_V3, image_list=[{"image_url": "photo.png"}]),
        ["image_list.0.image_url"],
    ),
    "image base64 of a GIF": (
        changed(TEXT_V3, image_list=[{"image_url": base64.b64encode(b"GIF89a...").decode()}]),
        ["image_list.0.image_url"],
    ),
    "image png too small": (
        changed(TEXT_V3, image_list=[{"image_url": png(299, 400)}]),
        ["image_list.0.image_url"],
    ),
    "image png too narrow": (
        changed(TEXT_V3, image_list=[{"image_url": png(300, 751)}]),
        ["image_list.0.image_url"],
    ),
    "image jpeg too small": (
        changed(TEXT_V3, image_list=[{"image_url": jpeg(640, 200)}]),
        ["image_list.0.image_url"],
    ),
    "image over 10 MB": (
        changed(TEXT_V3, image_list=[{"image_url": "A" * (14 * 1024 * 1024)}]),
        ["image_list.0.image_url"],
    ),
    # elements
    "element_id a string": (
        changed(TEXT_V3, element_list=[{"element_id": "123"}]),
        ["element_list.0.element_id"],
    ),
    "element_id a bool": (
        changed(TEXT_V3, element_list=[{"element_id": True}]),
        ["element_list.0.element_id"],
    ),
    "element_id zero": (
        changed(TEXT_V3, element_list=[{"element_id": 0}]),
        ["element_list.0.element_id"],
    ),
    # videos
    "two videos": (changed(TEXT_V3, video_list=video() + video()), ["video_list"]),
    "video_url not http": (
        changed(TEXT_V3, video_list=[{"video_url": "s3://b/v.mp4", "refer_type": "feature"}]),
        ["video_list.0.video_url"],
    ),
    "refer_type missing": (
        changed(TEXT_V3, video_list=[{"video_url": VIDEO}]),
        ["video_list.0.refer_type"],
    ),
    "refer_type unknown": (changed(TEXT_V3, video_list=video("edit")), ["video_list.0.refer_type"]),
    "keep_original_sound unknown": (
        changed(TEXT_V3, video_list=[video()[0] | {"keep_original_sound": True}]),
        ["video_list.0.keep_original_sound"],
    ),
    "base on o1": (changed(BASE_V3, model_name=O1), ["video_list.0.refer_type"]),
    "base with a first frame": (
        changed(BASE_V3, image_list=images("first_frame")),
        ["video_list.0.refer_type"],
    ),
    "sound on with a video": (changed(FEATURE_V3, sound="on"), ["sound"]),
    # enums
    "sound unknown": (changed(TEXT_V3, sound="loud"), ["sound"]),
    "mode unknown": (changed(TEXT_V3, mode="hd"), ["mode"]),
    "aspect_ratio unknown": (changed(TEXT_V3, aspect_ratio="4:3"), ["aspect_ratio"]),
    "aspect_ratio missing for text": (changed(TEXT_V3, aspect_ratio=DROP), ["aspect_ratio"]),
    "aspect_ratio missing with a feature video": (
        changed(FEATURE_V3, aspect_ratio=DROP),
        ["aspect_ratio"],
    ),
    # duration
    "duration 2": (changed(TEXT_V3, duration="2"), ["duration"]),
    "duration 16": (changed(TEXT_V3, duration=16), ["duration"]),
    "duration fractional": (changed(TEXT_V3, duration="5.5"), ["duration"]),
    "duration a float": (changed(TEXT_V3, duration=5.0), ["duration"]),
    "duration a bool": (changed(TEXT_V3, duration=True), ["duration"]),
    "v3 feature over 10 s": (changed(FEATURE_V3, duration="11"), ["duration"]),
    "o1 text 7 s": (changed(TEXT_O1, duration="7"), ["duration"]),
    "o1 plain images 3 s": (changed(TEXT_O1, image_list=images(None), duration="3"), ["duration"]),
    "o1 frames over 10 s": (changed(FRAMES_O1, duration="11"), ["duration"]),
    "o1 feature over 10 s": (
        changed(TEXT_O1, video_list=video(), duration="15"),
        ["duration"],
    ),
    # other fields
    "cfg_scale over 1": (changed(TEXT_V3, cfg_scale=1.5), ["cfg_scale"]),
    "cfg_scale negative": (changed(TEXT_V3, cfg_scale=-0.1), ["cfg_scale"]),
    "cfg_scale a string": (changed(TEXT_V3, cfg_scale="0.5"), ["cfg_scale"]),
    "watermark_info empty": (changed(TEXT_V3, watermark_info={}), ["watermark_info.enabled"]),
    "watermark_info enabled a string": (
        changed(TEXT_V3, watermark_info={"enabled": "yes"}),
        ["watermark_info.enabled"],
    ),
    "watermark_info a bool": (changed(TEXT_V3, watermark_info=True), ["watermark_info"]),
    # counts
    "eight images": (changed(TEXT_V3, image_list=images(*[None] * 8)), ["image_list"]),
    "five images, three elements": (
        changed(TEXT_V3, image_list=images(*[None] * 5), element_list=elements(3)),
        ["image_list"],
    ),
    "eight elements": (changed(TEXT_V3, element_list=elements(8)), ["element_list"]),
    "reference video, five inputs": (
        changed(FEATURE_V3, image_list=images(None, None, None), element_list=elements(2)),
        ["image_list"],
    ),
    "v3 first frame, four elements": (
        changed(FRAMES_V3, element_list=elements(4)),
        ["element_list"],
    ),
    "o1 first frame with an element": (
        changed(FRAMES_O1, element_list=elements(1)),
        ["element_list"],
    ),
    # our own fields
    "external_task_id empty": (changed(TEXT_V3, external_task_id=""), ["external_task_id"]),
    "external_task_id with a space": (
        changed(TEXT_V3, external_task_id="a b"),
        ["external_task_id"],
    ),
    "external_task_id control char": (
        changed(TEXT_V3, external_task_id="a\x00"),
        ["external_task_id"],
    ),
    "external_task_id too long": (
        changed(TEXT_V3, external_task_id="x" * 129),
        ["external_task_id"],
    ),
    "external_task_id a number": (changed(TEXT_V3, external_task_id=7), ["external_task_id"]),
    "metadata a list": (changed(TEXT_V3, metadata=[1]), ["metadata"]),
    "metadata null": (changed(TEXT_V3, metadata=None), ["metadata"]),
    "metadata not JSON (NaN)": (changed(TEXT_V3, metadata={"x": float("nan")}), ["metadata"]),
    "metadata over 16 KiB": (changed(TEXT_V3, metadata={"k": "x" * 16_400}), ["metadata"]),
    # prompt references
    "reference to a missing image": (
        changed(TEXT_V3, prompt="<<<image_2>>>", image_list=images(None)),
        ["prompt"],
    ),
    "reference in a shot to a missing element": (
        changed(CUSTOMIZE, multi_prompt=[{"prompt": "<<<element_1>>>", "duration": "13"}]),
        ["multi_prompt.0.prompt"],
    ),
}


@pytest.mark.parametrize(("body", "expected"), INVALID.values(), ids=INVALID.keys())
def test_each_broken_rule_is_reported_at_its_field(body: object, expected: list[str]) -> None:
    assert fields(body) == expected


def test_messages_say_what_is_allowed() -> None:
    messages = {p.field: p.message for p in problems(changed(TEXT_V3, sound="loud", seed=1))}
    assert messages == {"sound": "must be 'on' or 'off'", "seed": "unknown field"}
    [callback] = problems(changed(TEXT_V3, callback_url="https://me/cb"))
    assert "OMNIHOOK_PUBLIC_URL" in callback.message
    [duration] = problems(changed(TEXT_V3, duration="20"))
    assert duration.message == 'must be a whole number of seconds from "3" to "15"'


def test_every_problem_is_reported_at_once() -> None:
    body = changed(
        FEATURE_V3,
        cfg_scale="high",  # type
        callback_url="https://me/cb",  # ours to set
        seed=1,  # unknown
        sound="on",  # with a video
        duration="12",  # over 10 with a feature video
        element_list=elements(4),  # 4 inputs + the video limit
        image_list=images(None),
    )
    assert sorted(fields(body)) == sorted(
        ["cfg_scale", "callback_url", "seed", "sound", "duration", "image_list"]
    )


def test_rules_are_skipped_when_a_field_they_read_is_broken() -> None:
    # The broken image list may well hold a first frame: no aspect_ratio guess is made.
    body = changed(FRAMES_V3, image_list=[{"image_url": 1, "type": "first_frame"}], sound="on")
    assert fields(body) == ["image_list.0.image_url"]


def test_model_rules_are_skipped_when_the_model_is_broken() -> None:
    # o1 would forbid base, and 7 s text; an unknown model judges neither, but sound still is.
    body = changed(BASE_V3, model_name="kling-v9", sound="on", duration="7")
    assert fields(body) == ["model_name", "sound"]


def test_the_pydantic_error_is_the_cause_not_the_exception() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_submission(changed(TEXT_V3, mode=1))
    assert isinstance(caught.value.__cause__, ValidationError)
    assert "mode: must be 'std', 'pro' or '4k'" in str(caught.value)


def test_validating_the_model_directly_runs_the_rules_too() -> None:
    with pytest.raises(ValidationError, match="aspect_ratio: required"):
        SubmitRequest.model_validate(changed(TEXT_V3, aspect_ratio=DROP))


def test_parsed_request_keeps_the_callers_values() -> None:
    request = parse_submission({"model": V3, "prompt": "p", "aspect_ratio": "1:1", "duration": 8})
    assert request.model_name == V3
    assert request.duration == "8"
    assert request.metadata == {}
    assert request.external_task_id is None


def test_provider_body_holds_only_the_given_kling_fields() -> None:
    request = parse_submission(
        changed(
            FRAMES_V3,
            image_list=images("first_frame", None),
            duration=5,
            external_task_id="job-1",
            metadata={"a": 1},
        )
    )
    assert request.provider_body() == {
        "model_name": V3,
        "prompt": "she sits down",
        "image_list": [{"image_url": URL, "type": "first_frame"}, {"image_url": URL}],
        "duration": "5",
    }


def test_provider_body_names_the_model_as_asked() -> None:
    request = parse_submission(changed(TEXT_O1, model_name=DROP, model=O1))
    body = request.provider_body(model_field="model")
    assert body["model"] == O1
    assert "model_name" not in body


def test_provider_body_of_a_full_request_is_json() -> None:
    request = parse_submission(
        changed(
            CUSTOMIZE,
            multi_prompt=shots(6, "7", indexed=False),
            negative_prompt="blur",
            element_list=elements(1),
            sound="on",
            mode="pro",
            cfg_scale=1,
            watermark_info={"enabled": False},
            multi_shot=True,
        )
    )
    body = json.loads(json.dumps(request.provider_body()))
    assert body == {
        "model_name": V3,
        "negative_prompt": "blur",
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": [
            {"prompt": "shot 0", "duration": "6"},
            {"prompt": "shot 1", "duration": "7"},
        ],
        "element_list": [{"element_id": 1000}],
        "sound": "on",
        "mode": "pro",
        "aspect_ratio": "16:9",
        "duration": "13",
        "cfg_scale": 1.0,
        "watermark_info": {"enabled": False},
    }
