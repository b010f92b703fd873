"""estimate_cost on stored provider bodies: every price example of the seed pages, reproduced.

The bodies are made the way a task's are (parse_submission with the provider's defaults, then
provider_body in its dialect), so the estimate is tested on the shape it will really read.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from service.costs.default_prices import DEFAULT_PRICE_TABLES
from service.costs.estimate import CostEstimate, estimate_cost
from service.errors import PriceUnknown
from service.kling.request import parse_submission
from tests.kling.seed_examples import SEED_EXAMPLES, SeedExample

MODEL_FIELD = {"kling": "model_name", "newapi": "model", "apimodels": "model"}


def stored(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The provider body a task stores for ``body`` submitted at ``provider``."""
    request = parse_submission(body, provider=provider)
    return request.provider_body(model_field=MODEL_FIELD[provider])


def estimate(body: dict[str, Any], provider: str) -> CostEstimate:
    return estimate_cost(stored(body, provider), provider, DEFAULT_PRICE_TABLES[provider])


FEATURE_VIDEO = {"video_url": "https://example.com/ref.mp4", "refer_type": "feature"}
KEEP_SOUND_VIDEO = FEATURE_VIDEO | {"keep_original_sound": "yes"}


# --- seed 002, apimodels: its tables in $/s, and its curl example -----------------------------


def test_seed_002_curl_example() -> None:
    # "model": "kling-video-o1", "mode": "std", "duration": "5", "aspect_ratio": "16:9"
    body = {
        "model": "kling-video-o1",
        "prompt": "A girl dancing on the beach at sunset, cinematic lighting",
        "mode": "std",
        "duration": "5",
        "aspect_ratio": "16:9",
    }
    cost = estimate(body, "apimodels")
    assert (cost.amount, cost.currency) == (Decimal("0.3165"), "USD")
    assert cost.basis["rate"] == "0.0633" and cost.basis["rate_from"] == "rates.std.plain"


# Every row of seed 002's "Detailed Pricing (85% off)": (model, mode, audio, keep sound) -> $/s.
SEED_002_ROWS = [
    ("kling-video-o1", "std", False, False, "0.0633"),
    ("kling-video-o1", "std", True, False, "0.0956"),
    ("kling-video-o1", "pro", False, False, "0.0853"),
    ("kling-video-o1", "pro", True, False, "0.1280"),
    ("kling-v3-omni", "std", False, False, "0.0633"),
    ("kling-v3-omni", "std", False, True, "0.0853"),
    ("kling-v3-omni", "std", True, False, "0.0956"),
    ("kling-v3-omni", "pro", False, False, "0.0853"),
    ("kling-v3-omni", "pro", False, True, "0.1059"),
    ("kling-v3-omni", "pro", True, False, "0.1280"),
]


@pytest.mark.parametrize(("model", "mode", "audio", "keep", "rate"), SEED_002_ROWS)
def test_seed_002_rows(model: str, mode: str, audio: bool, keep: bool, rate: str) -> None:
    body: dict[str, Any] = {"model": model, "prompt": "p", "mode": mode, "aspect_ratio": "16:9"}
    body["duration"] = "10"
    if audio:
        body["sound"] = "on"
    if keep:
        body["video_list"] = [KEEP_SOUND_VIDEO]
    cost = estimate(body, "apimodels")
    assert cost.amount == Decimal(rate) * 10
    assert cost.basis["variant"] == ("sound" if audio else "video_keep_sound" if keep else "plain")


def test_seed_002_a_video_without_kept_sound_is_priced_as_its_row_without_audio() -> None:
    body = {"model": "kling-v3-omni", "prompt": "p", "mode": "pro", "aspect_ratio": "16:9"}
    cost = estimate(body | {"video_list": [FEATURE_VIDEO], "duration": "4"}, "apimodels")
    assert cost.amount == Decimal("0.0853") * 4
    assert cost.basis["rate_from"] == "rates.pro.plain x multipliers.video (1)"


def test_seed_002_o1_keeping_sound_is_priced_as_a_video_input() -> None:
    body = {"model": "kling-video-o1", "prompt": "p", "mode": "std", "aspect_ratio": "16:9"}
    cost = estimate(body | {"video_list": [KEEP_SOUND_VIDEO], "duration": "3"}, "apimodels")
    assert cost.amount == Decimal("0.0633") * 3  # o1's table has no keep-sound column


# --- seed 001, EzModel (newapi): multipliers on the borrowed base, and its four curl examples --

STD = Decimal("0.0633")  # seed 002's std rate: EzModel states no $/s (default_prices.py)


