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


class FakeMonotonic:
    """The gate's monotonic clock, moved by the test (the event loop keeps the real one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(gate_module, "time", fake)
    return fake


async def fail_once(gate: EndpointGate, fake_time: FakeMonotonic, took: float) -> None:
    """One attempt that failed after ``took`` seconds (a timeout, say)."""
    async with gate.slot("wh", 4, retry=True) as inside:
        assert inside
        fake_time.now += took
        gate.settle("wh", succeeded=False)


async def test_hand_backs_while_open_reserve_no_turns(fake_time: FakeMonotonic) -> None:
    gate = EndpointGate(timeout=15)
    await fail_once(gate, fake_time, took=15)  # a timeout: an attempt "takes" 15 s
    # 40 jobs handed back while the circuit is open for 1 s: each comes back at the probe,
    # none behind the turns of the others
    delays = [gate.turn_delay("wh", 4) for _ in range(40)]
    assert all(0.95 <= delay <= 1.0 * 1.2 + 1e-9 for delay in delays)
    fake_time.now += 1.5  # half-open; nobody probes yet
    assert gate.turn_delay("wh", 4) <= 1.0 * 1.2 + 1e-9
    assert await entered(gate, "wh", 4)  # the probe goes


async def test_a_success_after_hand_backs_gives_the_next_turn_at_once(
    fake_time: FakeMonotonic,
) -> None:
    gate = EndpointGate(timeout=15)
    await fail_once(gate, fake_time, took=15)
    for _ in range(40):
        gate.turn_delay("wh", 4)
    fake_time.now += 1.0
    async with gate.slot("wh", 4) as probe:
        assert probe
        fake_time.now += 0.02
        gate.settle("wh", succeeded=True)
    assert not gate.throttled("wh")
    # closed: turns at its healthy pace (0.02 s), not the 15 s of its timeout nor after the
    # turns the hand-backs would have reserved
    first, *others = [gate.turn_delay("wh", 4) for _ in range(4)]
    assert first <= gate_module.MIN_TURN * 1.2 + 1e-9
    assert all(delay <= 0.5 for delay in others)


async def test_a_failed_retry_through_the_open_circuit_does_not_double_it(
    fake_time: FakeMonotonic,
) -> None:
    gate = EndpointGate(timeout=15)
    await fail_once(gate, fake_time, took=0.1)  # opens for 1 s
    for _ in range(10):  # deliveries due on their own schedule try, and fail, while it is open
        fake_time.now += 0.5
        await fail_once(gate, fake_time, took=0.1)
        assert gate.turn_delay("wh", 4) <= 1.0 * 1.2 + 1e-9
    fake_time.now += 1.5
    assert await entered(gate, "wh", 4)  # the circuit's own probe, which fails:
    gate.settle("wh", succeeded=False)
    assert 2.0 * 0.95 <= gate.turn_delay("wh", 4) <= 2.0 * 1.2 + 1e-9  # now it doubles


async def test_attempts_in_flight_when_the_circuit_opens_count_as_one_failed_probe(
    fake_time: FakeMonotonic,
) -> None:
    gate = EndpointGate(timeout=15)
    all_in, answered = asyncio.Event(), asyncio.Event()

    async def times_out() -> None:
        async with gate.slot("wh", 4) as inside:
            assert inside
            if gate.in_flight("wh") == 4:
                all_in.set()
            await answered.wait()
            gate.settle("wh", succeeded=False)

    # the endpoint's concurrency, all in flight when it stops answering
    attempts = [asyncio.create_task(times_out()) for _ in range(4)]
    await asyncio.wait_for(all_in.wait(), 5)
    fake_time.now += 15
    answered.set()
    await asyncio.wait_for(asyncio.gather(*attempts), 5)
    assert 0.95 <= gate.turn_delay("wh", 4) <= 1.0 * 1.2 + 1e-9  # open for 1 s, not 8


async def test_hand_backs_behind_a_hung_attempt_reserve_no_turns(
    fake_time: FakeMonotonic,
) -> None:
    gate = EndpointGate(timeout=15)
    async with gate.slot("wh", 4) as hung:
        assert hung
        fake_time.now += 2  # no answer yet: its pace is not known
        delays = [gate.turn_delay("wh", 4) for _ in range(40)]
        # back when it has waited twice as long, not one "2 s turn" behind the other
        assert all(1.9 <= delay <= 2.0 * 1.2 + 1e-9 for delay in delays)
        fake_time.now += 12
        assert gate.turn_delay("wh", 4) <= 1.0 * 1.2 + 1e-9  # at the latest its timeout
