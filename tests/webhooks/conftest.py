"""Fixtures of the webhook tests: services on the in-memory backend, a clock the test moves, a
worker, and endpoints faked behind an ``httpx.MockTransport`` (a real server where it matters)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.bootstrap import open_services
from service.services import Services
from service.settings import load_settings
from service.webhooks.endpoints import create_endpoint
from service.webhooks.requests import NewEndpoint
from service.worker.loop import Worker
from storage.memory.backend import MemoryStorage
from storage.records import (
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    TaskChange,
    TaskRecord,
    WebhookEndpointRecord,
)
from tests.factories import ManualClock, make_event, make_task

Behaviour = Callable[[httpx.Request], Awaitable[httpx.Response]]


@dataclass
class Endpoints:
    """Fake endpoints by host: each answers with its behaviour and records what it got."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: dict[str, list[httpx.Request]] = field(default_factory=dict)

    def answer(self, host: str, behaviour: Behaviour) -> str:
        self.behaviours[host] = behaviour
        self.received.setdefault(host, [])
        return f"https://{host}/hook"

    def status(self, host: str, *codes: int, **headers: str) -> str:
        """Answers the codes in turn (the last one for ever)."""
        answers = list(codes)

        async def behaviour(request: httpx.Request) -> httpx.Response:
            code = answers.pop(0) if len(answers) > 1 else answers[0]
            return httpx.Response(code, headers=headers, text=f"answer {code}")

        return self.answer(host, behaviour)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        await request.aread()
        self.received.setdefault(host, []).append(request)
        return await self.behaviours[host](request)


@dataclass
class Hooks:
    services: Services
    clock: ManualClock
    endpoints: Endpoints
    task: TaskRecord | None = None

    async def add_endpoint(
        self, url: str, events: list[str] | None = None
    ) -> WebhookEndpointRecord:
        return await create_endpoint(self.services, NewEndpoint(url, events or ["*"], ""))

    async def emit(self, event_type: str = "task.succeeded", **fields: Any) -> EventRecord:
        storage = self.services.storage
        if self.task is None:
            self.task = make_task()
            await storage.create_task(self.task)
        event = make_event(
            self.task.id,
            type=event_type,
            key=f"{event_type}:{fields.pop('n', 0)}:{len(await storage.list_events(self.task.id))}",
            timestamp=self.clock(),
            data={"task": {"id": self.task.id}},
            **fields,
        )
        assert await storage.apply(TaskChange(self.task, events=[event]))
        return event

    async def deliveries(self, endpoint: WebhookEndpointRecord) -> list[DeliveryRecord]:
        return await self.services.storage.list_deliveries(endpoint_id=endpoint.id, limit=200)

    async def wait(self, condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await condition():
            if loop.time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)

    async def wait_status(
        self, delivery_id: str, status: DeliveryStatus, attempts: int | None = None
    ) -> DeliveryRecord:
        found: list[DeliveryRecord] = []

        async def reached() -> bool:
            delivery = await self.services.storage.get_delivery(delivery_id)
            assert delivery is not None
            found[:] = [delivery]
            return delivery.status == status and (attempts is None or delivery.attempts == attempts)

        await self.wait(reached)
        return found[0]

    async def wait_attempts(self, delivery_id: str, attempts: int) -> DeliveryRecord:
        async def reached() -> bool:
            delivery = await self.services.storage.get_delivery(delivery_id)
            assert delivery is not None
            if delivery.attempts < attempts:
                return False
            job = await self.services.storage.get_job(delivery.job_id)
            return job is not None and job.status.value != "running"

        await self.wait(reached)
        delivery = await self.services.storage.get_delivery(delivery_id)
        assert delivery is not None
        return delivery


HookFactory = Callable[..., Awaitable[Hooks]]


@pytest.fixture
async def make_hooks(tmp_path: Path) -> AsyncIterator[HookFactory]:
    """``hooks = await make_hooks(webhook_retry_schedule="5,300", ...)``: services with those
    settings and a worker running on the test's clock until the test ends."""
    stack: list[Any] = []

    async def make(**overrides: Any) -> Hooks:
        settings = load_settings(
            isolated=True,
            **{
                "database_url": "memory://",
                "media_dir": tmp_path / "media",
                "kling_api_key": "k",
                "allow_private_networks": False,
                "webhook_retry_schedule": "5,300",
                "webhook_timeout": 2.0,
                **overrides,
            },
        )
        endpoints = Endpoints()
        transport = httpx.MockTransport(endpoints.handle)
        opened = open_services(
            settings, storage=MemoryStorage(), registry=HandlerRegistry(), transport=transport
        )
        services = await opened.__aenter__()
        stack.append(opened)
        clock = ManualClock()
        services.clock = clock
        worker = asyncio.create_task(Worker(services, poll_interval=0.01).run())
        stack.append(worker)
        return Hooks(services, clock, endpoints)

    yield make
    for item in reversed(stack):
        if isinstance(item, asyncio.Task):
            item.cancel()
            await asyncio.gather(item, return_exceptions=True)
        else:
            await item.__aexit__(None, None, None)
