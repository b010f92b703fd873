"""The receiver's load, as the in-process worker reads it."""

from __future__ import annotations

import pytest

from service.receiver.load import QUIET_AFTER, ReceiverLoad


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_at_start() -> None:
    load = ReceiverLoad(Clock())
    assert not load.busy
    assert load.quiet_in() == 0.0


def test_busy_when_a_callback_begins_and_for_a_moment_after_it_ends() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    with load.receiving():
        assert load.busy
        assert load.quiet_in() == pytest.approx(QUIET_AFTER)
        clock.now += QUIET_AFTER / 4
    assert load.busy  # the gap between two callbacks of a burst
    clock.now += QUIET_AFTER / 2
    assert load.busy
    assert load.quiet_in() == pytest.approx(QUIET_AFTER / 2)
    clock.now += QUIET_AFTER
    assert not load.busy
    assert load.quiet_in() == 0.0


def test_a_burst_keeps_it_busy() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    for _ in range(20):
        with load.receiving():
            clock.now += QUIET_AFTER / 10
        assert load.busy
        clock.now += QUIET_AFTER / 2
    clock.now += QUIET_AFTER
    assert not load.busy


def test_one_request_held_open_does_not_hold_the_worker_back() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    with load.receiving():  # a client trickling its body in, for minutes
        clock.now += 2 * QUIET_AFTER
        assert not load.busy
    assert load.busy  # it ended: news


def test_a_failing_callback_still_counts() -> None:
    clock = Clock()
    load = ReceiverLoad(clock)
    with pytest.raises(RuntimeError), load.receiving():
        clock.now += 2 * QUIET_AFTER
        raise RuntimeError("boom")
    assert load.busy
    clock.now += QUIET_AFTER
    assert not load.busy
