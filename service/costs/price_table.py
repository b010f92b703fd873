"""Per-provider price tables, and the ``OMNIHOOK_PRICE_TABLE`` file that overrides them.

A provider (an ``OMNIHOOK_PROVIDER`` value) has one table, in one currency or unit: official
Kling bills in "units" (what its ``final_unit_deduction`` reports), the gateways in USD. The
defaults, drawn from the seed pages, are in :mod:`.default_prices`; the file is read by
:mod:`.price_file`.

What a request pays per second depends on its model, its ``mode`` and its *variant*:

====================  ======================================================
variant               the request
====================  ======================================================
``plain``             no sound, no video input
``sound``             ``sound`` ``on``
``video``             a video in ``video_list`` (``feature`` or ``base``)
``video_keep_sound``  a video with ``keep_original_sound`` ``yes``
====================  ======================================================

(``sound`` must be off with a video input, so the variants do not overlap.) The rate of a
model, mode and variant is, in this order:

1. ``rates[mode][variant]`` when the table gives it;
2. ``rates[mode]["plain"]`` x ``multipliers[variant]`` when both are given;
3. for ``video_keep_sound``, the ``video`` rate: keeping the sound costs extra only where a
   table says so;
4. otherwise the table cannot price it: :class:`~service.errors.PriceUnknown`.

The file (JSON) maps provider names to whole tables; a provider it names has its table
replaced, the others keep their defaults::

    {
      "kling": {
        "currency": "units",
        "reported_cost_in_currency": true,
        "edit_seconds": 10,
        "note": "our contract with Kling, 2026-12",
        "models": {
          "kling-video-o1": {
            "rates": {"std": {"plain": "0.6"}, "pro": {"plain": "0.8", "sound": "1.2"}},
            "multipliers": {"sound": "1.5", "video": "1.5"}
          }
        }
      }
    }

Fields: ``currency`` (required, any name: ``"USD"``, ``"units"``...); ``models`` (required;
model name -> ``rates``, the per-second rate by mode (``std``, ``pro``, ``4k``) and variant, and
optional ``multipliers`` by variant (``sound``, ``video``, ``video_keep_sound``));
``edit_seconds`` (default 10): the seconds an edit (``refer_type`` ``base``) is priced at,
since it is billed on its input video's length, unknown before the provider fetches it;
``reported_cost_in_currency`` (default: whether ``currency`` is ``"units"``): whether the
provider's reported final cost (``final_unit_deduction``) is in the table's currency, so that
it may replace the estimate in a budget; ``note``: free text. Amounts are decimal strings (or
JSON numbers), rates ≥ 0, multipliers > 0; unknown fields are refused. Every mistake is
reported with the file's path and the field's dotted path.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from service.costs.amounts import decimal_text
from service.errors import PriceUnknown

__all__ = [
    "ModelPrices",
    "PriceTable",
    "Rate",
    "Variant",
]

Mode = Literal["std", "pro", "4k"]
Variant = Literal["plain", "sound", "video", "video_keep_sound"]
ExtraVariant = Literal["sound", "video", "video_keep_sound"]

# A bool is an int to pydantic's lax mode: refuse it before it becomes 1.
_NOT_BOOL: Final = "a bool is not an amount"


def _amount(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(_NOT_BOOL)
    if isinstance(value, float):
        return repr(value)  # the digits as written in the JSON, not the binary float's
    return value


PerSecond = Annotated[Decimal, BeforeValidator(_amount), Field(ge=0, allow_inf_nan=False)]
Multiplier = Annotated[Decimal, BeforeValidator(_amount), Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPrices(_Model):
    """One model's per-second rates by mode and variant, and multipliers by variant."""

    rates: dict[Mode, dict[Variant, PerSecond]]
    multipliers: dict[ExtraVariant, Multiplier] = Field(default_factory=dict)


@dataclass(frozen=True)
class Rate:
    """A per-second rate and how the table arrived at it (for an estimate's ``basis``)."""

    per_second: Decimal
    derivation: str  # "rates.pro.sound", "rates.std.plain x multipliers.video (1.5)", ...


class PriceTable(_Model):
    """One provider's prices, all in ``currency``."""

    currency: str = Field(min_length=1, max_length=32)
    models: dict[Annotated[str, Field(min_length=1)], ModelPrices]
    # Strict: a JSON true is not 1 second, nor "yes" a bool.
    edit_seconds: int = Field(default=10, ge=1, le=600, strict=True)
    reported_cost_in_currency: bool | None = Field(default=None, strict=True)
    note: str = ""

    @property
    def final_cost_comparable(self) -> bool:
        """Whether the provider's reported final cost is in this table's currency."""
        if self.reported_cost_in_currency is not None:
            return self.reported_cost_in_currency
        return self.currency == "units"

    def rate(self, provider: str, model: str, mode: str, variant: Variant) -> Rate:
        """The per-second rate of ``model`` in ``mode`` for ``variant``; PriceUnknown if none."""
        prices = self.models.get(model)
        if prices is None:
            raise PriceUnknown(provider, f"model {model!r}")
        if mode not in prices.rates:
            raise PriceUnknown(provider, f"{model} in mode {mode!r}")
        row = prices.rates[mode]
        if variant in row:
            return Rate(row[variant], f"rates.{mode}.{variant}")
        if variant != "plain" and "plain" in row and variant in prices.multipliers:
            factor = prices.multipliers[variant]
            return Rate(
                row["plain"] * factor,
                f"rates.{mode}.plain x multipliers.{variant} ({decimal_text(factor)})",
            )
        if variant == "video_keep_sound":
            return self.rate(provider, model, mode, "video")
        raise PriceUnknown(provider, f"{model} in mode {mode} with {_WORDS[variant]}")


_WORDS: Final[dict[Variant, str]] = {
    "plain": "neither sound nor video input",
    "sound": "sound on",
    "video": "a video input",
    "video_keep_sound": "a video input keeping its sound",
}
