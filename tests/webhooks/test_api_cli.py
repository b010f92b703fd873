"""``/v1/webhooks``, ``/v1/deliveries`` and ``omnihook webhooks``, against the real app on
loopback (in-memory storage, its worker running) and a real receiver on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.registry import HandlerRegistry
from service.app import create_app
from service.apply.events import dispatch_job
from service.cli import cli
from service.clock import utcnow
from service.loopback import serve_on_loopback
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from storage.records import TaskChange
from tests.factories import make_event, make_task


@dataclass
class Receiver:
    """A real endpoint: answers ``codes`` in turn (the last one for ever), keeps requests."""

    codes: list[int] = field(default_factory=lambda: [200])
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        self.got.append((dict(request.headers), await request.body()))
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        return Response(f"status {code}", status_code=code)


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    storage: MemoryStorage
    receiver: Receiver
    receiver_url: str

    async def omnihook(self, *args: str) -> Result:
        # In a thread: the command runs its own event loop, this one keeps serving it.
        return await asyncio.to_thread(
            CliRunner().invoke, cli, [*args, "--url", self.url], catch_exceptions=False
        )

    async def emit(self, event_type: str = "task.succeeded") -> str:
        task = make_task()
        await self.storage.create_task(task)
        event = make_event(task.id, type=event_type, key=event_type, timestamp=utcnow())
        assert await self.storage.apply(
            TaskChange(task, events=[event], jobs=[dispatch_job(event)])
        )
        return event.id

    async def deliveries(self, endpoint_id: str, count: int, status: str) -> list[Any]:
        for _ in range(500):
            answer = await self.http.get(f"/v1/webhooks/{endpoint_id}/deliveries")
            found = answer.json()["deliveries"]
            if len(found) == count and all(d["status"] == status for d in found):
                return list(found)
            await asyncio.sleep(0.01)
        raise AssertionError(f"deliveries never reached {status}: {found}")


async def _serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, allow_private: bool
) -> AsyncIterator[Api]:
    for name in list(os.environ):
        if name.startswith("OMNIHOOK_"):
            monkeypatch.delenv(name)  # no token or URL of the developer's
    monkeypatch.chdir(tmp_path)  # ...nor their .env
    receiver = Receiver()
    storage = MemoryStorage()
    settings = load_settings(
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="unused",
        allow_private_networks=allow_private,
        webhook_retry_schedule="",
    )
    app = create_app(settings, storage=storage, registry=HandlerRegistry(), with_worker=True)
    hook_app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    async with (
        serve_on_loopback(hook_app) as hook_url,
        serve_on_loopback(app) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        yield Api(url, http, storage, receiver, f"{hook_url}/hook")


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    async for made in _serve(tmp_path, monkeypatch, allow_private=True):
        yield made


@pytest.fixture
async def guarded_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    async for made in _serve(tmp_path, monkeypatch, allow_private=False):
        yield made


async def test_the_endpoint_lifecycle_through_the_api(api: Api) -> None:
    created = await api.http.post(
        "/v1/webhooks",
        json={"url": api.receiver_url, "events": ["task.succeeded"], "description": "ci"},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["id"].startswith("wh_")
    assert endpoint["events"] == ["task.succeeded"] and endpoint["enabled"] is True

    listed = (await api.http.get("/v1/webhooks")).json()["webhooks"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]  # shown once
    shown = (await api.http.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert "secret" not in shown and shown["operator_events"] == []

    event_id = await api.emit("task.succeeded")
    await api.emit("task.processing")  # not wanted by this endpoint
    [delivery] = await api.deliveries(endpoint["id"], 1, "succeeded")
    assert delivery["event_id"] == event_id
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["response_body"] == "status 200"
    [(headers, body)] = api.receiver.got
    Webhook(endpoint["secret"]).verify(body, headers)

    rotated = await api.http.patch(f"/v1/webhooks/{endpoint['id']}", json={"rotate_secret": True})
    assert rotated.status_code == 200 and rotated.json()["secret"] != endpoint["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    disabled = await api.http.patch(f"/v1/webhooks/{endpoint['id']}", json={"enabled": False})
    assert disabled.json()["enabled"] is False and "secret" not in disabled.json()
    history = (await api.http.get(f"/v1/webhooks/{endpoint['id']}")).json()["operator_events"]
    assert [e["type"] for e in history] == ["webhook.secret_rotated", "webhook.disabled"]

    assert (await api.http.delete(f"/v1/webhooks/{endpoint['id']}")).status_code == 204
    assert (await api.http.get(f"/v1/webhooks/{endpoint['id']}")).status_code == 404
    assert (await api.http.delete(f"/v1/webhooks/{endpoint['id']}")).status_code == 404


async def test_invalid_endpoints_are_refused_with_every_reason(guarded_api: Api) -> None:
    answer = await guarded_api.http.post(
        "/v1/webhooks", json={"url": "ftp://x.example/", "events": ["task.done"], "extra": 1}
    )
    assert answer.status_code == 422
    fields = [p["field"] for p in answer.json()["problems"]]
    assert sorted(fields) == ["events", "extra"]  # the URL is checked once the fields are right
    for url, reason in [
        (guarded_api.receiver_url, "loopback"),
        ("http://10.1.2.3/hook", "a private network"),
        ("http://169.254.169.254/latest", "cloud metadata"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("http://localhost:8080/", "names this machine"),
        ("gopher://hooks.example.com/", "only http(s)"),
    ]:
        refused = await guarded_api.http.post("/v1/webhooks", json={"url": url})
        assert refused.status_code == 422, url
        [problem] = refused.json()["problems"]
        assert problem["field"] == "url" and reason in problem["message"], problem


async def test_the_cli_adds_lists_shows_deliveries_and_retries(api: Api) -> None:
    api.receiver.codes = [500, 204]
    added = await api.omnihook("webhooks", "add", api.receiver_url, "--events", "task.failed")
    assert added.exit_code == 0, added.output
    assert "secret: whsec_" in added.output
    endpoint_id = added.output.split()[1]

    listed = await api.omnihook("webhooks", "list")
    assert endpoint_id in listed.output and "task.failed" in listed.output

    event_id = await api.emit("task.failed")
    [delivery] = await api.deliveries(endpoint_id, 1, "failed")  # no retries scheduled
    shown = await api.omnihook("webhooks", "deliveries", endpoint_id)
    assert delivery["id"] in shown.output and "HTTP 500" in shown.output

    retried = await api.omnihook("webhooks", "retry", delivery["id"])
    assert retried.exit_code == 0, retried.output
    assert f"queued again: {delivery['id']}" in retried.output
    [done] = await api.deliveries(endpoint_id, 1, "succeeded")
    assert done["attempts"] == 2
    assert [h["webhook-id"] for h, _ in api.receiver.got] == [event_id, event_id]
    again = await api.omnihook("webhooks", "retry", "dlv_unknown")
    assert again.exit_code == 1 and "not_found" in again.output

    for command, expected in [
        ("disable", f"disabled {endpoint_id}"),
        ("enable", f"enabled {endpoint_id}"),
        ("rotate", "secret: whsec_"),
        ("show", "webhook.secret_rotated"),
        ("remove", f"removed {endpoint_id}"),
    ]:
        result = await api.omnihook("webhooks", command, endpoint_id)
        assert result.exit_code == 0 and expected in result.output, result.output
    gone = await api.omnihook("webhooks", "show", endpoint_id)
    assert gone.exit_code == 1 and "not_found" in gone.output
