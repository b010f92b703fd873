"""Outgoing webhooks end to end: the real service and the simulated provider on loopback, and a
receiver on loopback that verifies every delivery with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.loopback import serve_on_loopback
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e


@dataclass
class VerifyingReceiver:
    """What a user's endpoint does: verify, then take the event (401 when it does not verify)."""

    secret: str = ""
    verified: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return Response(status_code=401)
        assert request.headers["webhook-id"] == payload["id"]
        self.verified.append(payload)
        return Response(status_code=204)


async def test_every_event_of_a_task_reaches_the_endpoint_signed(pipeline: Pipeline) -> None:
    receiver = VerifyingReceiver()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    async with serve_on_loopback(app) as hook_url:
        created = await pipeline.api.post("/v1/webhooks", json={"url": f"{hook_url}/hook"})
        assert created.status_code == 201, created.text
        endpoint = created.json()
        receiver.secret = endpoint["secret"]

        answer = await pipeline.submit(prompt="a lighthouse at dusk", external_task_id="wh-1")
        assert answer.status_code == 201, answer.text
        task = await pipeline.wait_finished(answer.json()["id"])
        events = (await pipeline.api.get(f"/v1/tasks/{task['id']}/events")).json()["events"]
        assert [e["type"] for e in events][-1] == "task.completed"

        # The endpoint has an event before its attempt is recorded: wait for both.
        deliveries: list[dict[str, Any]] = []
        for _ in range(300):
            listed = await pipeline.api.get(f"/v1/webhooks/{endpoint['id']}/deliveries")
            deliveries = listed.json()["deliveries"]
            recorded = [d for d in deliveries if d["status"] == "succeeded"]
            if len(receiver.verified) >= len(events) and len(recorded) >= len(events):
                break
            await asyncio.sleep(0.05)

    assert receiver.refused == 0
    # each event exactly as the API shows it, once, signed by the endpoint's secret
    assert sorted(receiver.verified, key=lambda e: e["id"]) == sorted(events, key=lambda e: e["id"])
    assert {d["status"] for d in deliveries} == {"succeeded"}
    assert len(deliveries) == len(events)
    assert all(d["attempt_log"][0]["status_code"] == 204 for d in deliveries)
    # the dashboard shows the task's deliveries beside its timeline
    page = (await pipeline.api.get("/")).text
    assert endpoint["id"] in page and "task.completed" in page
