"""Several replicas on one PostgreSQL: 2 ``serve --no-worker`` and 3 ``worker`` processes.

A few hundred tasks, each of whose notifications the simulated provider sends twice (some also
out of order), reach both replicas through a round-robin proxy; one worker is killed with
SIGKILL in the middle of a handler run. In the end every task is right, every video was
downloaded once, no event or handler run is doubled and no job is lost. PostgreSQL only: skipped
unless ``OMNIHOOK_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.loopback import serve_on_loopback
from storage.postgres.schema import parse_url
from tests.e2e.conftest import free_port
from tests.e2e.replica_cluster import Cluster, Process, cluster_env
from tests.storage.postgres_db import fresh_schema, needs_postgres, plain_url

MIGRATIONS = Path(__file__).parents[2] / "storage" / "migrations" / "postgresql"

pytestmark = [pytest.mark.e2e, needs_postgres]

TASKS = 300
SUBMITTERS = 12  # submissions in flight at once
# how soon the killed worker's jobs come back; short, yet long enough that a busy machine
# never lets a live worker's lease lapse (renewed every third of it)
LEASE_SECONDS = 4
DEADLINE = 150.0  # seconds for the whole run, far above what it needs
SLOW_EVENT = "task.completed"
EXPECTED_KEYS = sorted(
    ["task.submitted", "task.processing", "task.succeeded", "video.downloaded:0", "task.completed"]
)

# A plugin as a user would write one. Each process logs to a file of its own: "start" when a run
# begins and "done" when it ends, last thing, so a run killed midway leaves a start without a
# done. Runs on task.completed take a while, so that the kill surely finds one in progress.
PLUGIN = textwrap.dedent(
    f"""
    import asyncio, os, time
    from handlers import on

    LOG = os.path.join(os.environ["REPLICA_TEST_LOGS"], f"{{os.getpid()}}.log")

    def note(word, event):
        with open(LOG, "a") as f:
            f.write(f"{{word}} {{event.id}} {{time.time()}}\\n")

    @on("*")
    async def record(event):
        note("start", event)
        if event.type == "{SLOW_EVENT}":
            await asyncio.sleep(0.5)
        note("done", event)
    """
)


Runs = dict[int, list[tuple[str, str, float]]]


def read_runs(logs: Path) -> Runs:
    """pid -> the plugin's log lines of that process: (word, event id, time)."""
    runs: Runs = {}
    for path in logs.glob("*.log"):
        lines = (line.split() for line in path.read_text().splitlines())
        # a line being written right now may be incomplete: only whole ones count
        runs[int(path.stem)] = [(p[0], p[1], float(p[2])) for p in lines if len(p) == 3]
    return runs


def open_runs(lines: list[tuple[str, str, float]], *, since: float = 0.0) -> set[str]:
    """Event ids of the runs started (after ``since``) and not done."""
    done = {event_id for word, event_id, _ in lines if word == "done"}
    started = {event_id for word, event_id, at in lines if word == "start" and at >= since}
    return started - done


async def submit_all(api: httpx.AsyncClient) -> list[str]:
    gate = asyncio.Semaphore(SUBMITTERS)

    async def submit(n: int) -> str:
        prompt = f"replica test {n} [sim:duplicate]" + (" [sim:reorder]" if n % 3 == 0 else "")
        body = {"model_name": "kling-v3-omni", "duration": "5", "prompt": prompt}
        async with gate:
            answer = await api.post("/v1/tasks", json={**body, "aspect_ratio": "16:9"})
        assert answer.status_code == 201, answer.text
        task_id: str = answer.json()["id"]
        return task_id

    return list(await asyncio.gather(*(submit(n) for n in range(TASKS))))


async def wait_ready(url: str, process: Process) -> None:
    path = "/_proxy/stats" if process.name == "proxy" else "/readyz"
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        for _ in range(300):
            assert process.alive(), process.tail()
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{process.name} never became ready\n{process.tail()}")


