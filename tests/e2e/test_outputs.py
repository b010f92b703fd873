"""End to end, every paid output kept: a task with a watermark and image outputs ends with
every file stored (the sha256 of what the simulator serves), and the simulator's media faults
(a cut body, an expired signed URL, a slow CDN) still end with the files stored."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pipeline, PipelineFactory
from tests.e2e.test_gateways import start

pytestmark = pytest.mark.e2e


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def served_outputs(pipeline: Pipeline, provider_task_id: str) -> list[dict[str, Any]]:
    """Each output as the simulator serves it now, in omnihook's order (videos, then images):
    its bytes and its watermarked copy's (None without one)."""
    async with httpx.AsyncClient(base_url=pipeline.fake_url) as fake:
        answer = await fake.get(
            f"/v1/videos/omni-video/{provider_task_id}",
            headers={"Authorization": "Bearer e2e-key"},
        )
        result = answer.json()["data"]["task_result"]
        outputs = []
        for output in result["videos"] + result.get("images", []):
            clean = await fake.get(output["url"])
            assert clean.status_code == 200, clean.text
            marked = await fake.get(output["watermark_url"]) if "watermark_url" in output else None
            outputs.append({"data": clean.content, "watermark": marked.content if marked else None})
        return outputs


async def test_watermarked_copies_and_images_are_all_stored_and_served(
    pipeline: Pipeline,
) -> None:
    answer = await pipeline.submit(
        prompt="a red fox in snow [sim:images=2]", watermark_info={"enabled": True}
    )
    assert answer.status_code == 201, answer.text
    task = await pipeline.wait_finished(answer.json()["id"])
    assert task["status"] == "succeeded"
    outputs = task["videos"]
    assert [(o["index"], o["kind"]) for o in outputs] == [(0, "video"), (1, "image"), (2, "image")]
    served = await served_outputs(pipeline, task["provider_task_id"])
    assert len(served) == 3

    for output, expected in zip(outputs, served, strict=True):
        assert output["download_status"] == "downloaded", output
        assert expected["watermark"] is not None
        assert expected["watermark"] != expected["data"]
        assert (output["size"], output["sha256"]) == (
            len(expected["data"]),
            sha256(expected["data"]),
        )
        assert Path(output["path"]).read_bytes() == expected["data"]
        watermark = output["watermark"]
        assert (watermark["size"], watermark["sha256"]) == (
            len(expected["watermark"]),
            sha256(expected["watermark"]),
        )
        assert Path(watermark["path"]).read_bytes() == expected["watermark"]
        assert Path(watermark["path"]).parent == Path(output["path"]).parent  # beside it

        n = output["index"]
        media_type = "video/mp4" if output["kind"] == "video" else "image/png"
        clean = await pipeline.api.get(f"/v1/tasks/{task['id']}/videos/{n}")
        marked = await pipeline.api.get(f"/v1/tasks/{task['id']}/videos/{n}/watermarked")
        for response, data in ((clean, expected["data"]), (marked, expected["watermark"])):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(media_type)
            assert response.content == data
    assert outputs[0]["duration"] is not None and outputs[1]["duration"] is None
    dashboard = (await pipeline.api.get("/")).text
    assert f'<img alt="image 1" src="/v1/tasks/{task["id"]}/videos/1">' in dashboard
    assert f'src="/v1/tasks/{task["id"]}/videos/0"></video>' in dashboard

    events = await pipeline.events(task["id"])
    assert events.count("video.downloaded") == 3
    assert events[-1] == "task.completed" and events.count("task.completed") == 1
    answer = await pipeline.api.get(f"/v1/tasks/{task['id']}/events")
    announced = [e["data"]["video"] for e in answer.json()["events"] if "video" in e["data"]]
    assert sorted((v["index"], v["kind"], v["watermark"]["sha256"]) for v in announced) == [
        (o["index"], o["kind"], o["watermark"]["sha256"]) for o in outputs
    ]


