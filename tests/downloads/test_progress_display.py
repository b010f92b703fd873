"""Download progress as people see it: ``omnihook tasks show`` and ``submit --wait``.

The videos are the API's own JSON (``service.views.video_json`` of real records), so the
rendering is tested against what the service really sends.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from service.cli import cli
from service.cli.common import CliEnvironment
from service.cli.model import Task
from service.cli.progress import progress_text, task_progress
from service.views import video_json
from storage.records import DownloadStatus
from tests.cli.fake_api import FakeApi, make_task
from tests.factories import make_video

MiB = 1024 * 1024


def api_video(status: DownloadStatus, received: int, total: int | None, **fields: Any) -> Any:
    record = replace(
        make_video("task_1"),
        download_status=status,
        bytes_received=received,
        bytes_total=total,
        **fields,
    )
    return video_json(record, Path("/srv/media"))


def invoke(fake_api: FakeApi, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=CliEnvironment(transport=fake_api.transport))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OMNIHOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("received", "total", "shown"),
    [
        (90 * MiB, 200 * MiB, "[####------] 45% 90.0 MiB/200.0 MiB"),
        (0, 10, "[----------] 0% 0 B/10 B"),
        (10, 10, "[##########] 100% 10 B/10 B"),
        (3 * MiB, None, "3.0 MiB"),
    ],
)
def test_progress_text(received: int, total: int | None, shown: str) -> None:
    assert progress_text(received, total) == shown


def test_tasks_show_shows_how_far_a_download_got() -> None:
    fake_api = FakeApi()
    video = api_video(DownloadStatus.DOWNLOADING, 90 * MiB, 200 * MiB)
    fake_api.add(make_task("task_1", "succeeded", videos=[video], handler_runs=[]))
    result = invoke(fake_api, "tasks", "show", "task_1")
    assert result.exit_code == 0, result.output
    assert "downloading [####------] 45% 90.0 MiB/200.0 MiB" in result.stdout


def test_a_paused_download_shows_what_is_kept_and_why() -> None:
    video = api_video(DownloadStatus.PENDING, 50 * MiB, 200 * MiB, error="HTTP 503 from cdn")
    console = Console(width=200, record=True)
    console.print(task_progress(cast(Task, make_task("task_1", "succeeded", videos=[video]))))
    assert (
        "pending [##--------] 25% 50.0 MiB/200.0 MiB (HTTP 503 from cdn)" in console.export_text()
    )


def test_a_stored_video_shows_no_progress_bar() -> None:
    video = api_video(DownloadStatus.DOWNLOADED, 10, 10, size=10, path="task_1/0.mp4")
    console = Console(width=200, record=True)
    console.print(task_progress(cast(Task, make_task("task_1", "succeeded", videos=[video]))))
    assert "[##" not in console.export_text()


def test_submit_wait_shows_the_progress_it_is_waiting_for() -> None:
    fake_api = FakeApi()
    submitted = make_task("task_new", "submitted")
    fake_api.submit_answer = (201, submitted)
    downloading = api_video(DownloadStatus.DOWNLOADING, 150 * MiB, 200 * MiB)
    fake_api.add(submitted, make_task("task_new", "succeeded", videos=[downloading]))
    result = invoke(
        fake_api, "submit", "--prompt", "x", "--wait", "--poll-interval", "0.05", "--timeout", "0.3"
    )
    assert "[#######---] 75% 150.0 MiB/200.0 MiB" in result.stdout
    assert "gave up waiting" in result.stdout
