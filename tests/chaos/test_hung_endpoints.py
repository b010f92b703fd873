"""Twenty webhook endpoints that accept and never answer, next to a healthy one: the hung ones
may cost their own slots and nothing else, so the healthy endpoint still gets every delivery
and the tasks still complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.database import Database
from tests.chaos.invariants import settle
from tests.chaos.report import ScenarioReport
from tests.chaos.rig import Layout, chaos_rig

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TASKS = 12
HUNG_ENDPOINTS = 20  # as many as in issue 12's report
SETTLE_SECONDS = 45.0

LAYOUT = Layout(
    serve=[True],
    hung_endpoints=HUNG_ENDPOINTS,
    # long enough that a hung attempt holds what it holds for a while
    settings={"webhook_timeout": "10"},
)


async def test_hung_endpoints(chaos_report: ScenarioReport, tmp_path: Path) -> None:
    database = Database("sqlite", tmp_path)
    async with chaos_rig(chaos_report, tmp_path, database.url, LAYOUT) as rig:
        await rig.submit_over(TASKS, seconds=6.0)
        findings = await settle(rig, SETTLE_SECONDS)
        chaos_report.faults["hung endpoints"] = HUNG_ENDPOINTS
        chaos_report.faults["hung endpoint connections"] = sum(e.connections for e in rig.hung)
        assert not findings.problems, "\n".join(findings.problems[:30]) + rig.fleet.report()
