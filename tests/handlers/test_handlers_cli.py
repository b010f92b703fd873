"""``omnihook handlers`` lists what is loaded; a broken plugin stops ``serve``, ``worker`` and
``handlers`` with one line naming the plugin and the problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from handlers.loading import module_name_for
from service.cli import cli

PLUGIN = """
    from handlers import on

    @on("task.failed", "video.download_failed", timeout=2.5, retries=[1, 5])
    def alert(event):
        pass

    @on("*")
    async def audit(event):
        pass
"""
TYPO = """
    from handlers import on

    @on("video.downloade")
    def announce(event):
        pass
"""
BROKEN = """
    import omnihook_test_dependency_that_is_not_installed
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OMNIHOOK_* variable nor .env of the developer's may steer the commands under test."""
    for name in list(os.environ):
        if name.startswith("OMNIHOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def plugin_file(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_handlers_lists_every_handler_with_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = plugin_file(tmp_path, "mine.py", PLUGIN)
    monkeypatch.setenv("OMNIHOOK_HANDLERS", str(path))
    monkeypatch.setenv("OMNIHOOK_HANDLER_TIMEOUT", "7")
    monkeypatch.setenv("OMNIHOOK_HANDLER_RETRY_SCHEDULE", "3,9")
    monkeypatch.setenv("COLUMNS", "250")  # one row per handler, whatever the terminal

    result = CliRunner().invoke(cli, ["handlers"])

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if ":" in line}
    module = module_name_for(path)
    alert, audit = rows[f"{module}:alert"], rows[f"{module}:audit"]
    assert str(path) in alert and "task.failed, video.download_failed" in alert
    assert "2.5s" in alert and "1, 5" in alert and "(default)" not in alert
    assert "*" in audit and "7s (default)" in audit and "3, 9 (default)" in audit
    assert "handlers.builtin.sidecar:write_sidecar" in rows
    assert "handlers.builtin.poster:write_poster" in rows
    assert "4 handler(s) loaded" in result.stdout


def test_handlers_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = plugin_file(tmp_path, "mine.py", PLUGIN)
    monkeypatch.setenv("OMNIHOOK_HANDLERS", str(path))

    result = CliRunner().invoke(cli, ["handlers", "--output", "json"])

    assert result.exit_code == 0, result.output
    by_name = {item["name"]: item for item in json.loads(result.stdout)}
    assert by_name[f"{module_name_for(path)}:alert"] == {
        "name": f"{module_name_for(path)}:alert",
        "source": str(path),
        "events": ["task.failed", "video.download_failed"],
        "timeout": 2.5,
        "timeout_is_default": False,
        "retries": [1.0, 5.0],
        "retries_is_default": False,
    }
    assert [item["source"] for item in by_name.values()][:2] == ["builtin", "builtin"]


def test_handlers_reports_a_broken_plugin_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = plugin_file(tmp_path, "broken.py", BROKEN)
    monkeypatch.setenv("OMNIHOOK_HANDLERS", str(path))

    result = CliRunner().invoke(cli, ["handlers"])

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: handler plugin {str(path)!r} failed to import: ModuleNotFoundError: "
        "No module named 'omnihook_test_dependency_that_is_not_installed'"
    ]


def run_omnihook(tmp_path: Path, *args: str, plugin: Path) -> subprocess.CompletedProcess[str]:
    """The real console entry in a child process, as a user or a process manager starts it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHOOK_")}
    env.update(
        OMNIHOOK_HANDLERS=str(plugin),
        OMNIHOOK_DATABASE_URL=f"sqlite:///{tmp_path / 'omnihook.db'}",
        OMNIHOOK_MEDIA_DIR=str(tmp_path / "media"),
        OMNIHOOK_KLING_API_KEY="unused",
    )
    # A timeout, not a hang, if the command were to start serving despite the broken plugin.
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "source", "problem"),
    [
        (
            ["serve", "--port", "0"],
            TYPO,
            "subscribes to unknown event type 'video.downloade' (did you mean 'video.downloaded'?)",
        ),
        (
            ["worker"],
            TYPO,
            "subscribes to unknown event type 'video.downloade' (did you mean 'video.downloaded'?)",
        ),
        (
            ["serve", "--port", "0", "--no-worker"],
            BROKEN,
            "failed to import: ModuleNotFoundError: No module named "
            "'omnihook_test_dependency_that_is_not_installed'",
        ),
    ],
    ids=["serve-unknown-type", "worker-unknown-type", "serve-import-error"],
)
def test_a_broken_plugin_stops_start_up_naming_the_plugin_and_the_problem(
    tmp_path: Path, args: list[str], source: str, problem: str
) -> None:
    plugin = plugin_file(tmp_path, "plugin.py", source)

    finished = run_omnihook(tmp_path, *args, plugin=plugin)

    assert finished.returncode == 2, finished.stderr
    [line] = finished.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: handler plugin {str(plugin)!r}")
    assert problem in line
    assert not (tmp_path / "omnihook.db").exists()  # stopped before anything was opened
