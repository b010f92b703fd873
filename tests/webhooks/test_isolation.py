"""An endpoint that never answers holds at most its own slots: the others are delivered at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

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


async def test_more_silent_endpoints_than_delivery_slots_still_leave_the_healthy_one_served(
    make_hooks: HookFactory,
) -> None:
    # four slots, two of them for deliveries: six endpoints that never answer would hold them
    # for their whole timeout, but an attempt slow to answer steps aside from its slot
    hooks = await make_hooks(worker_concurrency=4, webhook_timeout=30)

    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)  # never answers within the test
        raise AssertionError("unreachable")

    async def healthy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    silent_endpoints = [
        await hooks.add_endpoint(hooks.endpoints.answer(f"silent{n}.example", silent))
        for n in range(6)
    ]
    endpoint = await hooks.add_endpoint(hooks.endpoints.answer("healthy.example", healthy))
    for n in range(10):
        await hooks.emit("task.succeeded", n=n)

    async def healthy_done() -> bool:
        found = await hooks.deliveries(endpoint)
        return len(found) == 10 and all(d.status == DeliveryStatus.SUCCEEDED for d in found)

    await hooks.wait(healthy_done, timeout=10)
    # each silent endpoint holds one attempt (a few at most, sent before it proved slow)
    for silent_endpoint in silent_endpoints:
        host = httpx.URL(silent_endpoint.url).host
        assert 1 <= len(hooks.endpoints.received[host]) <= 4


async def test_a_failing_endpoint_gets_one_probe_then_its_deliveries_again(
    make_hooks: HookFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.webhooks.gate.BREAKER_FIRST", 0.3)
    hooks = await make_hooks(webhook_retry_schedule="3600")
    answers = [500]
    concurrent, arrivals = 0, list[int]()

    async def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal concurrent
        concurrent += 1
        arrivals.append(concurrent)
        try:
            await asyncio.sleep(0.02)
            return httpx.Response(answers.pop(0) if answers else 204)
        finally:
            concurrent -= 1

    endpoint = await hooks.add_endpoint(hooks.endpoints.answer("flaky.example", flaky))
    await hooks.emit("task.succeeded", n=0)
    [failed] = await hooks.deliveries(endpoint)
    await hooks.wait_attempts(failed.id, 1)
    for n in range(1, 5):  # while its circuit is open
        await hooks.emit("task.succeeded", n=n)
    await asyncio.sleep(0.2)
    assert len(hooks.endpoints.received["flaky.example"]) == 1  # handed back, not attempted
    waiting = [d for d in await hooks.deliveries(endpoint) if d.id != failed.id]
    assert len(waiting) == 4 and all(d.attempts == 0 for d in waiting)
    await asyncio.sleep(0.2)  # the circuit half-opens...
    hooks.clock.advance(5)  # ...and the deliveries handed back are due again

    async def delivered() -> bool:
        found = [await hooks.services.storage.get_delivery(d.id) for d in waiting]
        return all(d is not None and d.status == DeliveryStatus.SUCCEEDED for d in found)

    await hooks.wait(delivered)
    assert arrivals[1] == 1  # the probe went alone; its success let the others through
    assert not hooks.services.endpoint_gate.throttled(endpoint.id)