def test_seed_001_text_to_video_with_audio() -> None:
    body = {
        "model": "kling-v3-omni",
        "prompt": "A fox running through a sunlit forest with dappled light filtering",
        "duration": "10",
        "aspect_ratio": "16:9",
        "sound": "on",
    }
    cost = estimate(body, "newapi")  # mode left out: EzModel's default std
    assert cost.amount == STD * Decimal("1.5") * 10 == Decimal("0.9495")
    assert (cost.basis["mode"], cost.basis["sound"], cost.basis["variant"]) == (
        "std",
        True,
        "sound",
    )


def test_seed_001_first_and_end_frames() -> None:
    body = {
        "model": "kling-v3-omni",
        "prompt": "The character slowly sits down from a standing position",
        "image_list": [
            {"image_url": "https://example.com/start.jpg", "type": "first_frame"},
            {"image_url": "https://example.com/end.jpg", "type": "end_frame"},
        ],
        "duration": "5",
    }
    assert estimate(body, "newapi").amount == STD * 5 == Decimal("0.3165")


def test_seed_001_multi_shot_is_priced_on_the_shots_sum() -> None:
    body = {
        "model": "kling-v3-omni",
        "multi_prompt": [
            {"prompt": "A girl pushes open the door of a coffee shop", "duration": "4"},
            {"prompt": "The girl sits by the window, opens her laptop", "duration": "4"},
            {"prompt": "Rain starts falling outside, the girl smiles", "duration": "5"},
        ],
        "aspect_ratio": "16:9",
        "mode": "pro",
        "sound": "on",
    }
    request = stored(body, "newapi")
    assert "duration" not in request  # new-api's dialect sends the shots alone
    cost = estimate_cost(request, "newapi", DEFAULT_PRICE_TABLES["newapi"])
    assert cost.amount == STD * Decimal("1.333") * Decimal("1.5") * 13
    assert (cost.basis["seconds"], cost.basis["seconds_from"]) == (13, "shots")


def test_seed_001_video_edit_is_priced_at_the_longest_input() -> None:
    body = {
        "model": "kling-v3-omni",
        "prompt": "Replace the background with a snowy mountain landscape",
        "video_list": [
            {
                "video_url": "https://example.com/original.mp4",
                "refer_type": "base",
                "keep_original_sound": "yes",
            }
        ],
    }
    request = stored(body, "newapi")
    assert "duration" not in request  # an edit follows its input video
    cost = estimate_cost(request, "newapi", DEFAULT_PRICE_TABLES["newapi"])
    # seed 001: "With Video Input x1.5"; keeping the sound costs nothing more there
    assert cost.amount == STD * Decimal("1.5") * 10
    assert cost.basis["seconds_from"] == "edit_seconds"
    assert cost.basis["video_input"] == "base" and cost.basis["keep_original_sound"] is True


def test_seed_001_pro_is_x1_333() -> None:
    body = {"model": "kling-video-o1", "prompt": "p", "mode": "pro", "duration": "5"}
    assert estimate(body, "newapi").amount == STD * Decimal("1.333") * 5


def test_seed_001_o1_has_no_audio_price() -> None:
    # Seed 001's pricing table: "With Audio" is "-" for kling-video-o1.
    body = {"model": "kling-video-o1", "prompt": "p", "duration": "5", "sound": "on"}
    with pytest.raises(PriceUnknown, match="kling-video-o1 in mode std with sound on"):
        estimate(body, "newapi")


# --- seed 003 (a new-api page): its example's model is none we can price ---------------------


def test_seed_003_example_model_is_unknown() -> None:
    request = {"model": "kling-v1", "prompt": "Make the character move", "duration": "5"}
    with pytest.raises(PriceUnknown, match="model 'kling-v1'") as caught:
        estimate_cost(request | {"mode": "std"}, "newapi", DEFAULT_PRICE_TABLES["newapi"])
    assert caught.value.provider == "newapi"
    assert "OMNIHOOK_PRICE_TABLE" in str(caught.value)


# --- seeds 000 and 004 (PowerTokens, CometAPI: the kling shape), in Kling's units -------------


def test_seed_000_example_in_units() -> None:
    # {"model_name": "kling-video-o1", "prompt": ...}: mode pro and duration 5 by default.
    body = {"model_name": "kling-video-o1", "prompt": "A product reveal video with smooth lighting"}
    cost = estimate(body, "kling")
    assert (cost.amount, cost.currency) == (Decimal("4.0"), "units")
    assert (cost.basis["mode"], cost.basis["seconds"]) == ("pro", 5)


