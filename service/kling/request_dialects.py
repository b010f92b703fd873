"""How each provider shape words a validated submission in its create body.

omnihook validates one canonical form (kling-api.md §3); a provider whose page documents a
dialect of its own is sent that dialect, since that is what its page promises to accept:

- ``newapi`` (EzModel, seed 001): a customized multi-shot is ``multi_prompt`` alone: "when
  using multi_prompt, the top-level prompt and duration parameters cannot be used", and its
  table knows no ``multi_shot`` or ``shot_type``. The shots' durations say the total (checked
  against ``duration`` before), and Kling ignores the prompt of a customized multi-shot anyway.

Other shapes take the canonical form as it is. A value a provider's page does not list is
refused before anything is paid for (:func:`dialect_problems`): ``mode`` ``4k`` is Kling's and
PowerTokens', while EzModel and apimodels list ``std`` and ``pro`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from service.errors import Problem

if TYPE_CHECKING:
    from service.kling.request import SubmitRequest

__all__ = ["dialect_problems", "in_dialect"]

_MODES: Final[dict[str, tuple[str, ...]]] = {"newapi": ("std", "pro"), "apimodels": ("std", "pro")}


def dialect_problems(req: SubmitRequest, provider: str | None) -> list[Problem]:
    """What ``provider``'s page does not take, though Kling's own API would."""
    modes = _MODES.get(provider or "")
    if modes is not None and req.mode is not None and req.mode not in modes:
        return [Problem("mode", f"must be {' or '.join(modes)} at the {provider} provider")]
    return []


_NEWAPI_MULTI_SHOT_DROPS = ("multi_shot", "shot_type", "duration", "prompt")


def in_dialect(fields: dict[str, Any], provider: str | None) -> dict[str, Any]:
    """``fields`` (a canonical body) as ``provider`` documents it."""
    if provider == "newapi" and _is_customized_multi_shot(fields):
        return {key: value for key, value in fields.items() if key not in _NEWAPI_MULTI_SHOT_DROPS}
    return fields


def _is_customized_multi_shot(fields: dict[str, Any]) -> bool:
    return fields.get("multi_shot") is True and fields.get("shot_type") == "customize"
