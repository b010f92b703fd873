"""The cross-field rules of a submission (kling-api.md §3).

What one field allows often depends on others: the model, whether there is a first frame, a
reference video or several shots. The model in :mod:`service.kling.request` checks each field on
its own; these rules run on what parsed and return every rule broken, never only the first, so a
caller fixes a body in one go. ``model`` is ``None`` when the model name itself was unusable: the
rules that depend on it are then skipped rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from service.errors import Problem

if TYPE_CHECKING:
    from service.kling.request import Shot, SubmitRequest

ModelName = Literal["kling-video-o1", "kling-v3-omni"]
O1: Final = "kling-video-o1"
V3: Final = "kling-v3-omni"

MIN_DURATION: Final = 3
MAX_DURATION: Final = 15
MAX_FEATURE_DURATION: Final = 10  # with a reference video, and o1 first/end frames
O1_PLAIN_DURATIONS: Final = ("5", "10")

_REFERENCE = re.compile(r"<<<(image|element|video)_(\d+)>>>")


def submission_problems(
    req: SubmitRequest, model: ModelName | None, unknown: frozenset[str] = frozenset()
) -> list[Problem]:
    """Every cross-field rule ``req`` breaks, in a stable order.

    ``unknown`` names fields the caller sent but that did not parse: a rule reading one of
    them is skipped, since judging it on a field that is missing only here would be wrong.
    """
    facts = _Facts(req, model)
    return [
        problem for rule, reads in _RULES if not reads & unknown for problem in rule(req, facts)
    ]


class _Facts:
    """What the rules keep asking about a request: its frames and its video."""

    def __init__(self, req: SubmitRequest, model: ModelName | None) -> None:
        self.model = model
        images = req.image_list or []
        self.first_frames = [i for i, img in enumerate(images) if img.type == "first_frame"]
        self.end_frames = [i for i, img in enumerate(images) if img.type == "end_frame"]
        self.has_frame = bool(self.first_frames or self.end_frames)
        refer_type = req.video_list[0].refer_type if req.video_list else None
        self.is_base = refer_type == "base"
        self.is_feature = refer_type == "feature"


def _multi_shot_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    problems: list[Problem] = []
    if not req.multi_shot:
        # Kling silently ignores these without multi_shot: the caller's shots would be lost.
        if req.shot_type is not None:
            problems.append(Problem("shot_type", "only used when multi_shot is true"))
        if req.multi_prompt is not None:
            problems.append(
                Problem(
                    "multi_prompt", "only used when multi_shot is true with shot_type customize"
                )
            )
        return problems
    if facts.model == O1:
        problems.append(Problem("multi_shot", "only kling-v3-omni supports multi-shot videos"))
    if req.shot_type is None:
        problems.append(
            Problem("shot_type", "required when multi_shot is true: customize or intelligence")
        )
    elif req.shot_type == "customize" and req.multi_prompt is None:
        problems.append(
            Problem("multi_prompt", "required when shot_type is customize: 1 to 6 shots")
        )
    elif req.shot_type == "intelligence" and req.multi_prompt is not None:
        problems.append(
            Problem(
                "multi_prompt", "only used with shot_type customize (intelligence plans the shots)"
            )
        )
    if req.multi_prompt:
        problems += _shot_index_problems(req.multi_prompt)
        problems += _shot_duration_problems(req.multi_prompt, req.duration)
    return problems


def _shot_index_problems(shots: list[Shot]) -> list[Problem]:
    """Indexes are optional, but when given they number the shots 1..n, once each."""
    if all(shot.index is None for shot in shots):
        return []
    problems: list[Problem] = []
    seen: set[int] = set()
    for i, shot in enumerate(shots):
        field = f"multi_prompt.{i}.index"
        if shot.index is None:
            problems.append(Problem(field, "required when other shots have an index"))
        elif not 1 <= shot.index <= len(shots):
            problems.append(Problem(field, f"must be from 1 to {len(shots)} (the number of shots)"))
        elif shot.index in seen:
            problems.append(Problem(field, f"index {shot.index} is used by another shot"))
        else:
            seen.add(shot.index)
    return problems


def _shot_duration_problems(shots: list[Shot], duration: str | None) -> list[Problem]:
    total = sum(int(shot.duration) for shot in shots)
    if duration is None:
        if MIN_DURATION <= total <= MAX_DURATION:
            hint = f'set it to "{total}", the sum of the shots\' durations'
        else:
            hint = (
                f"the shots' durations add up to {total} s, outside {MIN_DURATION}..{MAX_DURATION}"
            )
        return [Problem("duration", f"required with multi_prompt: {hint}")]
    if total != int(duration):
        return [
            Problem(
                "multi_prompt",
                f"the shots' durations add up to {total} s but duration is {duration} s;"
                " they must be equal",
            )
        ]
    return []


def _prompt_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    # With multi_shot but no shot_type we cannot tell; shot_type is reported instead.
    if req.multi_shot and req.shot_type in ("customize", None):
        return []
    if req.prompt is None or not req.prompt.strip():
        return [
            Problem(
                "prompt",
                "required (up to 2500 characters) unless multi_shot is true"
                " with shot_type customize",
            )
        ]
    return []


def _frame_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    if req.multi_shot:
        return [
            Problem(f"image_list.{i}.type", "first/end frames are not supported with multi_shot")
            for i in sorted(facts.first_frames + facts.end_frames)
        ]
    problems = [
        Problem(f"image_list.{i}.type", "only one image may be the first_frame")
        for i in facts.first_frames[1:]
    ]
    problems += [
        Problem(f"image_list.{i}.type", "only one image may be the end_frame")
        for i in facts.end_frames[1:]
    ]
    if facts.end_frames and not facts.first_frames:
        problems.append(
            Problem(f"image_list.{facts.end_frames[0]}.type", "an end_frame needs a first_frame")
        )
    count = len(req.image_list or [])
    if facts.model == O1 and facts.has_frame and count > 2:
        problems.append(
            Problem(
                "image_list",
                f"kling-video-o1 takes first/end frames only with at most 2 images (here {count})",
            )
        )
    return problems


def _video_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    if not req.video_list:
        return []
    problems: list[Problem] = []
    if facts.is_base and facts.model == O1:
        problems.append(
            Problem(
                "video_list.0.refer_type",
                "base (video editing) needs kling-v3-omni; kling-video-o1 takes feature only",
            )
        )
    if facts.is_base and facts.has_frame:
        problems.append(
            Problem("video_list.0.refer_type", "base (video editing) cannot have first/end frames")
        )
    if req.sound == "on":
        problems.append(Problem("sound", "must be off when video_list is given"))
    return problems


def _aspect_ratio_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    # The first frame or the edited video sets the shape; otherwise nothing does.
    if req.aspect_ratio is None and not facts.first_frames and not facts.is_base:
        return [
            Problem(
                "aspect_ratio",
                "required when there is no first_frame image and no base video: 16:9, 9:16 or 1:1",
            )
        ]
    return []


def _duration_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    # Absent means Kling's default, 5, which every workflow allows; base follows its video;
    # multi-shot durations are checked against the shots.
    model = facts.model
    if req.duration is None or facts.is_base or model is None or req.multi_shot:
        return []
    seconds = int(req.duration)
    if model == V3 and facts.is_feature and seconds > MAX_FEATURE_DURATION:
        return [
            Problem(
                "duration",
                f"must be from {MIN_DURATION} to {MAX_FEATURE_DURATION} with a reference video"
                " (refer_type feature) on kling-v3-omni",
            )
        ]
    if model == O1 and (facts.has_frame or facts.is_feature):
        if seconds > MAX_FEATURE_DURATION:
            return [
                Problem(
                    "duration",
                    f"must be from {MIN_DURATION} to {MAX_FEATURE_DURATION} on kling-video-o1"
                    " with first/end frames or a reference video",
                )
            ]
    elif model == O1 and req.duration not in O1_PLAIN_DURATIONS:
        return [
            Problem(
                "duration",
                "must be 5 or 10 on kling-video-o1 for text or plain image to video"
                " (3 to 10 needs a first frame or a reference video)",
            )
        ]
    return []


def _count_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    images = len(req.image_list or [])
    elements = len(req.element_list or [])
    problems: list[Problem] = []
    limit, context = (4, " with a reference video") if req.video_list else (7, "")
    if images + elements > limit:
        problems.append(
            Problem(
                "image_list" if images else "element_list",
                f"images plus elements must be at most {limit}{context}"
                f" (here {images} + {elements})",
            )
        )
    if facts.model == V3 and facts.first_frames and elements > 3:
        problems.append(
            Problem("element_list", "kling-v3-omni takes at most 3 elements with a first_frame")
        )
    if facts.model == O1 and facts.has_frame and elements:
        problems.append(
            Problem("element_list", "kling-video-o1 takes no elements with first/end frames")
        )
    return problems


def _reference_problems(req: SubmitRequest, facts: _Facts) -> list[Problem]:
    """``<<<image_3>>>`` with two images would point at nothing; Kling answers with a 1201."""
    available = {
        "image": len(req.image_list or []),
        "element": len(req.element_list or []),
        "video": len(req.video_list or []),
    }
    texts = [("prompt", req.prompt or "")]
    texts += [(f"multi_prompt.{i}.prompt", s.prompt) for i, s in enumerate(req.multi_prompt or [])]
    problems: list[Problem] = []
    for field, text in texts:
        for kind, number in dict.fromkeys(_REFERENCE.findall(text)):
            if not 1 <= int(number) <= available[kind]:
                problems.append(
                    Problem(
                        field,
                        f"<<<{kind}_{number}>>> refers to no {kind}:"
                        f" {kind}_list has {available[kind]}",
                    )
                )
    return problems


_Rule = Callable[["SubmitRequest", _Facts], list[Problem]]

# Each rule with the fields it reads (the model aside: rules skip what needs an unknown model).
_RULES: Final[list[tuple[_Rule, frozenset[str]]]] = [
    (_multi_shot_problems, frozenset({"multi_shot", "shot_type", "multi_prompt", "duration"})),
    (_prompt_problems, frozenset({"prompt", "multi_shot", "shot_type"})),
    (_frame_problems, frozenset({"image_list", "multi_shot"})),
    (_video_problems, frozenset({"video_list", "image_list", "sound"})),
    (_aspect_ratio_problems, frozenset({"aspect_ratio", "image_list", "video_list"})),
    (_duration_problems, frozenset({"duration", "image_list", "video_list", "multi_shot"})),
    (_count_problems, frozenset({"image_list", "element_list", "video_list"})),
    (
        _reference_problems,
        frozenset({"prompt", "multi_prompt", "image_list", "element_list", "video_list"}),
    ),
]