async def test_without_a_watermark_there_is_no_copy(pipeline: Pipeline) -> None:
    answer = await pipeline.submit(prompt="a red fox in snow")
    task = await pipeline.wait_finished(answer.json()["id"])
    [video] = task["videos"]
    assert (video["download_status"], video["kind"], video["watermark"]) == (
        "downloaded",
        "video",
        None,
    )
    response = await pipeline.api.get(f"/v1/tasks/{task['id']}/videos/0/watermarked")
    assert response.status_code == 404


@pytest.mark.parametrize("fault", ["cut", "expire", "slow"])
async def test_media_faults_still_end_with_every_file_stored(
    pipeline: Pipeline, fault: str
) -> None:
    answer = await pipeline.submit(
        prompt=f"a red fox in snow [sim:media={fault}]", watermark_info={"enabled": True}
    )
    assert answer.status_code == 201, answer.text
    task = await pipeline.wait_finished(answer.json()["id"])
    [video] = task["videos"]
    assert video["download_status"] == "downloaded", video
    [expected] = await served_outputs(pipeline, task["provider_task_id"])
    assert video["sha256"] == sha256(expected["data"])
    assert video["watermark"]["sha256"] == sha256(expected["watermark"])
    assert Path(video["path"]).read_bytes() == expected["data"]

    [simulated] = (await pipeline.simulated(task))["videos"]
    for counts in (simulated["served"], simulated["watermark_served"]):
        # served_outputs fetched each file once more, whole
        if fault == "cut":  # cut once, then resumed with a range
            assert counts["full"] == 2 and counts["partial"] >= 1, counts
        elif fault == "expire":  # refused, then fetched from the fresh URL
            assert counts["refused"] >= 1 and counts["full"] == 2, counts
        else:
            assert counts == {"full": 2, "partial": 0, "refused": 0}


async def simulated_outputs(pipeline: Pipeline, task: dict[str, Any]) -> list[dict[str, Any]]:
    """Each output as the simulator serves it now, by its own record (any profile)."""
    outputs = []
    async with httpx.AsyncClient() as fake:
        for output in (await pipeline.simulated(task))["videos"]:
            clean = await fake.get(output["url"])
            assert clean.status_code == 200, clean.text
            marked = await fake.get(output["watermark_url"]) if output["watermark_url"] else None
            outputs.append({"data": clean.content, "watermark": marked.content if marked else None})
    return outputs


@pytest.mark.parametrize(
    ("setup", "prompt"),
    [
        ("kling", "[sim:images=1][sim:media=expire]"),
        ("newapi", "[sim:images=1][sim:media=expire]"),
        ("newapi own ids", "[sim:images=1][sim:media=cut]"),
        ("apimodels", "[sim:media=expire]"),
        ("apimodels", "[sim:media=cut]"),
    ],
)
async def test_every_profile_keeps_every_output_through_media_faults(
    make_pipeline: PipelineFactory, setup: str, prompt: str
) -> None:
    pipeline = await start(make_pipeline, setup)
    answer = await pipeline.submit(prompt=f"a fox {prompt}", watermark_info={"enabled": True})
    assert answer.status_code == 201, answer.text
    task = await pipeline.wait_finished(answer.json()["id"])
    served = await simulated_outputs(pipeline, task)
    assert len(task["videos"]) == len(served) == (2 if "images" in prompt else 1)
    for output, expected in zip(task["videos"], served, strict=True):
        assert output["download_status"] == "downloaded", output
        assert output["sha256"] == sha256(expected["data"])
        if setup == "apimodels":  # resultUrls has no place for a watermarked copy
            assert output["watermark"] is None and expected["watermark"] is None
        else:
            assert output["watermark"]["sha256"] == sha256(expected["watermark"])
    [first] = (await pipeline.simulated(task))["videos"][:1]
    if "expire" in prompt:
        assert first["served"]["refused"] >= 1
    else:
        assert first["served"]["partial"] >= 1