def test_seed_004_model_left_out_and_std_ten_seconds() -> None:
    # CometAPI: "Omit to use kling-video-o1"; duration "5" or "10" for text to video.
    body = {"prompt": "p", "mode": "std", "duration": "10"}
    cost = estimate(body, "kling")
    assert cost.basis["model"] == "kling-video-o1"
    assert cost.amount == Decimal("6.0")


def test_kling_api_captured_deduction_fits_pro_with_a_video_input() -> None:
    # kling-api.md §4: final_unit_deduction "7.2" for a 6 s video (its request is not shown).
    body = {
        "model_name": "kling-v3-omni",
        "prompt": "p",
        "duration": "6",
        "video_list": [FEATURE_VIDEO],
    }
    assert estimate(body, "kling").amount == Decimal("7.2")


def test_kling_multi_shot_is_priced_on_its_duration() -> None:
    body = {
        "model_name": "kling-v3-omni",
        "multi_shot": True,
        "shot_type": "customize",
        "multi_prompt": [{"prompt": "a", "duration": "3"}, {"prompt": "b", "duration": "4"}],
        "duration": "7",
        "mode": "std",
        "sound": "on",
    }
    cost = estimate(body, "kling")
    assert cost.amount == Decimal("0.6") * Decimal("1.5") * 7
    assert cost.basis["seconds_from"] == "duration"


def test_kling_4k_has_no_default_rate() -> None:
    # Seed 000 lists mode 4k; no seed prices it.
    body = {"model_name": "kling-v3-omni", "prompt": "p", "mode": "4k"}
    with pytest.raises(PriceUnknown, match="kling-v3-omni in mode '4k'"):
        estimate(body, "kling")


# --- requests that cannot be priced; the JSON form ---------------------------------------------

TABLE = DEFAULT_PRICE_TABLES["kling"]
GOOD = {"model_name": "kling-video-o1", "mode": "std", "duration": "5", "prompt": "p"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_name": None}, "names no model"),
        ({"model_name": 7}, "names no model"),
        ({"mode": None}, "without a mode"),
        ({"duration": None}, "names no duration"),
        ({"duration": "5.5"}, "a duration of '5.5'"),
        ({"duration": True}, "a duration of 'True'"),
        ({"duration": "0"}, "a duration of '0'"),
        ({"duration": None, "multi_prompt": [{"duration": "x"}]}, "a shot without"),
        ({"duration": None, "multi_prompt": ["3"]}, "a shot without"),
    ],
)
def test_unpriceable_requests_say_why(change: dict[str, Any], reason: str) -> None:
    request = {key: value for key, value in (GOOD | change).items() if value is not None}
    with pytest.raises(PriceUnknown, match=reason):
        estimate_cost(request, "kling", TABLE)


def test_a_duration_sent_as_a_number_is_read() -> None:
    assert estimate_cost(GOOD | {"duration": 10}, "kling", TABLE).amount == Decimal("6.0")


def test_as_dict_is_json_safe_with_the_amount_as_a_string() -> None:
    cost = estimate_cost(GOOD, "kling", TABLE)
    document = json.loads(json.dumps(cost.as_dict()))
    assert document == {
        "amount": "3",
        "currency": "units",
        "basis": {
            "provider": "kling",
            "model": "kling-video-o1",
            "mode": "std",
            "seconds": 5,
            "seconds_from": "duration",
            "sound": False,
            "video_input": None,
            "keep_original_sound": False,
            "variant": "plain",
            "rate": "0.6",
            "rate_from": "rates.std.plain",
        },
    }


# --- every create body of the seed pages (tests/kling/seed_examples.py) is priced --------------

SEED_EXAMPLE_COSTS = {
    "PowerTokens text to video": ("4", "units"),  # pro 5 s at 0.8 units/s
    "CometAPI text to video without model_name": ("4", "units"),
    "CometAPI first frame": ("4", "units"),
    "EzModel text to video": ("0.9495", "USD"),  # std with audio, 10 s
    "EzModel first/end frame": ("0.3165", "USD"),
    "EzModel multi-shot": ("1.64538855", "USD"),  # pro with audio, 13 s of shots
    "EzModel video editing": ("0.9495", "USD"),  # a video input, at edit_seconds 10
    "apimodels text to video": ("0.3165", "USD"),
}


@pytest.mark.parametrize("example", SEED_EXAMPLES, ids=lambda example: example.name)
def test_each_seed_example_is_priced(example: SeedExample) -> None:
    cost = estimate(example.body, example.provider)
    assert (cost.amount, cost.currency) == (
        Decimal(SEED_EXAMPLE_COSTS[example.name][0]),
        SEED_EXAMPLE_COSTS[example.name][1],
    )
    assert set(SEED_EXAMPLE_COSTS) == {e.name for e in SEED_EXAMPLES}
