"""End to end against the simulator: a download that failed for good is started again by hand.

The first omnihook refuses the video (its size limit is too small: a failure no retry fixes);
the operator raises the limit, starts omnihook again on the same database and asks for the
video again. It ends downloaded, from the URL the provider hands out now, with the bytes the
simulator serves.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.loopback import serve_on_loopback
from tests.e2e.conftest import serving

pytestmark = pytest.mark.e2e


async def test_a_download_failed_for_good_is_started_again_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = create_fake_kling_app(FakeKlingConfig(step_seconds=0.1))
    async with serve_on_loopback(fake) as fake_url:
        async with serving(fake_url, tmp_path, monkeypatch, max_video_bytes=1000) as first:
            created = await first.submit(prompt="a heron at dawn")
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            task = await first.wait_finished(task_id)
            [video] = task["videos"]
            assert (task["status"], video["download_status"]) == ("succeeded", "failed")
            assert await first.events(task_id) == [
                "task.submitted",
                "task.processing",
                "task.succeeded",
                "video.download_failed",
            ]
            simulated = await first.simulated(task)

        async with serving(fake_url, tmp_path, monkeypatch) as second:
            answer = await second.api.post(f"/v1/tasks/{task_id}/videos/0/download")
            assert answer.status_code == 202, answer.text
            task = await second.wait_finished(task_id)
            [video] = task["videos"]
            assert video["download_status"] == "downloaded", video
            async with httpx.AsyncClient(trust_env=False) as cdn:
                [url] = [v["url"] for v in simulated["videos"]]
                served = (await cdn.get(url)).content
            assert video["sha256"] == hashlib.sha256(served).hexdigest()
            assert Path(video["path"]).read_bytes() == served
            events = await second.events(task_id)
            assert events[-3:] == ["video.download_failed", "video.downloaded", "task.completed"]
            again = await second.api.post(f"/v1/tasks/{task_id}/videos/0/download")
            assert again.status_code == 409  # stored now: nothing to fetch
