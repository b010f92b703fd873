"""Each provider's documented defaults, filled into a submission before it is validated.

A field the caller leaves out is decided by the provider, and every Kling second is paid for: so
omnihook writes the provider's documented default into the body itself, validates that, sends
it explicitly and stores it in the task's ``request``, which then says exactly what was bought.
A default no seed page documents is never guessed: the field stays missing and the rule that
needs it answers 422.

Defaults by ``OMNIHOOK_PROVIDER`` (seed pages in ``shared/seeds``; "-": none documented, the
field stays required where a rule needs it):

==============  ==============================  ==========================  ==============
field           ``kling`` (Kling, PowerTokens,  ``newapi`` (EzModel,        ``apimodels``
                CometAPI; seeds 000, 004)       new-api; seeds 001, 003)    (seed 002)
==============  ==============================  ==========================  ==============
model           ``kling-video-o1`` (CometAPI:   -                           -
                "omit to use kling-video-o1")
mode            ``pro``                         ``std`` (``4k`` refused)    ``std`` (same)
duration        ``"5"``                         ``"5"``; the shots' sum     ``"5"``
                                                with ``multi_prompt``
aspect_ratio    ``16:9`` (CometAPI; Kling and   ``16:9``                    -
                PowerTokens call it required)
sound           ``off``                         ``off``                     ``off``
refer_type      ``base`` (PowerTokens: "defaults    -                           -
                to video to be edited")
multi-shot      -                               ``multi_prompt`` alone:     -
                                                ``multi_shot`` true,
                                                ``shot_type`` customize
==============  ==============================  ==========================  ==============

Where a default does not apply it is not filled: no ``duration`` for an edit (``refer_type``
base follows its input video), no ``aspect_ratio`` when a first frame or an edited video sets
the shape. Customized shots must add up to ``duration``: its default 5 applies to them too
(a 422 then says the shots add up to more), except at new-api, whose total is their sum (and
whose multi-shot goes out in its own dialect, :mod:`.request_dialects`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from service.errors import Problem

__all__ = ["DEFAULTS", "Defaulted", "ProviderDefaults", "explain", "with_defaults"]


@dataclass(frozen=True)
class ProviderDefaults:
    """What one provider shape assumes for a field left out (``None``: nothing documented)."""

    model: str | None = None
    mode: str | None = None
    duration: str | None = None
    aspect_ratio: str | None = None
    sound: str | None = None
    refer_type: str | None = None
    # new-api's dialect: multi_prompt alone is a customized multi-shot, its total the shots' sum.
    shots_alone_are_multi_shot: bool = False


DEFAULTS: Final[dict[str, ProviderDefaults]] = {
    "kling": ProviderDefaults(
        model="kling-video-o1",
        mode="pro",
        duration="5",
        aspect_ratio="16:9",
        sound="off",
        refer_type="base",
    ),
    "newapi": ProviderDefaults(
        mode="std",
        duration="5",
        aspect_ratio="16:9",
        sound="off",
        shots_alone_are_multi_shot=True,
    ),
    "apimodels": ProviderDefaults(mode="std", duration="5", sound="off"),
}


@dataclass(frozen=True)
class Defaulted:
    """A body with the provider's defaults written in, and which fields they filled."""

    body: dict[str, Any]
    filled: dict[str, Any] = field(default_factory=dict)  # dotted field path -> value


def with_defaults(body: Mapping[str, Any], provider: str | None) -> Defaulted:
    """``body`` with ``provider``'s defaults for the fields left out; ``None`` fills nothing.

    Only fields that are absent are filled, and only from parts of the body that are well
    formed enough to tell whether a default applies; anything odd is left to validation.
    """
    out = dict(body)
    defaults = DEFAULTS.get(provider) if provider is not None else None
    if defaults is None:
        return Defaulted(out)
    filled: dict[str, Any] = {}

    def fill(key: str, value: Any) -> None:
        if key not in out and value is not None:
            out[key] = value
            filled[key] = value

    if "model_name" not in out and "model" not in out:
        fill("model_name", defaults.model)
    shots_alone = "multi_prompt" in out and "multi_shot" not in out and "shot_type" not in out
    if defaults.shots_alone_are_multi_shot and shots_alone:
        fill("multi_shot", True)
        fill("shot_type", "customize")
    _fill_refer_types(out, defaults, filled)

    first_frame = _has_first_frame(out.get("image_list"))
    is_base = _refer_type(out.get("video_list")) == "base"
    multi_shot = out.get("multi_shot") is True
    customize = multi_shot and out.get("shot_type") == "customize"
    if not is_base:
        if customize and defaults.shots_alone_are_multi_shot:
            fill("duration", _shots_total(out.get("multi_prompt")))
        else:
            fill("duration", defaults.duration)
    fill("mode", defaults.mode)
    fill("sound", defaults.sound)
    if not first_frame and not is_base:
        fill("aspect_ratio", defaults.aspect_ratio)
    return Defaulted(out, filled)


def explain(problems: list[Problem], defaulted: Defaulted, provider: str | None) -> list[Problem]:
    """Problems that hinge on a filled-in field say so: the caller never wrote that value."""
    explained: list[Problem] = []
    for problem in problems:
        path = _DECIDED_BY.get(problem.field, problem.field)
        if path in defaulted.filled:
            value = defaulted.filled[path]
            which = "" if path == problem.field else f"{path} "
            problem = Problem(
                problem.field,
                f"{problem.message}"
                f" ({which}left out: the {provider} provider sets it to {value!r})",
            )
        explained.append(problem)
    return explained


# A problem reported at one field but caused by another's value.
_DECIDED_BY: Final = {"multi_prompt": "duration"}


def _fill_refer_types(
    out: dict[str, Any], defaults: ProviderDefaults, filled: dict[str, Any]
) -> None:
    videos = out.get("video_list")
    if defaults.refer_type is None or not isinstance(videos, list):
        return
    items: list[Any] = []
    for i, item in enumerate(videos):
        if isinstance(item, dict) and "refer_type" not in item:
            item = {**item, "refer_type": defaults.refer_type}
            filled[f"video_list.{i}.refer_type"] = defaults.refer_type
        items.append(item)
    out["video_list"] = items


def _has_first_frame(images: Any) -> bool:
    return isinstance(images, list) and any(
        isinstance(image, dict) and image.get("type") == "first_frame" for image in images
    )


def _refer_type(videos: Any) -> Any:
    if isinstance(videos, list) and videos and isinstance(videos[0], dict):
        return videos[0].get("refer_type")
    return None


def _shots_total(shots: Any) -> str | None:
    """The shots' durations added up, or ``None`` when a shot's duration is unreadable."""
    if not isinstance(shots, list) or not shots:
        return None
    total = 0
    for shot in shots:
        value = shot.get("duration") if isinstance(shot, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | str):
            return None
        text = str(value)
        if not text.isdecimal():
            return None
        total += int(text)
    return str(total)
