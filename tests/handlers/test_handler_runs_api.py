"""``/v1/handler-runs``, the poster endpoint and ``omnihook handlers runs|retry``, against the
real app served on loopback (in-memory storage, no worker: the runs' states are set by hand)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from handlers.registry import HandlerRegistry
from service.app import create_app
from service.cli import cli
from service.loopback import serve_on_loopback
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from storage.records import DownloadStatus, JobRecord, JobStatus, TaskChange, TaskRecord
from tests.factories import at, make_job, make_task, make_video

SAMPLE = Path(__file__).parents[2] / "service" / "fake_kling" / "assets" / "sample.mp4"
FAR_FUTURE = at(10**6)


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    storage: MemoryStorage
    media_dir: Path

    async def add_task(
        self, created: float, runs: dict[str, JobStatus], **fields: object
    ) -> tuple[TaskRecord, dict[str, JobRecord]]:
        """A task with one handler run per name, each brought to the given state."""
        task = make_task(created_at=at(created), updated_at=at(created), **fields)
        jobs = {
            name: make_job(
                kind="handler",
                task_id=task.id,
                run_at=FAR_FUTURE if status == JobStatus.QUEUED else at(created),
                payload={
                    "event_id": f"evt_{name}",
                    "event_type": "task.completed",
                    "handler": name,
                },
            )
            for name, status in runs.items()
        }
        await self.storage.create_task(task, list(jobs.values()))
        leased = await self.storage.lease_jobs(
            now=at(created), lease_seconds=3600, limit=100, kinds=["handler"]
        )
        for job in leased:
            name = job.payload["handler"]
            if runs[name] == JobStatus.FAILED:
                await self.storage.fail_job(job.id, job.lease_token, now=at(created), error="boom")
            elif runs[name] == JobStatus.SUCCEEDED:
                await self.storage.complete_job(job.id, job.lease_token, now=at(created))
        return task, jobs

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(path, params=params)

    async def omnihook(self, *args: str) -> Result:
        # In a thread: the command runs its own event loop, this one keeps serving it.
        return await asyncio.to_thread(
            CliRunner().invoke, cli, [*args, "--url", self.url], catch_exceptions=False
        )


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    for name in list(os.environ):
        if name.startswith("OMNIHOOK_"):
            monkeypatch.delenv(name)  # no token or URL of the developer's
    monkeypatch.chdir(tmp_path)  # ...nor their .env
    storage = MemoryStorage()
    settings = load_settings(
        database_url="memory://", media_dir=tmp_path / "media", kling_api_key="unused"
    )
    app = create_app(settings, storage=storage, registry=HandlerRegistry())
    async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url) as http:
        yield Api(url, http, storage, settings.media_dir)


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [run["id"] for run in answer.json()["handler_runs"]]


async def test_failed_runs_are_listed_with_their_error_newest_task_first(api: Api) -> None:
    old, old_runs = await api.add_task(1, {"a": JobStatus.FAILED, "b": JobStatus.SUCCEEDED})
    new, new_runs = await api.add_task(2, {"a": JobStatus.FAILED, "b": JobStatus.QUEUED})

    answer = await api.get("/v1/handler-runs", status="failed")

    assert ids(answer) == [new_runs["a"].id, old_runs["a"].id]
    [first, _] = answer.json()["handler_runs"]
    assert first["task_id"] == new.id
    assert (first["status"], first["attempts"], first["last_error"]) == ("failed", 1, "boom")
    assert answer.json()["next_cursor"] is None
    # ...and per task, as GET /v1/tasks/{id} shows them
    task_view = (await api.get(f"/v1/tasks/{old.id}")).json()
    assert {r["id"]: r["status"] for r in task_view["handler_runs"]} == {
        old_runs["a"].id: "failed",
        old_runs["b"].id: "succeeded",
    }


async def test_filters_by_task_by_external_id_and_by_handler(api: Api) -> None:
    task, runs = await api.add_task(1, {"a": JobStatus.FAILED, "b": JobStatus.FAILED})
    await api.add_task(2, {"a": JobStatus.FAILED})
    # a job of another kind of the same task is not a handler run
    await api.storage.enqueue([make_job(kind="download", task_id=task.id)])

    by_task = await api.get("/v1/handler-runs", status="failed", task=task.id)
    by_external = await api.get("/v1/handler-runs", task=task.external_task_id)
    by_handler = await api.get("/v1/handler-runs", task=task.id, handler="b")

    assert ids(by_task) == [runs["a"].id, runs["b"].id]
    assert ids(by_external) == ids(by_task)
    assert ids(by_handler) == [runs["b"].id]


async def test_pages_across_tasks_follow_the_cursor(api: Api) -> None:
    _, old = await api.add_task(1, {"a": JobStatus.FAILED})
    _, new = await api.add_task(2, {"a": JobStatus.FAILED})

    first = await api.get("/v1/handler-runs", status="failed", limit="1")
    cursor = first.json()["next_cursor"]
    second = await api.get("/v1/handler-runs", status="failed", limit="1", cursor=cursor)

    assert ids(first) == [new["a"].id]
    assert ids(second) == [old["a"].id]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"status": "broken"}, 400),
        ({"limit": "0"}, 400),
        ({"limit": "many"}, 400),
        ({"cursor": "not-a-task"}, 400),
        ({"task": "no-such-task"}, 404),
    ],
)
async def test_bad_queries_are_refused(api: Api, params: dict[str, str], status: int) -> None:
    answer = await api.get("/v1/handler-runs", **params)

    assert answer.status_code == status
    assert set(answer.json()) >= {"error", "message"}


async def test_retry_queues_a_finished_run_again_and_refuses_an_unfinished_one(api: Api) -> None:
    task, runs = await api.add_task(
        1, {"failed": JobStatus.FAILED, "done": JobStatus.SUCCEEDED, "waiting": JobStatus.QUEUED}
    )
    download = make_job(kind="download", task_id=task.id)
    await api.storage.enqueue([download])

    retried = await api.http.post(f"/v1/handler-runs/{runs['failed'].id}/retry")
    again = await api.http.post(f"/v1/handler-runs/{runs['failed'].id}/retry")
    succeeded = await api.http.post(f"/v1/handler-runs/{runs['done'].id}/retry")
    waiting = await api.http.post(f"/v1/handler-runs/{runs['waiting'].id}/retry")
    unknown = await api.http.post("/v1/handler-runs/job_nope/retry")
    other_kind = await api.http.post(f"/v1/handler-runs/{download.id}/retry")

    assert retried.status_code == 200
    assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 0)
    stored = await api.storage.get_job(runs["failed"].id)
    assert stored is not None and stored.status == JobStatus.QUEUED
    assert again.status_code == 409 and "is queued" in again.json()["message"]
    assert succeeded.status_code == 200  # a succeeded run may be run again too
    assert waiting.status_code == 409
    assert unknown.status_code == 404 and other_kind.status_code == 404
    one = await api.get(f"/v1/handler-runs/{runs['done'].id}")
    assert one.json()["status"] == "queued" and one.json()["task_id"] == task.id


async def test_the_cli_lists_runs_and_retries_by_id_or_every_failed_one(api: Api) -> None:
    task, runs = await api.add_task(1, {"a": JobStatus.FAILED, "b": JobStatus.FAILED})
    _, other = await api.add_task(2, {"a": JobStatus.FAILED, "b": JobStatus.SUCCEEDED})

    listed = await api.omnihook("handlers", "runs", "--failed")
    assert listed.exit_code == 0, listed.output
    for run in [*runs.values(), other["a"]]:
        assert run.id in listed.stdout

    by_id = await api.omnihook("handlers", "retry", runs["a"].id, "job_nope")
    assert by_id.exit_code == 1
    assert f"queued again: {runs['a'].id}  a on task.completed (task {task.id})" in by_id.stdout
    assert "job_nope: not_found (HTTP 404)" in by_id.stderr

    of_task = await api.omnihook("handlers", "retry", "--failed", "--task", task.id)
    assert of_task.exit_code == 0, of_task.output
    assert of_task.stdout.count("queued again") == 1 and runs["b"].id in of_task.stdout

    everywhere = await api.omnihook("handlers", "retry", "--failed")
    assert everywhere.exit_code == 0, everywhere.output
    assert everywhere.stdout.count("queued again") == 1 and other["a"].id in everywhere.stdout
    statuses = {(await api.storage.get_job(r.id)).status for r in [*runs.values(), other["a"]]}  # type: ignore[union-attr]
    assert statuses == {JobStatus.QUEUED}

    nothing = await api.omnihook("handlers", "retry", "--failed")
    assert (nothing.exit_code, nothing.stdout.strip()) == (0, "no failed handler runs")


async def test_the_cli_needs_run_ids_or_failed(api: Api) -> None:
    for args in ([], ["job_1", "--failed"], ["--task", "task_1"]):
        result = await api.omnihook("handlers", "retry", *args)
        assert result.exit_code == 2, args
        assert "RUN_IDs" in result.stderr


async def stored_video(api: Api, task: TaskRecord, status: DownloadStatus) -> Path:
    relative = f"{task.id}/0.mp4"
    path = api.media_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE, path)
    video = make_video(task.id, download_status=status, path=relative)
    current = await api.storage.get_task(task.id)
    assert current is not None
    assert await api.storage.apply(TaskChange(task=current, videos=[video]))
    return path


async def test_the_poster_is_served_and_shown_on_the_dashboard_once_written(api: Api) -> None:
    task, _ = await api.add_task(1, {})
    video = await stored_video(api, task, DownloadStatus.DOWNLOADED)
    poster_url = f"/v1/tasks/{task.id}/videos/0/poster"

    before = await api.get(poster_url)
    page_before = (await api.get("/")).text
    video.with_name("0.mp4.jpg").write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    after = await api.get(poster_url)
    page_after = (await api.get("/")).text

    assert before.status_code == 404 and "no poster yet" in before.json()["message"]
    assert "poster=" not in page_before and f'src="/v1/tasks/{task.id}/videos/0"' in page_before
    assert after.status_code == 200
    assert after.headers["content-type"] == "image/jpeg"
    assert after.content == b"\xff\xd8\xff\xe0 a jpeg"
    assert f'poster="{poster_url}"' in page_after
    assert (await api.get(f"/v1/tasks/{task.id}/videos/1/poster")).status_code == 404
    assert (await api.get("/v1/tasks/task_nope/videos/0/poster")).status_code == 404


async def test_a_video_not_stored_has_no_poster(api: Api) -> None:
    task, _ = await api.add_task(1, {})
    video = await stored_video(api, task, DownloadStatus.DOWNLOADING)
    video.with_name("0.mp4.jpg").write_bytes(b"\xff\xd8 stale")

    assert (await api.get(f"/v1/tasks/{task.id}/videos/0/poster")).status_code == 404
