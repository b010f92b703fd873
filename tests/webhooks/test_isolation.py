"""An endpoint that never answers holds at most its own slots: the others are delivered at once."""

from __future__ import annotations

import asyncio

import httpx

from storage.records import DeliveryStatus
from tests.webhooks.conftest import HookFactory


async def test_a_silent_endpoint_does_not_hold_up_the_healthy_ones(
    make_hooks: HookFactory,
) -> None:
    hooks = await make_hooks(
        worker_concurrency=4, webhook_endpoint_concurrency=2, webhook_timeout=30
    )
    peak = 0

    async def silent(request: httpx.Request) -> httpx.Response:
        nonlocal peak
        gate = hooks.services.endpoint_gate
        peak = max(peak, gate.in_flight(silent_endpoint.id))
        await asyncio.sleep(60)  # never answers within the test
        raise AssertionError("unreachable")

    async def healthy(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.005)
        return httpx.Response(204)

    silent_endpoint = await hooks.add_endpoint(hooks.endpoints.answer("silent.example", silent))
    first = await hooks.add_endpoint(hooks.endpoints.answer("one.example", healthy))
    second = await hooks.add_endpoint(hooks.endpoints.answer("two.example", healthy))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(15):
        await hooks.emit("task.succeeded", n=n)

    async def healthy_done() -> bool:
        found = await hooks.deliveries(first) + await hooks.deliveries(second)
        return len(found) == 30 and all(d.status == DeliveryStatus.SUCCEEDED for d in found)

    await hooks.wait(healthy_done, timeout=10)
    took = loop.time() - started
    assert took < 5, f"healthy endpoints waited {took:.1f}s behind a silent one"
    assert len(hooks.endpoints.received["one.example"]) == 15
    # the silent endpoint got its slots and no more; its deliveries wait for their turn
    assert 1 <= len(hooks.endpoints.received["silent.example"]) <= 2 and peak <= 2
    silent_deliveries = await hooks.deliveries(silent_endpoint)
    assert all(d.status == DeliveryStatus.PENDING for d in silent_deliveries)