class Database:
    """Direct SQL on the cluster's schema, for progress and the final checks."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def progress(self) -> dict[str, int]:
        row = await self.conn.fetchrow(
            "SELECT"
            " (SELECT count(*) FROM tasks WHERE status = 'succeeded') AS succeeded,"
            " (SELECT count(*) FROM videos WHERE download_status = 'downloaded') AS downloaded,"
            " (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')) AS pending,"
            " (SELECT count(*) FROM jobs WHERE status = 'running') AS running"
        )
        return dict(row)

    async def finished(self) -> bool:
        progress = await self.progress()
        return (progress["succeeded"], progress["downloaded"], progress["pending"]) == (
            TASKS,
            TASKS,
            0,
        )


async def kill_a_worker_mid_handler(
    cluster: Cluster, workers: list[Process], logs: Path, db: Database
) -> tuple[Process, set[str]]:
    """Once a third of the tasks are done, SIGKILL a worker that is inside a handler run;
    answers the worker and the event ids of its interrupted runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE / 2
    while loop.time() < deadline:
        if (await db.progress())["succeeded"] >= TASKS // 3:
            runs = read_runs(logs)
            # a run started in the last 0.25 s has at least as long to go: the kill lands
            # inside it
            recent = time.time() - 0.25
            for worker in workers:
                if open_runs(runs.get(worker.pid, []), since=recent):
                    cluster.kill(worker)
                    return worker, open_runs(read_runs(logs)[worker.pid])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker was ever caught in a handler run\n{cluster.report()}")


async def test_replicas_share_tasks_and_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    import asyncpg

    logs = tmp_path / "handler-runs"
    logs.mkdir()
    plugin = tmp_path / "replica_plugin.py"
    plugin.write_text(PLUGIN)
    media = tmp_path / "media"
    # a generous callback timeout: on a busy machine a notification may take a while to be
    # answered, and one the simulator gave up on would only come back by reconciliation
    fake_app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.3, callback_timeout=60))
    ports = [free_port(), free_port()]
    replicas = [f"http://127.0.0.1:{port}" for port in ports]

    async with (
        fresh_schema() as database_url,
        serve_on_loopback(fake_app) as fake_url,
    ):
        proxy_url = f"http://127.0.0.1:{free_port()}"
        env = cluster_env(
            database_url=database_url,
            media_dir=str(media),
            public_url=proxy_url,
            kling_base_url=fake_url,
            kling_api_key="replica-key",
            allow_private_networks="true",
            handlers=str(plugin),
            job_lease_seconds=str(LEASE_SECONDS),
            handler_retry_schedule="0.2,0.5,1,2",
            download_retry_schedule="0.2,0.5,1,2",
            reconcile_after="15",
            # each task's crash-safety submit job comes due (and finds nothing to do) within
            # the test, not ten minutes after it
            submit_resume_after="5",
        )
        env["REPLICA_TEST_LOGS"] = str(logs)
        cluster = Cluster(env, tmp_path)
        try:
            proxy = cluster.start(
                "proxy", proxy_url.rsplit(":", 1)[1], *replicas, module="tests.e2e.replica_cluster"
            )
            # all five at once: they race to migrate the fresh schema
            web = [
                cluster.start(f"web-{n}", "serve", "--no-worker", "--port", str(port))
                for n, port in enumerate(ports)
            ]
            workers = [cluster.start(f"worker-{n}", "worker") for n in range(3)]
            for url, process in [*zip(replicas, web, strict=True), (proxy_url, proxy)]:
                await wait_ready(url, process)
            schema = parse_url(database_url).schema
            conn = await asyncpg.connect(plain_url(), server_settings={"search_path": str(schema)})
            db = Database(conn)
            try:
                async with httpx.AsyncClient(base_url=proxy_url, timeout=60) as api:
                    submitting = asyncio.create_task(submit_all(api))
                    try:
                        killed, interrupted = await kill_a_worker_mid_handler(
                            cluster, workers, logs, db
                        )
                        task_ids = await submitting
                    finally:
                        submitting.cancel()
                    await wait_finished(db, cluster)
                    await check_everything(
                        db, api, fake_url, media, logs, task_ids, killed, interrupted
                    )
                    stats = (await api.get("/_proxy/stats")).json()
                survivors = [p for p in cluster.processes if p is not killed]
                assert all(p.alive() for p in survivors), cluster.report()
                # both replicas received (many) notifications
                assert all(stats["callbacks"].get(url, 0) > TASKS for url in replicas), stats
            finally:
                await conn.close()
        finally:
            cluster.stop()


async def wait_finished(db: Database, cluster: Cluster) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await db.finished():
        if loop.time() > deadline:
            raise AssertionError(f"not finished: {await db.progress()}\n{cluster.report()}")
        await asyncio.sleep(0.25)


