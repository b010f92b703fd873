"""Settings: read once, typed, secrets masked, clear errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from service.costs.budgets import Budget, Period
from service.errors import ConfigurationError
from service.settings import load_settings


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNIHOOK_RECONCILE_AFTER", "42")
    monkeypatch.setenv("OMNIHOOK_KLING_API_KEY", "sk-very-secret")
    settings = load_settings(public_url="https://hooks.example.com/")
    assert settings.reconcile_after == 42
    assert settings.public_url == "https://hooks.example.com"  # trailing slash dropped
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OMNIHOOK_MEDIA_DIR=/srv/videos\n")
    assert load_settings().media_dir == Path("/srv/videos")


def test_isolated_settings_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OMNIHOOK_MEDIA_DIR=/srv/videos\n")
    monkeypatch.setenv("OMNIHOOK_KLING_ACCESS_KEY", "ak")
    settings = load_settings(isolated=True, kling_api_key="demo")
    assert settings.kling_access_key is None
    assert settings.media_dir == Path("media")


@pytest.mark.parametrize(
    ("name", "value", "variable"),
    [
        ("reconcile_after", "soon", "OMNIHOOK_RECONCILE_AFTER"),
        ("public_url", "hooks.example.com", "OMNIHOOK_PUBLIC_URL"),
        ("handler_retry_schedule", "5,-1", "OMNIHOOK_HANDLER_RETRY_SCHEDULE"),
        ("provider", "openai", "OMNIHOOK_PROVIDER"),
        ("budget_daily", "lots", "OMNIHOOK_BUDGET_DAILY"),
        ("budget_daily", "0", "OMNIHOOK_BUDGET_DAILY"),
        ("budget_monthly", "-5", "OMNIHOOK_BUDGET_MONTHLY"),
        ("budget_monthly", "nan", "OMNIHOOK_BUDGET_MONTHLY"),
        ("budget_per_key", "owner=5/week", "OMNIHOOK_BUDGET_PER_KEY"),
        ("price_table", "/nonexistent/prices.json", "OMNIHOOK_PRICE_TABLE"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(isolated=True, **{name: value})


def test_costs_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    prices = tmp_path / "prices.json"
    prices.write_text("{}")
    monkeypatch.setenv("OMNIHOOK_PRICE_TABLE", str(prices))
    monkeypatch.setenv("OMNIHOOK_BUDGET_DAILY", "12.50")
    monkeypatch.setenv("OMNIHOOK_BUDGET_PER_KEY", "owner=5/day,team=100/month")
    settings = load_settings()
    assert settings.price_table == prices
    assert settings.budget_daily == Decimal("12.50") and settings.budget_monthly is None
    assert settings.budgets == (
        Budget(Decimal("12.50"), Period.DAY),
        Budget(Decimal("5"), Period.DAY, "owner"),
        Budget(Decimal("100"), Period.MONTH, "team"),
    )


def test_no_budgets_by_default_and_empty_values_mean_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(isolated=True).budgets == ()
    monkeypatch.setenv("OMNIHOOK_BUDGET_MONTHLY", "")
    monkeypatch.setenv("OMNIHOOK_PRICE_TABLE", " ")
    settings = load_settings()
    assert (settings.budget_monthly, settings.price_table) == (None, None)
