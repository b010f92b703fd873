"""How each provider shape words a validated submission in its create body.

omnihook validates one canonical form (kling-api.md §3); a provider whose page documents a
dialect of its own is sent that dialect, since that is what its page promises to accept:

- ``newapi`` (EzModel, seed 001): a customized multi-shot is ``multi_prompt`` alone: "when
  using multi_prompt, the top-level prompt and duration parameters cannot be used", and its
  table knows no ``multi_shot`` or ``shot_type``. The shots' durations say the total (checked
  against ``duration`` before), and Kling ignores the prompt of a customized multi-shot anyway.

Other shapes take the canonical form as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = ["in_dialect"]

_NEWAPI_MULTI_SHOT_DROPS = ("multi_shot", "shot_type", "duration", "prompt")


def in_dialect(fields: dict[str, Any], provider: str | None) -> dict[str, Any]:
    """``fields`` (a canonical body) as ``provider`` documents it."""
    if provider == "newapi" and _is_customized_multi_shot(fields):
        return {key: value for key, value in fields.items() if key not in _NEWAPI_MULTI_SHOT_DROPS}
    return fields


def _is_customized_multi_shot(fields: dict[str, Any]) -> bool:
    return fields.get("multi_shot") is True and fields.get("shot_type") == "customize"
