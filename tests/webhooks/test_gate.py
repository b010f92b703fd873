"""The endpoint gate of one process: a circuit per endpoint, one attempt at a time when slow."""

from __future__ import annotations

import asyncio

import pytest

from service.webhooks import gate as gate_module
from service.webhooks.gate import BREAKER_CEILING, EndpointGate


async def entered(gate: EndpointGate, endpoint: str, limit: int, *, retry: bool = False) -> bool:
    async with gate.slot(endpoint, limit, retry=retry) as inside:
        return inside


async def test_a_closed_circuit_lets_attempts_through() -> None:
    gate = EndpointGate(timeout=15)
    assert await entered(gate, "wh", 4)
    gate.settle("wh", succeeded=True)
    assert await entered(gate, "wh", 4)
    assert not gate.throttled("wh")


async def test_a_failure_opens_the_circuit_then_one_probe_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "BREAKER_FIRST", 0.2)
    gate = EndpointGate(timeout=15)
    gate.settle("wh", succeeded=False)
    assert gate.throttled("wh")
    assert not await entered(gate, "wh", 4)  # open: handed back
    assert gate.turn_delay("wh", 4) >= 0.15  # ...until it closes, not at once
    assert await entered(gate, "wh", 4, retry=True)  # a delivery due on its own schedule probes
    await asyncio.sleep(0.25)
    # half-open: one attempt at a time
    async with gate.slot("wh", 4) as probe:
        assert probe
        assert not await entered(gate, "wh", 4)  # a second one waits its turn elsewhere
        gate.settle("wh", succeeded=True)
    assert not gate.throttled("wh")
    async with gate.slot("wh", 4) as first, gate.slot("wh", 4) as second:
        assert first and second  # closed: its concurrency again


@pytest.mark.parametrize(("failures", "open_for"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)])
def test_the_circuit_stays_open_longer_at_each_failure_in_a_row(
    failures: int, open_for: float
) -> None:
    gate = EndpointGate(timeout=15)
    for _ in range(failures):
        gate.settle("wh", succeeded=False)
    # the next turn is at the end of the open spell (plus the endpoint's pace, jitter)
    delay = gate.turn_delay("wh", 4)
    assert open_for * 0.95 <= delay <= (open_for + 0.1) * 1.2 + 0.01


def test_the_open_spell_has_a_ceiling() -> None:
    gate = EndpointGate(timeout=15)
    for _ in range(20):
        gate.settle("wh", succeeded=False)
    assert BREAKER_CEILING * 0.95 <= gate.turn_delay("wh", 4) <= (BREAKER_CEILING + 0.1) * 1.2


async def test_an_attempt_slow_to_answer_holds_its_endpoint_to_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "SLOW", 0.05)
    gate = EndpointGate(timeout=15)
    async with gate.slot("wh", 4) as first:
        assert first
        assert await entered(gate, "wh", 4)  # answering fast so far: a second one goes too
        await asyncio.sleep(0.1)
        assert gate.throttled("wh")
        assert not await entered(gate, "wh", 4)  # the first has not answered yet: none more
    assert not gate.throttled("wh")  # it answered: no longer suspect


def test_endpoints_are_throttled_each_on_their_own() -> None:
    gate = EndpointGate(timeout=15)
    gate.settle("down", succeeded=False)
    assert gate.throttled("down") and not gate.throttled("up")
