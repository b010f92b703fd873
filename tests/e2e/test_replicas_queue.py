"""The admission queue across processes: 2 ``serve --no-worker`` replicas and 2 ``worker``
processes on one PostgreSQL, against a simulated account with 4 slots.

Forty tasks are submitted at once, half to each replica, with a priority on some. Every one ends
succeeded; the provider never ran more than 4 at once nor had to refuse one (1303), and none was
sent twice; while the queue was long, the high-priority tasks left it first. PostgreSQL only:
skipped unless ``OMNIHOOK_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.loopback import serve_on_loopback
from tests.e2e.conftest import free_port
from tests.e2e.replica_cluster import Cluster, cluster_env
from tests.e2e.test_replicas import wait_ready
from tests.storage.postgres_db import fresh_schema, needs_postgres

pytestmark = [pytest.mark.e2e, needs_postgres]

SLOTS = 4
TASKS = 40
URGENT = 6  # submitted last, with priority 10
DEADLINE = 120.0


async def test_replicas_share_one_queue_and_never_exceed_the_slots(tmp_path: Path) -> None:
    fake_app = create_fake_kling_app(
        FakeKlingConfig(step_seconds=0.2, max_concurrent=SLOTS, callback_timeout=60)
    )
    ports = [free_port(), free_port()]
    replicas = [f"http://127.0.0.1:{port}" for port in ports]
    async with fresh_schema() as database_url, serve_on_loopback(fake_app) as fake_url:
        env = cluster_env(
            database_url=database_url,
            media_dir=str(tmp_path / "media"),
            public_url=replicas[0],  # callbacks to one replica; submissions to both
            kling_base_url=fake_url,
            kling_api_key="queue-key",
            allow_private_networks="true",
            provider_concurrency=str(SLOTS),
            job_lease_seconds="4",
            reconcile_after="15",
            submit_resume_after="5",
        )
        cluster = Cluster(env, tmp_path)
        try:
            web = [
                cluster.start(f"web-{n}", "serve", "--no-worker", "--port", str(port))
                for n, port in enumerate(ports)
            ]
            for n in range(2):
                cluster.start(f"worker-{n}", "worker")
            for url, process in zip(replicas, web, strict=True):
                await wait_ready(url, process)
            clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in replicas]
            try:
                tasks = await submit_all(clients)
                finished = await wait_all_finished(clients[0], tasks, cluster)
            finally:
                for client in clients:
                    await client.aclose()
        finally:
            cluster.stop()
        async with httpx.AsyncClient(base_url=fake_url, trust_env=False) as fake:
            seen = (await fake.get("/_sim/tasks")).json()

    assert [t["status"] for t in finished] == ["succeeded"] * TASKS
    assert seen["account"]["peak_running"] <= SLOTS
    assert seen["account"]["refused_full"] == 0
    created = sorted(t["external_task_id"] for t in seen["tasks"])
    assert created == sorted(t["external_task_id"] for t in tasks)  # each sent exactly once
    # the urgent tasks were queued behind most of the others, yet left the queue before all
    # but the few normal tasks admitted with them (fewer than the slots)
    at = {t["external_task_id"]: t["created_at"] for t in seen["tasks"]}
    last_urgent = max(at[f"u-{n}"] for n in range(URGENT))
    queued_normal = [t["external_task_id"] for t in tasks if t["status"] == "queued"]
    queued_normal = [e for e in queued_normal if e.startswith("n-")]
    overtaking = [e for e in queued_normal if at[e] < last_urgent]
    assert len(queued_normal) > TASKS // 2  # the queue was long when the urgent ones came
    assert len(overtaking) < SLOTS, overtaking


async def submit_all(clients: list[httpx.AsyncClient]) -> list[dict[str, Any]]:
    body = {"model_name": "kling-v3-omni", "duration": "5", "aspect_ratio": "16:9"}

    async def submit(name: str, client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
        answer = await client.post(
            "/v1/tasks", json={**body, "prompt": name, "external_task_id": name, **fields}
        )
        assert answer.status_code in (201, 202), answer.text
        task: dict[str, Any] = answer.json()
        return task

    normal = await asyncio.gather(
        *(submit(f"n-{n}", clients[n % 2]) for n in range(TASKS - URGENT))
    )
    urgent = await asyncio.gather(
        *(submit(f"u-{n}", clients[n % 2], priority=10) for n in range(URGENT))
    )
    return [*normal, *urgent]


async def wait_all_finished(
    api: httpx.AsyncClient, tasks: list[dict[str, Any]], cluster: Cluster
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        now = [(await api.get(f"/v1/tasks/{t['id']}")).json() for t in tasks]
        if all(t["status"] in ("succeeded", "failed") for t in now):
            return now
        if loop.time() > deadline:
            states = sorted({t["status"] for t in now})
            raise AssertionError(f"not finished: {states}\n{cluster.report()}")
        await asyncio.sleep(0.5)
