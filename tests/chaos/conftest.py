"""Chaos scenarios: each runs a real installation (``serve``/``worker`` subprocesses on SQLite or
PostgreSQL, the simulated provider, webhook sinks) through faults, then checks that nothing was
lost. Run them alone with ``pytest -m chaos -s`` to see each scenario's summary line; the lines
are also appended to ``chaos-summary.jsonl`` in pytest's base temporary directory.

Each test's random seed is fixed (derived from its name) and printed; ``OMNIHOOK_CHAOS_SEED``
replaces it, to explore other runs.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.chaos.database import Database
from tests.chaos.report import ScenarioReport
from tests.storage.postgres_db import drop_schema, needs_postgres

BACKENDS = [pytest.param("sqlite"), pytest.param("postgresql", marks=needs_postgres)]


@pytest.fixture
def chaos_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScenarioReport]:
    name = request.node.name.removeprefix("test_")
    chosen = os.environ.get("OMNIHOOK_CHAOS_SEED")
    seed = int(chosen) if chosen else zlib.crc32(name.encode())
    print(f"\nchaos[{name}] seed={seed} (OMNIHOOK_CHAOS_SEED={seed} repeats it)", flush=True)
    report = ScenarioReport(scenario=name, seed=seed)
    started = time.monotonic()
    yield report
    report.seconds = time.monotonic() - started
    if report.tasks or report.problems:  # skipped, or broken before its checks: nothing to say
        report.write(tmp_path_factory.getbasetemp())


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    made = Database(request.param, tmp_path)
    try:
        yield made
    finally:
        if made.schema is not None:
            await drop_schema(made.schema)


@pytest.fixture
async def postgres_database(tmp_path: Path) -> AsyncIterator[Database]:
    if not os.environ.get("OMNIHOOK_TEST_POSTGRES_URL"):
        pytest.skip("set OMNIHOOK_TEST_POSTGRES_URL to test PostgreSQL")
    made = Database("postgresql", tmp_path)
    try:
        yield made
    finally:
        assert made.schema is not None
        await drop_schema(made.schema)
