"""SIGKILLs of ``serve`` and ``worker`` processes in the middle of receiving, applying,
downloading, delivering and running handlers, each process started again after a moment; on
SQLite and on PostgreSQL. Nothing acknowledged, stored or promised may be lost or doubled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos.database import Database
from tests.chaos.fault_proxy import FaultMix
from tests.chaos.invariants import settle
from tests.chaos.monkey import JobsProbe, Monkey
from tests.chaos.report import ScenarioReport
from tests.chaos.rig import Layout, chaos_rig

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TASKS = 14
SUBMIT_SECONDS = 10.0
KILLS = 10
SETTLE_SECONDS = 60.0

LAYOUT = Layout(
    serve=[True, False],  # one with its in-process worker, one receiving only
    workers=1,
    # transfers slowed a little (never cut): a kill can land in the middle of one
    media=FaultMix(throttle=0.08),
    sink=FaultMix(throttle=0.05),
)


async def test_kills(chaos_report: ScenarioReport, database: Database, tmp_path: Path) -> None:
    jobs = JobsProbe(database)
    async with chaos_rig(chaos_report, tmp_path, database.url, LAYOUT) as rig:
        await jobs.open()
        try:
            submitting = asyncio.create_task(rig.submit_over(TASKS, SUBMIT_SECONDS))
            try:
                await Monkey(rig, jobs).run(KILLS, pause=(0.3, 1.2))
                await submitting
            finally:
                submitting.cancel()
        finally:
            await jobs.close()
        rig.fleet.restart_dead()
        await rig.fleet.wait_ready()
        findings = await settle(rig, SETTLE_SECONDS)
        assert sum(chaos_report.kills.values()) == KILLS
        assert not findings.problems, "\n".join(findings.problems[:30]) + rig.fleet.report()
        died = [name for name in rig.fleet.roles if not rig.fleet.alive(name)]
        assert not died, f"{died} died by themselves\n{rig.fleet.report()}"
