"""Webhook endpoints that accept and never answer, and handlers that never return or block their
event loop, next to a healthy endpoint and a healthy handler: the hung ones may cost their own
slots and nothing else, so the healthy endpoint still gets every delivery and the healthy
handler runs on every event."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.database import Database
from tests.chaos.invariants import settle
from tests.chaos.report import ScenarioReport
from tests.chaos.rig import Layout, chaos_rig

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TASKS = 12
HANG_EVERY = 3  # tasks 0, 3, 6, 9 make the plugin's "stuck" and "blocking" handlers hang
HUNG_ENDPOINTS = 8
SETTLE_SECONDS = 45.0

LAYOUT = Layout(
    serve=[True],  # the in-process worker: a handler that blocks its loop blocks the receiver
    hung_endpoints=HUNG_ENDPOINTS,
    # long enough that a hung attempt holds its slot for a while; the healthy endpoint
    # answers at once
    settings={"webhook_timeout": "10"},
)


async def test_hung_peers(chaos_report: ScenarioReport, tmp_path: Path) -> None:
    database = Database("sqlite", tmp_path)
    async with chaos_rig(chaos_report, tmp_path, database.url, LAYOUT) as rig:
        await rig.submit_over(TASKS, seconds=6.0, hang_every=HANG_EVERY)
        findings = await settle(rig, SETTLE_SECONDS)
        chaos_report.faults["hung endpoints"] = HUNG_ENDPOINTS
        chaos_report.faults["hung endpoint connections"] = sum(e.connections for e in rig.hung)
        chaos_report.faults["hung handler tasks"] = len(range(0, TASKS, HANG_EVERY))
        assert not findings.problems, "\n".join(findings.problems[:30]) + rig.fleet.report()
