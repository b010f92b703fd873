"""What the receiver tests share: the real app on the memory backend behind ASGITransport, a
scripted provider behind ``httpx.MockTransport``, signing, and a hand-cranked job runner.

``create_app`` is used as a server would: its lifespan runs, and the state it yields reaches
every request (ASGITransport alone does neither).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook
from starlette.types import ASGIApp, Receive, Scope, Send

from handlers import on
from handlers.registry import HandlerRegistry
from service.app import create_app
from service.jobs.outcome import GiveUp, RetryLater
from service.receiver.verify import token_hash
from service.services import Services
from service.settings import load_settings
from service.worker.runners import RUNNERS
from storage.base import Storage
from storage.memory.backend import MemoryStorage
from storage.records import JobRecord, TaskRecord, TaskStatus
from tests.factories import ManualClock, make_task

SECRET = "whsec_" + base64.b64encode(b"omnihook-test-secret-0123456789ab").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"omnihook-old-secret-0123456789abc").decode()
EVIL_URL = "https://attacker.example/video.mp4"
PROVIDER_URL = "https://cdn.provider.example/real.mp4"
QUERY_PATH = "/v1/videos/omni-video/"


@on("*")
def record_everything(event: object) -> None:
    """Subscribed to every event, so each event also makes one handler job."""


def registry() -> HandlerRegistry:
    handlers = HandlerRegistry()
    handlers.register(record_everything, source="tests")
    return handlers


def kling_task(
    task_id: str, status: str, *, external_task_id: str | None = None, url: str = PROVIDER_URL
) -> dict[str, Any]:
    """A task object of the official shape (a callback body, or a query answer's data)."""
    body: dict[str, Any] = {"task_id": task_id, "task_status": status, "task_status_msg": ""}
    if external_task_id:
        body["task_info"] = {"external_task_id": external_task_id}
    if status == "succeed":
        body["task_result"] = {"videos": [{"id": "v-1", "url": url, "duration": "5.0"}]}
    return body


@dataclass
class ScriptedProvider:
    """The provider's query endpoint: answers ``tasks[id]``, 1203 when unknown, and first
    ``rate_limited`` times a 1303 with ``Retry-After: 120`` (longer than the client waits
    inline, so the job scheduler gets it at once)."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    rate_limited: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET" or QUERY_PATH not in request.url.path:
            return httpx.Response(404, json={"code": 1202, "message": "invalid method"})
        ref = request.url.path.rsplit("/", 1)[-1]
        self.queries.append(ref)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            body = {"code": 1303, "message": "parallel task over resource pack limit"}
            return httpx.Response(429, json=body, headers={"Retry-After": "120"})
        task = self.tasks.get(ref)
        if task is None:
            return httpx.Response(404, json={"code": 1203, "message": "task not found"})
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": task})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _with_state(app: ASGIApp, state: Mapping[str, Any]) -> ASGIApp:
    """What a server does with the lifespan's state: a copy in every request's scope."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(state)}
        await app(scope, receive, send)

    return wrapped


@dataclass
class Receiver:
    client: httpx.AsyncClient
    services: Services
    provider: ScriptedProvider
    clock: ManualClock

    async def add_task(self, token: str, **fields: Any) -> TaskRecord:
        fields.setdefault("status", TaskStatus.SUBMITTED)
        fields.setdefault("provider_task_id", "kt-1")
        fields.setdefault("created_at", self.clock.now)
        fields.setdefault("updated_at", self.clock.now)
        task = make_task(callback_token_hash=token_hash(token), **fields)
        await self.services.storage.create_task(task)
        return task

    async def post(
        self,
        token: str,
        body: bytes | Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"content-type": "application/json", **(headers or {})}
        return await self.client.post(f"/callbacks/kling/{token}", content=raw, headers=sent)

    async def task(self, task_id: str) -> TaskRecord:
        task = await self.services.storage.get_task(task_id)
        assert task is not None
        return task

    async def run_jobs(self, kinds: tuple[str, ...] = ("inbox", "sync")) -> list[JobRecord]:
        return await run_due_jobs(self.services, kinds)


async def run_due_jobs(
    services: Services, kinds: tuple[str, ...] = ("inbox", "sync")
) -> list[JobRecord]:
    """Run every due job of ``kinds`` (and those they enqueue) the way the worker would."""
    ran: list[JobRecord] = []
    storage = services.storage
    while jobs := await storage.lease_jobs(
        now=services.clock(), lease_seconds=60, limit=20, kinds=kinds
    ):
        for job in jobs:
            now = services.clock()
            runner = RUNNERS[job.kind]
            try:
                await runner.run(services, job)
            except RetryLater as exc:
                planned = runner.schedule(services, job).delay_after(job.attempts)
                if planned is None:
                    if runner.on_give_up is not None:
                        await runner.on_give_up(services, job, str(exc))
                    await storage.fail_job(job.id, job.lease_token, now=now, error=str(exc))
                else:
                    wait = timedelta(seconds=max(planned, exc.delay or 0.0))
                    await storage.retry_job(
                        job.id, job.lease_token, now=now, run_at=now + wait, error=str(exc)
                    )
            except GiveUp as exc:
                await storage.fail_job(job.id, job.lease_token, now=now, error=str(exc))
            else:
                await storage.complete_job(job.id, job.lease_token, now=now)
            ran.append(job)
    return ran


@contextlib.asynccontextmanager
async def open_receiver(
    tmp_path: Path,
    *,
    secret: str | None = None,
    storage: Storage | None = None,
    raise_app_exceptions: bool = True,
    **settings: Any,
) -> AsyncIterator[Receiver]:
    """The real app (memory backend, no in-process worker) and a client speaking to it.
    ``raise_app_exceptions=False``: the client gets the 500 a server would answer instead."""
    provider = ScriptedProvider()
    clock = ManualClock(START)
    app = create_app(
        load_settings(
            database_url="memory://",
            media_dir=tmp_path / "media",
            kling_api_key="test-key",
            kling_webhook_secret=secret,
            **settings,
        ),
        storage=storage or MemoryStorage(),
        registry=registry(),
        transport=provider.transport,
    )
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        services: Services = state["services"]
        services.clock = clock
        transport = httpx.ASGITransport(
            app=_with_state(app, state), raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://omnihook.test") as c:
            yield Receiver(c, services, provider, clock)


def signed_headers(
    body: bytes, *, secrets: tuple[str, ...] = (SECRET,), at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers as Kling sends them: one signature per secret, space-separated
    (several during a rotation)."""
    moment = at or datetime.now(UTC)
    msg_id = "msg_" + base64.b16encode(body[:8]).decode().lower()
    signatures = [Webhook(s).sign(msg_id, moment, body.decode()) for s in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
