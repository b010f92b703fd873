"""A task's estimated cost, from its provider body (as stored) and its provider's price table.

The body is :meth:`SubmitRequest.provider_body <service.kling.request.SubmitRequest.provider_body>`:
the provider's defaults (mode, duration, sound) are already written in, the model is under
``model_name`` or ``model``. The estimate is the table's per-second rate for the model, mode and
variant (:mod:`.price_table`) times the seconds billed:

- an edit (``video_list[0].refer_type`` ``base``) is billed on its input video's length, which
  is unknown before the provider fetches it: it is priced at the table's ``edit_seconds``, the
  longest input the seeds allow, so a budget is never exceeded by surprise;
- otherwise ``duration``; a customized multi-shot that has none (new-api's dialect sends the
  shots alone) is the sum of its shots' durations.

A request the table cannot price (an unknown model, a mode or option without a rate, no
seconds to bill) raises :class:`~service.errors.PriceUnknown` rather than returning a guess:
the caller stores no estimate, and refuses the submission when a budget is configured, since a
budget that unpriced tasks slip past is no budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from service.costs.amounts import decimal_text
from service.costs.price_table import PriceTable, Variant
from service.errors import PriceUnknown

__all__ = ["CostEstimate", "estimate_cost"]


@dataclass(frozen=True)
class CostEstimate:
    """An estimated cost: ``amount`` in ``currency``, and what it was computed from."""

    amount: Decimal
    currency: str
    # provider, model, mode, seconds, seconds_from, sound, video_input, keep_original_sound,
    # variant, rate (per second, a string) and rate_from: JSON-safe values only.
    basis: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: the amount as a decimal string (``"0.3165"``), never a float."""
        return {
            "amount": decimal_text(self.amount),
            "currency": self.currency,
            "basis": dict(self.basis),
        }


def estimate_cost(request: Mapping[str, Any], provider: str, table: PriceTable) -> CostEstimate:
    """The cost of ``request`` at ``provider`` by ``table``; PriceUnknown when it cannot say."""
    model = request.get("model_name", request.get("model"))
    if not isinstance(model, str) or not model:
        raise PriceUnknown(provider, "a request that names no model")
    mode = request.get("mode")
    if not isinstance(mode, str) or not mode:
        raise PriceUnknown(provider, f"{model} without a mode (the request names none)")
    video = _first_video(request.get("video_list"))
    refer_type = _text(video.get("refer_type")) if video is not None else None
    keeps_sound = video is not None and video.get("keep_original_sound") == "yes"
    sound = request.get("sound") == "on"
    variant = _variant(sound=sound, video=video is not None, keeps_sound=keeps_sound)
    rate = table.rate(provider, model, mode, variant)
    seconds, seconds_from = _seconds(request, provider, table, edit=refer_type == "base")
    return CostEstimate(
        amount=rate.per_second * seconds,
        currency=table.currency,
        basis={
            "provider": provider,
            "model": model,
            "mode": mode,
            "seconds": int(seconds),
            "seconds_from": seconds_from,
            "sound": sound,
            "video_input": (refer_type or "unknown") if video is not None else None,
            "keep_original_sound": keeps_sound,
            "variant": variant,
            "rate": decimal_text(rate.per_second),
            "rate_from": rate.derivation,
        },
    )


def _variant(*, sound: bool, video: bool, keeps_sound: bool) -> Variant:
    # A video input rules sound out (request_rules refuses both), so the video decides.
    if video:
        return "video_keep_sound" if keeps_sound else "video"
    return "sound" if sound else "plain"


def _seconds(
    request: Mapping[str, Any], provider: str, table: PriceTable, *, edit: bool
) -> tuple[Decimal, str]:
    """The seconds billed and where they come from: edit_seconds, duration or shots."""
    if edit:
        return Decimal(table.edit_seconds), "edit_seconds"
    duration = request.get("duration")
    if duration is not None:
        seconds = _whole_seconds(duration)
        if seconds is None:
            raise PriceUnknown(provider, f"a duration of {str(duration)[:20]!r}")
        return seconds, "duration"
    shots = request.get("multi_prompt")
    if isinstance(shots, list) and shots:
        total = Decimal(0)
        for shot in shots:
            seconds = _whole_seconds(shot.get("duration")) if isinstance(shot, Mapping) else None
            if seconds is None:
                raise PriceUnknown(provider, "a shot without a readable duration")
            total += seconds
        return total, "shots"
    raise PriceUnknown(provider, "a request that names no duration")


def _whole_seconds(value: Any) -> Decimal | None:
    """``"5"`` or ``5`` -> 5; anything else (a bool, a fraction, a negative) -> None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        seconds = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not seconds.is_finite() or seconds <= 0 or seconds != seconds.to_integral_value():
        return None
    return seconds


def _first_video(videos: Any) -> Mapping[str, Any] | None:
    if isinstance(videos, list) and videos and isinstance(videos[0], Mapping):
        return videos[0]
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
