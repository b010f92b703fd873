"""A chaos monkey that SIGKILLs omnihook processes in the middle of a chosen stage of work, and
starts them again.

The stages, and how a process is caught in one:

- ``receive``: a ``serve`` process has a provider's callback in flight;
- ``apply``: an ``inbox`` job (a stored notification being applied) is running;
- ``download``: a process holds a connection to the media proxy;
- ``delivery``: a process holds a connection to the webhook sink's proxy;
- ``handler``: a process is inside a run of the healthy handler (its log has a start, no end).

When no process is caught in the stage chosen within a moment, a random one is killed instead
(counted as ``random``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from tests.chaos.database import Database
from tests.chaos.rig import Rig
from tests.storage.postgres_db import plain_url

STAGES = ("receive", "apply", "download", "delivery", "handler")


class JobsProbe:
    """Which kinds of jobs are running, read straight from the database."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conn: Any = None

    async def open(self) -> None:
        if self._database.schema is not None:
            import asyncpg

            settings = {"search_path": self._database.schema}
            self._conn = await asyncpg.connect(plain_url(), server_settings=settings)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def running(self) -> set[str]:
        query = "SELECT DISTINCT kind FROM jobs WHERE status = 'running'"
        if self._conn is not None:
            return {row["kind"] for row in await self._conn.fetch(query)}
        return await asyncio.to_thread(_sqlite_kinds, self._database.path, query)


def _sqlite_kinds(path: Path, query: str) -> set[str]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return {row[0] for row in conn.execute(query)}
        finally:
            conn.close()
    except sqlite3.Error:  # locked or being written: nothing seen this time
        return set()


class Monkey:
    def __init__(self, rig: Rig, jobs: JobsProbe) -> None:
        self.rig = rig
        self.jobs = jobs

    async def run(self, kills: int, pause: tuple[float, float]) -> None:
        rng = self.rig.rng
        stages = [STAGES[n % len(STAGES)] for n in range(kills)]
        rng.shuffle(stages)
        for stage in stages:
            await asyncio.sleep(rng.uniform(*pause))
            target = await self._caught_in(stage)
            if target is None:
                stage = "random"
                target = rng.choice(sorted(self.rig.fleet.roles))
            if self.rig.fleet.alive(target):
                self.rig.fleet.kill(target)
                self.rig.report.kills[stage] += 1
            await asyncio.sleep(rng.uniform(0.2, 0.8))  # down for a moment, then back
            self.rig.fleet.restart_dead()

    async def _caught_in(self, stage: str, patience: float = 3.0) -> str | None:
        loop = asyncio.get_running_loop()
        until = loop.time() + patience
        while loop.time() < until:
            found = await self._holders(stage)
            alive = sorted(name for name in found if self.rig.fleet.alive(name))
            if alive:
                return self.rig.rng.choice(alive)
            await asyncio.sleep(0.03)
        return None

    async def _holders(self, stage: str) -> list[str]:
        fleet, proxies = self.rig.fleet, self.rig.proxies
        if stage == "receive":
            serve = [role.name for role in fleet.roles.values() if role.url is not None]
            return [serve[index] for index in self.rig.callbacks.open_now.values()]
        if stage in ("download", "delivery"):
            proxy = proxies["media" if stage == "download" else "sink"]
            return fleet.holder_of(set(proxy.open_now), proxy.port)
        if stage == "apply":
            if "inbox" in await self.jobs.running():
                return [role.name for role in fleet.roles.values() if role.runs_jobs]
            return []
        return self._in_handler()

    def _in_handler(self) -> list[str]:
        by_pid = {process.pid: name for name, process in self.rig.fleet.current.items()}
        holders = []
        for log in self.rig.handler_logs.glob("*.log"):
            pid = int(log.stem)
            if pid not in by_pid:
                continue
            words = [line.split()[:2] for line in log.read_text().splitlines()]
            started = {w[1] for w in words if len(w) == 2 and w[0] == "start"}
            done = {w[1] for w in words if len(w) == 2 and w[0] == "done"}
            if started - done:
                holders.append(by_pid[pid])
        return holders
