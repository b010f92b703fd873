"""``omnihook fake-kling --profile ...``: the command as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from service.cli import cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def newapi_server() -> Iterator[str]:
    """``fake-kling --profile newapi --own-task-ids`` on a free port; yields the base URL
    it tells omnihook to use."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "service.cli", "fake-kling", "--port", "0"),
            *("--profile", "newapi", "--own-task-ids", "--api-key", "sk-cli"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        found = None
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "fake-kling exited before printing its URL"
            found = re.search(r"OMNIHOOK_PROVIDER=newapi OMNIHOOK_KLING_BASE_URL=(\S+)", line)
        assert found is not None
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_the_newapi_profile_serves_its_gateway_shape(newapi_server: str) -> None:
    assert newapi_server.endswith("/kling")
    auth = {"Authorization": "Bearer sk-cli"}
    body = {"model": "kling-v3-omni", "prompt": "a cat", "duration": "5"}
    with httpx.Client(base_url=newapi_server, headers=auth, trust_env=False) as client:
        created = client.post("/v1/videos/omni-video", json=body)
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        assert task_id.startswith("task_")
        queried = client.get(f"/v1/videos/omni-video/{task_id}").json()
        assert queried["code"] == "success" and queried["data"]["task_id"] == task_id
        refused = client.post("/v1/videos/omni-video", json=body, headers={"Authorization": ""})
        assert refused.status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--profile", "apimodels", "--webhook-secret", "whsec_QUJD"],
            "error: the apimodels profile never signs its callbacks: drop webhook_secret",
        ),
        (
            ["--own-task-ids"],
            "error: own_task_ids is for the newapi profile (apimodels always has its own)",
        ),
    ],
)
def test_options_a_profile_cannot_honour_are_refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["fake-kling", *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == message


def test_an_unknown_profile_is_refused() -> None:
    result = CliRunner().invoke(cli, ["fake-kling", "--profile", "comet"])
    assert result.exit_code == 2
    assert "'comet' is not one of 'kling', 'newapi', 'apimodels'" in result.stderr
