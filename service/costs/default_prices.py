"""The default price tables, one per ``OMNIHOOK_PROVIDER`` value, drawn from the seed pages.

Only one seed page prices anything in figures: apimodels' (seed 002, $/s by model, mode, audio
and keep-sound). EzModel's (seed 001) gives multipliers only: pro x1.333, audio x1.5, video
input x1.5. Kling's own unit prices, and PowerTokens' and CometAPI's (seeds 000, 004), are in
no seed page. Where a figure is missing the fallback is named beside it; every default can be
replaced with an ``OMNIHOOK_PRICE_TABLE`` file (:mod:`.price_table`), which any real budget
should use with the prices of its own account.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from service.costs.price_table import PriceTable

__all__ = ["DEFAULT_PRICE_TABLES"]

# --- kling: official Kling, in units (what final_unit_deduction reports) ---------------------
# No seed gives Kling's own unit rates (seeds 000 and 004, PowerTokens and CometAPI, which
# share this API shape, give no price at all). FALLBACK: 0.6 units/s for std is the figure of
# this project's simulator (service/fake_kling/progression.py), not a published price; pro is
# std x 4/3 (seed 001: "Pro: Per-second billing x1.333"), 0.8, also the simulator's. kling-api.md
# §4's captured answer (7.2 units for a 6.041 s video) fits 1.2 units/s x 6 s, i.e. pro with a
# video input at these rates, but its request is not shown, so it confirms nothing.
# Sound and video input: x1.5 each (seed 001's multipliers; seed 002 prices o1's audio at
# about x1.5 too, 0.0956 / 0.0633). 4k (seed 000 lists the mode) is priced by no seed: no rate,
# so a 4k request is PriceUnknown until a file gives one. PowerTokens and CometAPI bill in their
# own money: with them, give a file in that currency.
_KLING_MODEL: Final = {
    "rates": {"std": {"plain": "0.6"}, "pro": {"plain": "0.8"}},
    "multipliers": {"sound": "1.5", "video": "1.5"},
}
KLING: Final = PriceTable.model_validate(
    {
        "currency": "units",
        "reported_cost_in_currency": True,  # final_unit_deduction is in units
        "edit_seconds": 10,  # seed 004: an edit's input video is "from 3 to 10 seconds"
        "note": "fallback rates (no seed prices Kling's units): override with a file",
        "models": {"kling-video-o1": _KLING_MODEL, "kling-v3-omni": _KLING_MODEL},
    }
)

# --- newapi: EzModel (seeds 001, 003), in USD --------------------------------------------------
# Seed 001's pricing table: base "Per-second billing", Pro "x1.333", "With Audio x1.5" (v3-omni
# only; "-" for kling-video-o1, which it lists without native audio), "With Video Input x1.5"
# (both models). Seed 003 prices nothing. FALLBACK for the base, which EzModel does not state in
# figures: apimodels' std rate, $0.0633/s (seed 002), the only seed page with a $/s figure.
_EZMODEL_STD: Final = Decimal("0.0633")  # seed 002, borrowed: see above
_EZMODEL_PRO: Final = _EZMODEL_STD * Decimal("1.333")  # seed 001: Pro x1.333
_EZMODEL_RATES: Final = {"std": {"plain": _EZMODEL_STD}, "pro": {"plain": _EZMODEL_PRO}}
NEWAPI: Final = PriceTable.model_validate(
    {
        "currency": "USD",
        # The gateway relays Kling's final_unit_deduction (units), not what it charges in USD.
        "reported_cost_in_currency": False,
        "edit_seconds": 10,  # seed 004: an edit's input video is "from 3 to 10 seconds"
        "note": "seed 001 multipliers on seed 002's std base (EzModel states no $/s)",
        "models": {
            "kling-v3-omni": {
                "rates": _EZMODEL_RATES,
                "multipliers": {"sound": "1.5", "video": "1.5"},  # seed 001
            },
            "kling-video-o1": {
                "rates": _EZMODEL_RATES,
                "multipliers": {"video": "1.5"},  # seed 001: no audio for o1 ("-")
            },
        },
    }
)

# --- apimodels (seed 002), in USD --------------------------------------------------------------
# Seed 002's "Detailed Pricing (85% off)" tables, $/s, verbatim: a promotional price, so check
# it against your account. Its tables have no video-input column: a video input without kept
# sound is priced as the row without audio (multiplier 1), as the tables read; o1's table has
# no keep-sound column either, so o1 keeping the sound is priced as a video input. ("From
# $0.0064/s" in its model list matches no row and is not used.)
APIMODELS: Final = PriceTable.model_validate(
    {
        "currency": "USD",
        "reported_cost_in_currency": False,  # seed 002 documents no cost field in its answers
        "edit_seconds": 10,  # seed 004: an edit's input video is "from 3 to 10 seconds"
        "note": "seed 002, Detailed Pricing (85% off)",
        "models": {
            "kling-video-o1": {
                "rates": {
                    "std": {"plain": "0.0633", "sound": "0.0956"},
                    "pro": {"plain": "0.0853", "sound": "0.1280"},
                },
                "multipliers": {"video": "1"},
            },
            "kling-v3-omni": {
                "rates": {
                    "std": {"plain": "0.0633", "video_keep_sound": "0.0853", "sound": "0.0956"},
                    "pro": {"plain": "0.0853", "video_keep_sound": "0.1059", "sound": "0.1280"},
                },
                "multipliers": {"video": "1"},
            },
        },
    }
)

DEFAULT_PRICE_TABLES: Final[dict[str, PriceTable]] = {
    "kling": KLING,
    "newapi": NEWAPI,
    "apimodels": APIMODELS,
}
