"""What every command shares: help, where the service is, the token, error reporting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import cli

from .conftest import Invoke
from .fake_api import FakeApi, make_task


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["worker"], ["submit"], ["tasks"], ["tasks", "show"], ["fake-kling"], ["demo"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.stdout


def test_the_default_url_is_local(invoke: Invoke, fake_api: FakeApi) -> None:
    invoke("tasks")
    assert str(fake_api.requests[0].url).startswith("http://127.0.0.1:8000/v1/tasks")


def test_url_from_the_environment_and_the_flag(
    invoke: Invoke, fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHOOK_URL", "https://hooks.example.com/")
    invoke("tasks")
    invoke("tasks", "--url", "http://10.0.0.5:9000")
    fake_api.add(make_task("task_1"))
    invoke("tasks", "show", "task_1", "--url", "http://10.0.0.6:9000")
    hosts = [request.url.host for request in fake_api.requests]
    assert hosts == ["hooks.example.com", "10.0.0.5", "10.0.0.6", "10.0.0.6"]


def test_the_token_is_sent_as_bearer(
    invoke: Invoke, fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHOOK_API_TOKEN", "tok-1")
    invoke("tasks")
    assert fake_api.requests[0].headers["authorization"] == "Bearer tok-1"


def test_the_token_may_come_from_dotenv(invoke: Invoke, fake_api: FakeApi, tmp_path: Path) -> None:
    # the fixture made tmp_path the working directory, where .env is read
    (tmp_path / ".env").write_text("OMNIHOOK_API_TOKEN=tok-2\nOMNIHOOK_URL=http://h.test:1\n")
    invoke("tasks")
    request = fake_api.requests[0]
    assert request.headers["authorization"] == "Bearer tok-2"
    assert request.url.host == "h.test"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "command", [["tasks"], ["tasks", "show", "t1"], ["submit", "--prompt", "x"]]
)
def test_an_unreachable_service_is_one_clear_line(command: list[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, [*command, "--url", url])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach the omnihook service at {url}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_bad_configuration_exits_2_without_a_traceback(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHOOK_RECONCILE_AFTER", "-1")
    monkeypatch.setenv("OMNIHOOK_HANDLER_RETRY_SCHEDULE", "5,soon")
    result = CliRunner().invoke(cli, [command])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid configuration:")
    assert "OMNIHOOK_RECONCILE_AFTER" in result.stderr
    assert "OMNIHOOK_HANDLER_RETRY_SCHEDULE" in result.stderr
    assert "Traceback" not in result.output


def test_fake_kling_reports_a_bad_option(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["fake-kling", "--webhook-secret", "plain"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: webhook_secret must start with 'whsec_'"


def test_the_module_runs_as_a_script() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "omnihook" in result.stdout
