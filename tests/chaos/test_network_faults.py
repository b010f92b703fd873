"""Connections to the provider's API, to its video server and to the webhook sink cut, delayed
and stalled at random (a TCP proxy in front of each), while tasks flow. Once the faults stop,
everything completes: no video stored twice or half, no delivery lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos.database import Database
from tests.chaos.fault_proxy import FaultMix
from tests.chaos.invariants import settle
from tests.chaos.report import ScenarioReport
from tests.chaos.rig import Layout, chaos_rig

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TASKS = 14
SUBMIT_SECONDS = 10.0
FAULTS_AFTER_SUBMISSIONS = 3.0  # the faults go on a while after the last submission
SETTLE_SECONDS = 90.0  # a throttled endpoint recovers gradually once the faults stop

LAYOUT = Layout(
    serve=[True],
    workers=1,
    provider=FaultMix(cut=0.15, stall=0.1, delay=0.2, cut_within=4096),
    # a video is ~45 kB: a cut or stall lands anywhere in its transfer
    media=FaultMix(cut=0.3, stall=0.15, delay=0.2, cut_within=48 * 1024, throttle=0.01),
    sink=FaultMix(cut=0.25, stall=0.1, delay=0.2, cut_within=2048),
)


async def test_network_faults(chaos_report: ScenarioReport, tmp_path: Path) -> None:
    database = Database("sqlite", tmp_path)
    async with chaos_rig(chaos_report, tmp_path, database.url, LAYOUT) as rig:
        rig.faults(on=True)
        try:
            await rig.submit_over(TASKS, SUBMIT_SECONDS)
            await asyncio.sleep(FAULTS_AFTER_SUBMISSIONS)
        finally:
            rig.faults(on=False)
        rig.count_faults()
        findings = await settle(rig, SETTLE_SECONDS)
        assert all(chaos_report.faults[f"{name} cut"] > 0 for name in rig.proxies)
        assert not findings.problems, "\n".join(findings.problems[:30]) + rig.fleet.report()