async def check_everything(
    db: Database,
    api: httpx.AsyncClient,
    fake_url: str,
    media: Path,
    logs: Path,
    task_ids: list[str],
    killed: Process,
    interrupted: set[str],
) -> None:
    conn = db.conn
    # no job lost, none failed, none left behind
    statuses = dict(await conn.fetch("SELECT status, count(*) FROM jobs GROUP BY status"))
    assert set(statuses) == {"succeeded"}, statuses
    # five processes started at once applied each migration exactly once
    migrations = sorted(MIGRATIONS.glob("*.sql"))
    assert (await conn.fetchval("SELECT count(*) FROM schema_migrations")) == len(migrations)

    # each (task, event type, video) exactly once, and nothing else
    stories = dict(
        await conn.fetch(
            "SELECT task_id, array_agg(event_key ORDER BY event_key) FROM events GROUP BY task_id"
        )
    )
    assert set(stories) == set(task_ids)
    assert all(keys == EXPECTED_KEYS for keys in stories.values())
    event_ids = {row[0] for row in await conn.fetch("SELECT id FROM events")}
    assert len(event_ids) == len(EXPECTED_KEYS) * TASKS

    # each handler run exactly once: one job per (event, handler), one completed run of the
    # plugin per event across every process; the runs the kill interrupted ran again
    # elsewhere, by a job that came back after its lease
    plugin_jobs = {
        row["event_id"]: row["attempts"]
        for row in await conn.fetch(
            "SELECT payload->>'event_id' AS event_id, attempts FROM jobs "
            "WHERE kind = 'handler' AND payload->>'handler' LIKE '%:record'"
        )
    }
    assert set(plugin_jobs) == event_ids
    assert interrupted, "the kill interrupted no handler run"
    assert all(plugin_jobs[event_id] >= 2 for event_id in interrupted)
    finished_by: defaultdict[str, list[int]] = defaultdict(list)  # event id -> pids
    for pid, lines in read_runs(logs).items():
        for word, event_id, _ in lines:
            if word == "done":
                finished_by[event_id].append(pid)
    assert set(finished_by) == event_ids
    # The one way a run can happen twice: it had finished in the killed worker, which died
    # before recording it; its job came back after the lease and ran again elsewhere. That
    # is at-least-once, for the few runs in flight at the kill, and nothing else.
    twice = {event_id: pids for event_id, pids in finished_by.items() if len(pids) > 1}
    for event_id, pids in twice.items():
        assert len(pids) == 2 and pids.count(killed.pid) == 1, (event_id, pids)
        assert plugin_jobs[event_id] >= 2, event_id
    assert len(twice) <= 8, twice  # at most what one worker holds at once

    # the API agrees, through either replica
    for task_id in task_ids[::15]:
        task = (await api.get(f"/v1/tasks/{task_id}")).json()
        assert task["status"] == "succeeded"
        per_run = Counter((r["event_id"], r["handler"]) for r in task["handler_runs"])
        assert set(per_run.values()) == {1}
        assert {r["status"] for r in task["handler_runs"]} == {"succeeded"}

    # each video stored once, intact, and fetched whole exactly once from the provider
    # (a download the kill interrupted may have been fetched again: at most once per attempt)
    videos = await conn.fetch(
        "SELECT v.path, v.size, v.sha256, v.provider_video_id, j.attempts FROM videos v "
        "JOIN jobs j ON j.dedupe_key = 'download:' || v.task_id || ':' || v.video_index"
    )
    assert len(videos) == TASKS
    for video in videos:
        data = (media / video["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (video["size"], video["sha256"])
    async with httpx.AsyncClient(base_url=fake_url) as fake:
        simulated = (await fake.get("/_sim/tasks")).json()["tasks"]
    served = {v["id"]: v["served"] for task in simulated for v in task["videos"]}
    for video in videos:
        counts = served[video["provider_video_id"]]
        if video["attempts"] == 1:
            assert counts == {"full": 1, "partial": 0, "refused": 0}, video
        else:
            assert counts["full"] >= 1 and counts["full"] + counts["partial"] <= video["attempts"]
    again = sum(video["attempts"] > 1 for video in videos)
    assert again <= 8, f"{again} downloads ran more than once"  # at most one worker's share
