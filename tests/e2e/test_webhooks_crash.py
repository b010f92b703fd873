"""A worker killed with SIGKILL in the middle of a delivery: the next worker makes it again,
with the same ``webhook-id`` and body, and no delivery is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.apply.events import dispatch_job
from service.loopback import serve_on_loopback
from service.webhooks.signing import new_secret
from storage.records import DeliveryStatus, TaskChange, WebhookEndpointRecord
from storage.sqlite.backend import SQLiteStorage
from tests.factories import make_event, make_task

pytestmark = pytest.mark.e2e


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    moment = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], moment, body.decode())
    return expected in headers["webhook-signature"].split(" ")


async def test_a_delivery_cut_by_a_killed_worker_is_made_again(tmp_path: Path) -> None:
    got: list[tuple[dict[str, str], bytes]] = []
    first_seen = asyncio.Event()
    release = asyncio.Event()

    async def hook(request: Request) -> Response:
        got.append((dict(request.headers), await request.body()))
        if len(got) == 1:
            first_seen.set()
            await release.wait()  # the worker is killed while this attempt hangs
        return Response(status_code=200)

    db = tmp_path / "omnihook.db"
    storage = SQLiteStorage(str(db))
    await storage.open()
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_on_loopback(app) as url:
        now = datetime.now(UTC)
        endpoint = WebhookEndpointRecord(
            id="wh_crash",
            url=f"{url}/hook",
            description="",
            events=["*"],
            enabled=True,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
        )
        await storage.create_endpoint(endpoint)
        task = make_task()
        await storage.create_task(task)
        events = [
            make_event(task.id, type="task.succeeded", key=f"e{n}", timestamp=now) for n in range(3)
        ]
        dispatches = [dispatch_job(event) for event in events]
        assert await storage.apply(TaskChange(task, events=events, jobs=dispatches))
        env = {
            **os.environ,
            "OMNIHOOK_DATABASE_URL": f"sqlite:///{db}",
            "OMNIHOOK_MEDIA_DIR": str(tmp_path / "media"),
            "OMNIHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "OMNIHOOK_JOB_LEASE_SECONDS": "1",
            "OMNIHOOK_WEBHOOK_TIMEOUT": "60",
            "OMNIHOOK_KLING_API_KEY": "unused",
        }
        log = tmp_path / "worker.log"
        first = start_worker(env, log)
        try:
            await asyncio.wait_for(first_seen.wait(), 30)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            release.set()
            second = start_worker(env, log)
            try:
                for _ in range(400):
                    found = await storage.list_deliveries(endpoint_id=endpoint.id)
                    if len(found) == 3 and all(d.status == DeliveryStatus.SUCCEEDED for d in found):
                        break
                    await asyncio.sleep(0.05)
                assert all(d.status == DeliveryStatus.SUCCEEDED for d in found), log.read_text()
            finally:
                second.terminate()
                second.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
            release.set()
            await storage.close()

    cut_id = got[0][0]["webhook-id"]
    again = [(h, b) for h, b in got[1:] if h["webhook-id"] == cut_id]
    assert again, "the cut delivery was never made again"
    assert again[-1][1] == got[0][1]  # the same body, byte for byte
    assert all(signed_by(endpoint.secret, h, b) for h, b in got)
    assert {h["webhook-id"] for h, _ in got} == {e.id for e in events}  # none lost
