"""The create rules the provider enforces (kling-api.md §3), checked as the simulator's own.

Like Kling, the simulator names the first broken rule and stops: a 1201 whose message says which
parameter and why (``Invalid parameter duration: ...``); each profile renders it in its own
envelope. The rules run on the body with the profile's defaults filled in (:mod:`.defaults`).
This is an independent reading of §3, not omnihook's validator: tests that omnihook's requests
pass here then mean something.

Rules, in the order they are checked:

1. fields have their documented types and choices (``mode``, ``sound``, ``aspect_ratio``,
   ``duration`` "3".."15", image ``type``, ``refer_type``, ``keep_original_sound``,
   ``negative_prompt`` ≤ 2500 characters, ``cfg_scale`` 0..1, ``watermark_info.enabled``);
2. multi-shot: v3-omni only; ``shot_type`` required; customize needs 1..6 shots of ≤ 512
   characters and ≥ 1 s that add up to ``duration``; no first/end frames;
3. frames: one first, one end at most; an end frame needs a first frame; o1 takes frames only
   with at most 2 images;
4. video: at most 1; ``base`` is v3-omni only and takes no frames; ``sound`` must be off;
5. durations per model and workflow (§3 table);
6. counts: images + elements ≤ 7 (≤ 4 with a video); v3 with a first frame ≤ 3 elements; o1
   with frames no elements.

A missing ``aspect_ratio`` is never refused: Kling's shape and new-api default it (16:9), and
apimodels' page neither requires it nor names a default (its gateway decides). ``new-api``
(EzModel) adds a rule of its own: with ``multi_prompt``, "the top-level prompt and duration
parameters cannot be used".
"""

from __future__ import annotations

from typing import Any, Final

from .errors import KlingError, invalid

O1: Final = "kling-video-o1"
V3: Final = "kling-v3-omni"
MAX_SHOTS: Final = 6
MAX_SHOT_PROMPT: Final = 512
MAX_PROMPT: Final = 2500
MIN_DURATION, MAX_DURATION = 3, 15
MAX_FEATURE_DURATION: Final = 10
SOUND_WITH_VIDEO: Final = "sound on is not supported with video input"

_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "mode": ("std", "pro", "4k"),
    "sound": ("on", "off"),
    "aspect_ratio": ("16:9", "9:16", "1:1"),
    "shot_type": ("customize", "intelligence"),
}


def check_newapi_dialect(body: dict[str, Any]) -> None:
    """EzModel's page: multi_prompt "cannot be used together" with prompt or duration."""
    if body.get("multi_prompt") is None:
        return
    for field in ("prompt", "duration"):
        if body.get(field) is not None:
            raise invalid(field, "cannot be used together with multi_prompt")


def check_rules(body: dict[str, Any], model: str) -> None:
    """Raise :class:`KlingError` 1201 for the first §3 rule ``body`` breaks."""
    for field, choices in _CHOICES.items():
        if field in body and body[field] not in choices:
            raise invalid(field, f"must be one of {', '.join(choices)}")
    _check_scalars(body)
    duration = _duration(body)
    images = _list_of_objects(body, "image_list")
    videos = _list_of_objects(body, "video_list")
    elements = _list_of_objects(body, "element_list")
    first = [i for i in images if i.get("type") == "first_frame"]
    end = [i for i in images if i.get("type") == "end_frame"]
    _check_items(images, videos, elements)
    multi_shot = body.get("multi_shot", False)
    if not isinstance(multi_shot, bool):
        raise invalid("multi_shot", "must be a boolean")
    if multi_shot:
        _check_multi_shot(body, model, duration, has_frames=bool(first or end))
    _check_frames(model, images, first, end)
    is_base = bool(videos) and videos[0].get("refer_type") == "base"
    is_feature = bool(videos) and videos[0].get("refer_type") == "feature"
    if videos:
        _check_video(body, model, is_base, has_frames=bool(first or end))
    if duration is not None and not is_base and not multi_shot:
        _check_duration(model, duration, framed=bool(first or end), is_feature=is_feature)
    _check_counts(model, len(images), len(elements), bool(videos), bool(first or end), bool(first))


def _check_scalars(body: dict[str, Any]) -> None:
    negative = body.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > MAX_PROMPT):
        raise invalid("negative_prompt", f"must be a string of at most {MAX_PROMPT} characters")
    cfg_scale = body.get("cfg_scale")
    if cfg_scale is not None and (
        isinstance(cfg_scale, bool)
        or not isinstance(cfg_scale, int | float)
        or not 0 <= cfg_scale <= 1
    ):
        raise invalid("cfg_scale", "must be a number from 0 to 1")
    watermark = body.get("watermark_info")
    if watermark is not None and (
        not isinstance(watermark, dict) or not isinstance(watermark.get("enabled"), bool)
    ):
        raise invalid("watermark_info", 'must be {"enabled": true|false}')


