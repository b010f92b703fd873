"""Price tables: the rate lookup order, and the OMNIHOOK_PRICE_TABLE file and its errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from service.costs.default_prices import DEFAULT_PRICE_TABLES
from service.costs.price_file import load_price_tables, price_table_for
from service.costs.price_table import PriceTable
from service.errors import ConfigurationError, PriceUnknown

TABLE = PriceTable.model_validate(
    {
        "currency": "USD",
        "models": {
            "m": {
                "rates": {"std": {"plain": "1", "sound": "1.25"}, "pro": {"video": "3"}},
                "multipliers": {"sound": "2", "video": "1.5"},
            }
        },
    }
)


@pytest.mark.parametrize(
    ("mode", "variant", "rate", "derivation"),
    [
        ("std", "plain", "1", "rates.std.plain"),
        ("std", "sound", "1.25", "rates.std.sound"),  # a given rate wins over a multiplier
        ("std", "video", "1.5", "rates.std.plain x multipliers.video (1.5)"),
        ("std", "video_keep_sound", "1.5", "rates.std.plain x multipliers.video (1.5)"),
        ("pro", "video", "3", "rates.pro.video"),
        ("pro", "video_keep_sound", "3", "rates.pro.video"),  # keep sound falls back to video
    ],
)
def test_rate_lookup_order(mode: str, variant: Any, rate: str, derivation: str) -> None:
    found = TABLE.rate("p", "m", mode, variant)
    assert (found.per_second, found.derivation) == (Decimal(rate), derivation)


@pytest.mark.parametrize(
    ("model", "mode", "variant", "missing"),
    [
        ("other", "std", "plain", "model 'other'"),
        ("m", "4k", "plain", "m in mode '4k'"),
        ("m", "turbo", "plain", "m in mode 'turbo'"),
        ("m", "pro", "plain", "m in mode pro with neither sound nor video input"),
        ("m", "pro", "sound", "m in mode pro with sound on"),  # a multiplier needs a plain rate
    ],
)
def test_what_a_table_cannot_price(model: str, mode: str, variant: Any, missing: str) -> None:
    with pytest.raises(PriceUnknown) as caught:
        TABLE.rate("p", model, mode, variant)
    assert caught.value.missing == missing


def test_final_cost_is_comparable_only_in_units_unless_told() -> None:
    assert DEFAULT_PRICE_TABLES["kling"].final_cost_comparable
    assert not DEFAULT_PRICE_TABLES["newapi"].final_cost_comparable
    assert not DEFAULT_PRICE_TABLES["apimodels"].final_cost_comparable
    assert not TABLE.final_cost_comparable  # USD, not said
    units = TABLE.model_copy(update={"currency": "units"})
    assert units.final_cost_comparable
    assert not units.model_copy(update={"reported_cost_in_currency": False}).final_cost_comparable


def test_defaults_cover_both_models_at_every_provider() -> None:
    for provider, table in DEFAULT_PRICE_TABLES.items():
        for model in ("kling-video-o1", "kling-v3-omni"):
            assert table.rate(provider, model, "std", "plain").per_second > 0


# --- the file ------------------------------------------------------------------------------------

KLING_FILE = {
    "kling": {
        "currency": "units",
        "edit_seconds": 8,
        "note": "our contract",
        "models": {"kling-v3-omni": {"rates": {"4k": {"plain": 2.4}}}},
    }
}


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_a_file_replaces_the_tables_it_names(tmp_path: Path) -> None:
    tables = load_price_tables(write(tmp_path, KLING_FILE))
    kling = tables["kling"]
    assert kling.edit_seconds == 8 and kling.note == "our contract"
    assert kling.rate("kling", "kling-v3-omni", "4k", "plain").per_second == Decimal("2.4")
    with pytest.raises(PriceUnknown):  # the whole table is replaced, not merged
        kling.rate("kling", "kling-video-o1", "std", "plain")
    assert tables["newapi"] == DEFAULT_PRICE_TABLES["newapi"]
    assert price_table_for("kling", write(tmp_path, KLING_FILE)) == kling


def test_json_numbers_are_read_as_written_not_as_binary_floats(tmp_path: Path) -> None:
    document = {
        "apimodels": {"currency": "USD", "models": {"m": {"rates": {"std": {"plain": 0.1}}}}}
    }
    table = load_price_tables(write(tmp_path, document))["apimodels"]
    assert table.rate("apimodels", "m", "std", "plain").per_second == Decimal("0.1")


def test_no_file_means_the_defaults() -> None:
    assert load_price_tables(None) == DEFAULT_PRICE_TABLES
    assert price_table_for("apimodels") == DEFAULT_PRICE_TABLES["apimodels"]


def test_an_unknown_provider_has_no_table() -> None:
    with pytest.raises(ConfigurationError, match="no price table for provider 'openai'"):
        price_table_for("openai")


def _model(**fields: Any) -> dict[str, Any]:
    return {"kling": {"currency": "units", "models": {"kling-v3-omni": fields}}}


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"openai": KLING_FILE["kling"]}, "openai (the name)", "Input should be 'kling', 'newapi'"),
        ({"kling": {"models": {}}}, "kling.currency", "Field required"),
        ({"kling": {"currency": "", "models": {}}}, "kling.currency", "at least 1 character"),
        ({"kling": {"currency": "units", "models": {}, "currncy": "USD"}}, "kling.currncy", ""),
        (
            {"kling": {"currency": "units", "models": {}, "edit_seconds": 0}},
            "kling.edit_seconds",
            "",
        ),
        (
            _model(rates={"8k": {"plain": "1"}}),
            "kling.models.kling-v3-omni.rates.8k (the name)",
            "",
        ),
        (
            _model(rates={"std": {"loud": "1"}}),
            "kling.models.kling-v3-omni.rates.std.loud (the name)",
            "",
        ),
        (
            _model(rates={"std": {"plain": "-1"}}),
            "kling.models.kling-v3-omni.rates.std.plain",
            "greater than or equal to 0",
        ),
        (
            _model(rates={"std": {"plain": "cheap"}}),
            "kling.models.kling-v3-omni.rates.std.plain",
            "valid decimal",
        ),
        (
            _model(rates={"std": {"plain": True}}),
            "kling.models.kling-v3-omni.rates.std.plain",
            "a bool is not an amount",
        ),
        (
            _model(rates={"std": {"plain": "NaN"}}),
            "kling.models.kling-v3-omni.rates.std.plain",
            "finite",
        ),
        (
            _model(rates={"std": {"plain": "1"}}, multipliers={"sound": 0}),
            "kling.models.kling-v3-omni.multipliers.sound",
            "greater than 0",
        ),
        (
            _model(rates={"std": {"plain": "1"}}, multipliers={"plain": "2"}),
            "kling.models.kling-v3-omni.multipliers.plain (the name)",
            "",
        ),
        (_model(), "kling.models.kling-v3-omni.rates", "Field required"),
    ],
)
def test_file_errors_name_the_path_and_the_field(
    tmp_path: Path, document: Any, field: str, message: str
) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ConfigurationError) as caught:
        load_price_tables(path)
    text = str(caught.value)
    assert f"OMNIHOOK_PRICE_TABLE {path}" in text
    lines = [line.strip() for line in text.splitlines()[1:]]
    assert any(line.startswith(f"{field}: ") and message in line for line in lines), lines


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object of provider name -> table"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = tmp_path / "prices.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=reason) as caught:
        load_price_tables(path)
    assert str(path) in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_price_tables(tmp_path / "nowhere.json")
