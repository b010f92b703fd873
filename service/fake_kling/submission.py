"""Reading a create body the way the provider does (kling-api.md §3).

The profile's documented defaults are filled in first (:mod:`.defaults`), then the body must
pass the provider's rules (:mod:`.rules`) and what decides the simulator's own behaviour
(model, prompts, ids, callback URL); any refusal is a 1201 naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .defaults import PROFILE_DEFAULTS, apply_defaults
from .errors import KlingError, invalid
from .rules import check_newapi_dialect, check_rules

MODELS = ("kling-video-o1", "kling-v3-omni")
MAX_PROMPT = 2500
MAX_SHOT_PROMPT = 512
MAX_SHOTS = 6


@dataclass(frozen=True)
class CreateRequest:
    """What the simulator needs from a create body."""

    model_name: str
    prompts: tuple[str, ...]
    external_task_id: str | None = None
    callback_url: str | None = None
    duration: str = "5"
    mode: str = "pro"
    watermark: bool = False  # watermark_info.enabled: a watermarked copy of every output


def parse_create_body(body: Any, *, profile: str = "kling") -> CreateRequest:
    """Check ``body`` as ``profile``'s provider would and extract a :class:`CreateRequest`;
    raises :class:`KlingError` 1200/1201."""
    if not isinstance(body, dict):
        raise KlingError(1200, "Invalid request body: a JSON object is required")
    defaults = PROFILE_DEFAULTS[profile]
    model_field = defaults.model_field
    if profile == "newapi":
        check_newapi_dialect(body)
    body = apply_defaults(body, defaults)
    model = body.get(model_field)
    if model is None:
        raise invalid(model_field, "is required")
    if model not in MODELS:
        raise invalid(model_field, f"must be one of {', '.join(MODELS)}")
    if body.get("mode") not in defaults.modes:
        raise invalid("mode", f"must be one of {', '.join(defaults.modes)}")
    check_rules(body, model)
    return CreateRequest(
        model_name=model,
        prompts=_prompts(body),
        external_task_id=_optional_text(body, "external_task_id"),
        callback_url=_callback_url(body),
        duration=_duration(body),
        mode=str(body["mode"]),
        watermark=_watermark(body),
    )


def _prompts(body: dict[str, Any]) -> tuple[str, ...]:
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise invalid("prompt", "must be a string")
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise invalid("prompt", f"must be at most {MAX_PROMPT} characters")
    multi_shot = body.get("multi_shot", False)
    if not isinstance(multi_shot, bool):
        raise invalid("multi_shot", "must be a boolean")
    if not multi_shot:
        if not prompt:
            raise invalid("prompt", "is required")
        return (prompt,)
    shots = body.get("multi_prompt")
    if shots is None:
        if body.get("shot_type") == "customize":
            raise invalid("multi_prompt", "is required when shot_type is customize")
        return (prompt,) if prompt else ()
    if not isinstance(shots, list) or not 1 <= len(shots) <= MAX_SHOTS:
        raise invalid("multi_prompt", f"must be a list of 1..{MAX_SHOTS} shots")
    texts: list[str] = []
    for index, shot in enumerate(shots):
        text = shot.get("prompt") if isinstance(shot, dict) else None
        if not isinstance(text, str) or not text:
            raise invalid(f"multi_prompt[{index}].prompt", "is required")
        if len(text) > MAX_SHOT_PROMPT:
            raise invalid(
                f"multi_prompt[{index}].prompt", f"must be at most {MAX_SHOT_PROMPT} characters"
            )
        texts.append(text)
    return ((prompt,) if prompt else ()) + tuple(texts)


def _optional_text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(field, "must be a non-empty string")
    return value


def _callback_url(body: dict[str, Any]) -> str | None:
    url = _optional_text(body, "callback_url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid("callback_url", "must be an absolute http(s) URL")
    return url


def _watermark(body: dict[str, Any]) -> bool:
    # check_rules has refused any shape but {"enabled": bool}
    watermark = body.get("watermark_info")
    return isinstance(watermark, dict) and watermark.get("enabled") is True


def _duration(body: dict[str, Any]) -> str:
    value = body.get("duration", "5")
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 3 <= int(text) <= 15:
        raise invalid("duration", 'must be a string "3".."15"')
    return text
