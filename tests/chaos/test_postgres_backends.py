"""PostgreSQL backends of the installation terminated again and again while callbacks flow, as a
failover, a restart or an idle-connection reaper does. Only this test's own connections are
terminated: they are found in ``pg_stat_activity`` by the ``application_name`` its database URL
gives them. Callbacks may be refused (503) while a connection is gone, never answered 500, and
the worker must outlive every termination."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.database import Database
from tests.chaos.invariants import settle
from tests.chaos.report import ScenarioReport
from tests.chaos.rig import Layout, Rig, chaos_rig
from tests.storage.postgres_db import plain_url

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TASKS = 14
SUBMIT_SECONDS = 10.0
TERMINATE_SECONDS = 12.0
SETTLE_SECONDS = 60.0

LAYOUT = Layout(serve=[True], workers=1)


async def own_backends(conn: Any, database: Database) -> list[int]:
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
        database.application_name,
    )
    return [int(row["pid"]) for row in rows]


async def terminate_repeatedly(rig: Rig, conn: Any, database: Database) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + TERMINATE_SECONDS
    while loop.time() < until:
        await asyncio.sleep(rig.rng.uniform(0.5, 1.5))
        pids = await own_backends(conn, database)
        chosen = rig.rng.sample(pids, k=max(1, len(pids) // 2)) if pids else []
        for pid in chosen:
            if await conn.fetchval("SELECT pg_terminate_backend($1)", pid):
                rig.report.faults["postgres backend terminated"] += 1


async def test_postgres_backends_terminated(
    chaos_report: ScenarioReport, postgres_database: Database, tmp_path: Path
) -> None:
    import asyncpg

    database = postgres_database
    async with chaos_rig(chaos_report, tmp_path, database.url, LAYOUT) as rig:
        conn = await asyncpg.connect(plain_url())
        try:
            if not await own_backends(conn, database):
                pytest.skip(
                    "the service's PostgreSQL connections do not carry the application_name"
                    " of the database URL: this test cannot tell its own backends apart"
                )
            submitting = asyncio.create_task(rig.submit_over(TASKS, SUBMIT_SECONDS))
            try:
                await terminate_repeatedly(rig, conn, database)
                await submitting
            finally:
                submitting.cancel()
        finally:
            await conn.close()
        findings = await settle(rig, SETTLE_SECONDS)
        stopped = [name for name in rig.fleet.roles if not rig.fleet.alive(name)]
        assert chaos_report.faults["postgres backend terminated"] > 0
        assert not findings.problems, "\n".join(findings.problems[:30]) + rig.fleet.report()
        assert not stopped, f"{stopped} died\n{rig.fleet.report()}"
