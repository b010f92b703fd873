"""The example plugin package (``examples/omnihook-example-plugin``), pip-installed by the test
and found through its ``omnihook.handlers`` entry point, in this process and by the CLI."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import pytest

from handlers import Event
from handlers.registry import build_registry
from tests.factories import task_data, video_data

pytestmark = pytest.mark.e2e  # installs a package with pip: seconds, not milliseconds

EXAMPLE = Path(__file__).parents[2] / "examples" / "omnihook-example-plugin"
EXAMPLE_HANDLER = "omnihook_example_plugin:log_completed_task"


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def setuptools_builds_wheels_alone() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before, it needs the ``wheel`` package."""
    try:
        major, minor = (int(part) for part in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or find_spec("wheel") is not None


@pytest.fixture
def installed_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example plugin pip-installed into a directory on this process's ``sys.path``.

    A target directory rather than the shared virtualenv's site-packages: other test runs use
    that environment at the same time, and a plugin appearing in it for a few seconds would
    change what their registries load. Entry-point discovery reads every ``sys.path`` entry
    alike, so this is the same discovery a plain ``pip install`` gets.
    """
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = shutil.copytree(EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("build"))
    target = tmp_path / "site-packages"
    # Without build isolation when this environment can build the wheel itself; otherwise pip
    # fetches setuptools into an isolated build, as `pip install -e .` of omnihook just did.
    isolation = ["--no-build-isolation"] if setuptools_builds_wheels_alone() else []
    installed = pip("install", "--no-deps", *isolation, "--target", str(target), str(source))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    monkeypatch.syspath_prepend(str(target))  # also invalidates the import caches
    try:
        yield target
    finally:
        sys.modules.pop("omnihook_example_plugin", None)
        importlib.invalidate_caches()


def test_the_example_plugin_is_discovered_through_its_entry_point(
    installed_example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh registry, as `serve` builds it, finds the installed package's handlers.
    registry = build_registry([])
    handler = registry.get(EXAMPLE_HANDLER)
    assert handler.source == "entry point completed-log"
    assert handler.event_types == frozenset({"task.completed"})
    assert (handler.timeout, handler.retries) == (10.0, (1.0, 10.0, 60.0))
    assert "omnihook_example_plugin:print_failure" in registry

    # `omnihook handlers`, run as a user would, lists them.
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHOOK_")}
    env["PYTHONPATH"] = str(installed_example)
    listed = subprocess.run(
        [sys.executable, "-m", "service.cli", "handlers", "--output", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    sources = {item["name"]: item["source"] for item in json.loads(listed.stdout)}
    assert sources[EXAMPLE_HANDLER] == "entry point completed-log"

    # And it does its job, once per event however often it runs.
    log = tmp_path / "completed.jsonl"
    monkeypatch.setenv("COMPLETED_TASKS_LOG", str(log))
    event = Event(
        id="evt_example",
        type="task.completed",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        data={
            "task": task_data(
                id="task_1",
                external_task_id="order-7",
                model_name="kling-v3-omni",
                request={"prompt": "a lighthouse at dusk"},
                cost="1.0",
                metadata={"customer": "c-42"},
                videos=[video_data(path="/srv/media/task_1/0.mp4")],
            )
        },
    )
    handler.func(event)
    handler.func(event)  # run again, as after a crash that lost the first outcome
    [line] = log.read_text().splitlines()
    assert json.loads(line) | {"completed_at": None} == {
        "event_id": "evt_example",
        "completed_at": None,
        "task_id": "task_1",
        "external_task_id": "order-7",
        "model_name": "kling-v3-omni",
        "prompt": "a lighthouse at dusk",
        "cost": "1.0",
        "videos": ["/srv/media/task_1/0.mp4"],
        "metadata": {"customer": "c-42"},
    }
