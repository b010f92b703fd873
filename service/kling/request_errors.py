"""Pydantic's validation errors, told in our words, as :class:`~service.errors.Problem` lists.

A caller sees a dotted field path (``image_list.1.type``) and a message that says what is
allowed, never pydantic's wording or its URLs. The cross-field rules travel inside pydantic as
one error of type :data:`RULES_ERROR` carrying their problems, and are unpacked here.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from service.errors import Problem

RULES_ERROR: Final = "submission_rules"

_MESSAGES: Final[dict[str, str]] = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "literal_error": "must be {expected}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "finite_number": "must be a finite number",
}

# Where the generic wording would not say enough. List positions are written as "*".
_SPECIAL: Final[dict[tuple[str, str], str]] = {
    ("callback_url", "extra_forbidden"): (
        "not accepted: omnihook sets callback_url itself, from OMNIHOOK_PUBLIC_URL"
    ),
    ("model", "extra_forbidden"): "give the model once, as model_name or model",
    ("model_name", "missing"): "required: kling-video-o1 or kling-v3-omni (model_name or model)",
    ("multi_prompt", "too_short"): "must have 1 to 6 shots",
    ("multi_prompt", "too_long"): "must have 1 to 6 shots",
    ("video_list", "too_long"): "must have at most 1 video",
    ("cfg_scale", "greater_than_equal"): "must be a number from 0 to 1",
    ("cfg_scale", "less_than_equal"): "must be a number from 0 to 1",
    ("cfg_scale", "finite_number"): "must be a number from 0 to 1",
    ("element_list.*.element_id", "greater_than"): "must be a positive element id",
    ("image_list.*.type", "literal_error"): (
        "must be 'first_frame' or 'end_frame', or left out for a plain reference image"
    ),
}

_POSITION = re.compile(r"(?<=\.)\d+(?=\.|$)")


def problems_of(exc: ValidationError) -> list[Problem]:
    """Every error of ``exc`` as problems, in pydantic's order."""
    return [problem for error in exc.errors() for problem in _problems_of(error)]


def _problems_of(error: ErrorDetails) -> list[Problem]:
    ctx = error.get("ctx", {})
    if error["type"] == RULES_ERROR:
        return [Problem(field, message) for field, message in ctx["problems"]]
    field = ".".join(str(part) for part in error["loc"]) or "body"
    special = _SPECIAL.get((_POSITION.sub("*", field), error["type"]))
    if special is not None:
        return [Problem(field, special)]
    template = _MESSAGES.get(error["type"])
    if template is None:
        return [Problem(field, error["msg"])]
    return [Problem(field, template.format(**ctx))]
