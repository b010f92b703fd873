from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service.cli import cli
from service.cli.common import CliEnvironment

from .fake_api import FakeApi

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OMNIHOOK_* variable nor .env of the developer's may steer the commands under test."""
    import os

    for name in list(os.environ):
        if name.startswith("OMNIHOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def invoke(fake_api: FakeApi) -> Invoke:
    """Run ``omnihook ARGS...`` against the fake API; stdout and stderr stay apart."""

    def run(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli, list(args), obj=CliEnvironment(transport=fake_api.transport), input=input
        )

    return run
