"""Settings: read once, typed, secrets masked, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(isolated=True, **{name: value})