def _duration(body: dict[str, Any]) -> int | None:
    value = body.get("duration")
    if value is None:
        return None
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or not MIN_DURATION <= int(text) <= MAX_DURATION:
        raise invalid("duration", f'must be a string "{MIN_DURATION}".."{MAX_DURATION}"')
    return int(text)


def _list_of_objects(body: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid(field, "must be a list of objects")
    return value


def _check_items(
    images: list[dict[str, Any]], videos: list[dict[str, Any]], elements: list[dict[str, Any]]
) -> None:
    for n, image in enumerate(images):
        if not isinstance(image.get("image_url"), str) or not image["image_url"]:
            raise invalid(f"image_list[{n}].image_url", "must not be empty")
        if image.get("type") not in (None, "first_frame", "end_frame"):
            raise invalid(f"image_list[{n}].type", "must be first_frame or end_frame")
    if len(videos) > 1:
        raise invalid("video_list", "at most 1 video is supported")
    for n, video in enumerate(videos):
        if not isinstance(video.get("video_url"), str) or not video["video_url"]:
            raise invalid(f"video_list[{n}].video_url", "must not be empty")
        if video.get("refer_type") not in ("feature", "base"):
            raise invalid(f"video_list[{n}].refer_type", "must be feature or base")
        if video.get("keep_original_sound") not in (None, "yes", "no"):
            raise invalid(f"video_list[{n}].keep_original_sound", "must be yes or no")
    for n, element in enumerate(elements):
        element_id = element.get("element_id")
        if not isinstance(element_id, int) or isinstance(element_id, bool):
            raise invalid(f"element_list[{n}].element_id", "must be an integer")


def _check_multi_shot(
    body: dict[str, Any], model: str, duration: int | None, *, has_frames: bool
) -> None:
    if model != V3:
        raise invalid("multi_shot", f"multi-shot is not supported by {model}")
    shot_type = body.get("shot_type")
    if shot_type is None:
        raise invalid("shot_type", "is required when multi_shot is true")
    if has_frames:
        raise invalid("image_list", "first/end frames are not supported with multi_shot")
    if shot_type != "customize":
        return
    shots = body.get("multi_prompt")
    if not isinstance(shots, list) or not 1 <= len(shots) <= MAX_SHOTS:
        raise invalid("multi_prompt", f"must hold 1..{MAX_SHOTS} shots for shot_type customize")
    total = 0
    for n, shot in enumerate(shots):
        seconds = shot.get("duration") if isinstance(shot, dict) else None
        text = str(seconds) if isinstance(seconds, int | str) else ""
        if not text.isdigit() or int(text) < 1:
            raise invalid(f"multi_prompt[{n}].duration", "must be at least 1 second")
        total += int(text)
    if duration is None or total != duration:
        raise invalid(
            "multi_prompt", f"the shots' durations ({total} s) must add up to duration ({duration})"
        )


def _check_frames(
    model: str,
    images: list[dict[str, Any]],
    first: list[dict[str, Any]],
    end: list[dict[str, Any]],
) -> None:
    if len(first) > 1 or len(end) > 1:
        raise invalid("image_list", "at most one first_frame and one end_frame")
    if end and not first:
        raise invalid("image_list", "an end_frame needs a first_frame")
    if model == O1 and (first or end) and len(images) > 2:
        raise invalid("image_list", f"{O1} supports first/end frames with at most 2 images")


def _check_video(body: dict[str, Any], model: str, is_base: bool, *, has_frames: bool) -> None:
    if is_base and model != V3:
        raise invalid("video_list[0].refer_type", f"base is not supported by {model}")
    if is_base and has_frames:
        raise invalid("image_list", "first/end frames cannot be used with a base video")
    if body.get("sound") == "on":
        raise KlingError(1201, SOUND_WITH_VIDEO)


def _check_duration(model: str, seconds: int, *, framed: bool, is_feature: bool) -> None:
    if model == V3 and is_feature and seconds > MAX_FEATURE_DURATION:
        raise invalid("duration", f"must be 3..{MAX_FEATURE_DURATION} with a reference video")
    if model == O1:
        if framed or is_feature:
            if seconds > MAX_FEATURE_DURATION:
                raise invalid("duration", f"must be 3..{MAX_FEATURE_DURATION} on {O1}")
        elif seconds not in (5, 10):
            raise invalid("duration", f"must be 5 or 10 on {O1} for text or image to video")


def _check_counts(
    model: str, images: int, elements: int, video: bool, framed: bool, first: bool
) -> None:
    limit = 4 if video else 7
    if images + elements > limit:
        raise invalid("image_list", f"images plus elements must not exceed {limit}")
    if model == V3 and first and elements > 3:
        raise invalid("element_list", f"{V3} supports at most 3 elements with a first frame")
    if model == O1 and framed and elements:
        raise invalid("element_list", f"{O1} supports no elements with first/end frames")
