"""Handlers whose first run hangs, next to a healthy handler: a sync one that never returns,
and an async one that blocks its event loop for longer than the provider waits for a callback's
answer. The serve process runs its worker in-process, so a handler that blocked the loop that
answers callbacks would be seen. Nothing may be delayed past that: every callback is answered in
time, every run of the healthy handler succeeds, and each hung run is timed out and run again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.database import Database
from tests.chaos.invariants import settle
from tests.chaos.report import ScenarioReport
from tests.chaos.rig import Layout, Rig, chaos_rig

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TASKS = 12
HANG_EVERY = 3  # tasks 0, 3, 6, 9 make the plugin's "stuck" and "blocking" handlers hang once
SETTLE_SECONDS = 45.0
HUNG_HANDLERS = (":stuck", ":blocking")

LAYOUT = Layout(serve=[True])


async def finished_hung_runs(rig: Rig, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The hung handlers' runs, once none is waiting for a retry (or ``timeout`` passed)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while True:
        runs = []
        for external_id in rig.external_ids[::HANG_EVERY]:
            task = (await rig.call("GET", f"/v1/tasks/{external_id}")).json()
            runs += [r for r in task["handler_runs"] if r["handler"].endswith(HUNG_HANDLERS)]
        if all(r["status"] in ("succeeded", "failed") for r in runs) or loop.time() > until:
            return runs
        await asyncio.sleep(0.5)


async def test_hung_handlers(chaos_report: ScenarioReport, tmp_path: Path) -> None:
    database = Database("sqlite", tmp_path)
    async with chaos_rig(chaos_report, tmp_path, database.url, LAYOUT) as rig:
        await rig.submit_over(TASKS, seconds=6.0, hang_every=HANG_EVERY)
        findings = await settle(rig, SETTLE_SECONDS)
        hung_runs = await finished_hung_runs(rig)
        chaos_report.faults["hung handler runs"] = len(hung_runs)
        unanswered = [
            (task.external_task_id, callback.state, callback.error)
            for task in rig.simulator.store.all()
            for callback in task.callbacks
            if callback.status_code is None
        ]
        assert not findings.problems, "\n".join(findings.problems[:30]) + rig.fleet.report()
        assert not unanswered, f"callbacks not answered in time: {unanswered}"
        # each hung run was timed out, then run again, and that run returned
        assert len(hung_runs) == 2 * len(rig.external_ids[::HANG_EVERY]), hung_runs
        assert all(r["status"] == "succeeded" and r["attempts"] >= 2 for r in hung_runs), hung_runs
