"""What each simulated provider assumes for a create field left out (the seed pages' defaults).

The simulator is a model of the provider, so it keeps its own copy of the table rather than
borrowing omnihook's (a shared table would make omnihook's tests agree with themselves):

=================  ===========================  ===========================  ==================
field              ``kling`` (Kling, PowerTokens,  ``newapi`` (EzModel)       ``apimodels``
                   CometAPI)
=================  ===========================  ===========================  ==================
model              ``kling-video-o1`` (CometAPI)  required                   required
mode               ``pro``                      ``std``                      ``std``
duration           ``"5"``                      ``"5"``; ``multi_prompt``:   ``"5"``
                                                the shots' sum
aspect_ratio       ``16:9`` (CometAPI)          ``16:9``                     not documented
                                                                             (not required)
sound              ``off``                      ``off``                      ``off``
refer_type         ``base`` (PowerTokens)       required                     required
multi-shot         ``multi_shot`` false         ``multi_prompt`` alone is    ``multi_shot``
                                                a customized multi-shot      false
modes taken        std, pro, 4k                 std, pro                     std, pro
=================  ===========================  ===========================  ==================

No duration is assumed for an edit (it follows the input video), no aspect ratio when a first
frame or an edited video sets the shape; customized shots must add up to the duration, 5 when
left out (new-api aside, whose total is their sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Defaults:
    model_field: str
    model: str | None
    mode: str
    aspect_ratio: str | None
    refer_type: str | None
    shots_alone_are_multi_shot: bool
    duration: str = "5"
    sound: str = "off"
    modes: tuple[str, ...] = ("std", "pro", "4k")  # the modes the page lists


_GATEWAY_MODES: Final = ("std", "pro")  # EzModel and apimodels list no 4k


PROFILE_DEFAULTS: Final[dict[str, Defaults]] = {
    "kling": Defaults("model_name", "kling-video-o1", "pro", "16:9", "base", False),
    "newapi": Defaults("model", None, "std", "16:9", None, True, modes=_GATEWAY_MODES),
    "apimodels": Defaults("model", None, "std", None, None, False, modes=_GATEWAY_MODES),
}


def apply_defaults(body: dict[str, Any], defaults: Defaults) -> dict[str, Any]:
    """A copy of ``body`` with the fields it leaves out set as the provider would set them."""
    out = dict(body)
    if defaults.model is not None:
        out.setdefault(defaults.model_field, defaults.model)
    if (
        defaults.shots_alone_are_multi_shot
        and "multi_prompt" in out
        and "multi_shot" not in out
        and "shot_type" not in out
    ):
        out["multi_shot"], out["shot_type"] = True, "customize"
    videos = out.get("video_list")
    if defaults.refer_type is not None and isinstance(videos, list):
        out["video_list"] = [
            {"refer_type": defaults.refer_type, **video} if isinstance(video, dict) else video
            for video in videos
        ]
    is_base = _refer_type(out.get("video_list")) == "base"
    customize = out.get("multi_shot") is True and out.get("shot_type") == "customize"
    if "duration" not in out and not is_base:
        total = _shots_total(out.get("multi_prompt"))
        if customize and defaults.shots_alone_are_multi_shot and total is not None:
            out["duration"] = total
        else:
            out["duration"] = defaults.duration
    out.setdefault("mode", defaults.mode)
    out.setdefault("sound", defaults.sound)
    if defaults.aspect_ratio is not None and not is_base and not _has_first_frame(out):
        out.setdefault("aspect_ratio", defaults.aspect_ratio)
    return out


def _refer_type(videos: Any) -> Any:
    if isinstance(videos, list) and videos and isinstance(videos[0], dict):
        return videos[0].get("refer_type")
    return None


def _has_first_frame(body: dict[str, Any]) -> bool:
    images = body.get("image_list")
    return isinstance(images, list) and any(
        isinstance(image, dict) and image.get("type") == "first_frame" for image in images
    )


def _shots_total(shots: Any) -> str | None:
    if not isinstance(shots, list):
        return None
    durations = [shot.get("duration") if isinstance(shot, dict) else None for shot in shots]
    if not all(isinstance(d, str | int) and str(d).isdigit() for d in durations):
        return None
    return str(sum(int(str(d)) for d in durations))
