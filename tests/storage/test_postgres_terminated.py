"""PostgreSQL backends of a storage terminated under it (``pg_terminate_backend``), as a failover,
a restart or an idle-connection reaper does: between operations, while one waits in a
transaction, and again and again under load. Only the test's own backends are terminated: its
URL gives them an ``application_name`` of their own, found in ``pg_stat_activity``.

What must hold: a call either succeeds or raises StorageUnavailable (never a driver's
exception); a write interrupted before its COMMIT runs again on a fresh connection and lands
exactly once; the listener wakes workers again after its connection was killed.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from service.errors import StorageError, StorageUnavailable
from storage import create_storage
from storage.base import Storage
from storage.postgres.pool import RETRY_DELAYS
from storage.postgres.schema import parse_url
from storage.records import TaskChange, TaskRecord
from tests.factories import at, make_event, make_job, make_notification, make_task
from tests.storage.postgres_db import fresh_schema, needs_postgres, plain_url, with_application_name

pytestmark = needs_postgres

DEADLINE = 10.0  # seconds for what the server does at once (a backend to go, one to wait)


class Backends:
    """The backends of one application_name, and their termination."""

    def __init__(self, admin: Any, name: str) -> None:
        self.admin = admin
        self.name = name

    async def pids(self, condition: str = "true") -> set[int]:
        rows = await self.admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
            f"AND pid <> pg_backend_pid() AND {condition}",
            self.name,
        )
        return {int(row["pid"]) for row in rows}

    async def terminate(self, pids: set[int] | None = None) -> int:
        """Terminate ``pids`` (default: all of them); answers how many went, once gone."""
        chosen = await self.pids() if pids is None else pids
        killed = {
            p for p in chosen if await self.admin.fetchval("SELECT pg_terminate_backend($1)", p)
        }
        await self._until(lambda: self._none_of(killed), f"backends {killed} to go")
        return len(killed)

    async def waiting_on_a_lock(self, *, other_than: set[int]) -> int:
        """A backend, none of ``other_than``, that waits for a row lock (a write under way)."""
        found: set[int] = set()

        async def one() -> bool:
            found.update(await self.pids("wait_event_type = 'Lock'") - other_than)
            return bool(found)

        await self._until(one, "a backend waiting on the lock")
        return found.pop()

    async def committing(self) -> int:
        """A backend of ours inside its COMMIT (a deferred trigger sleeping there)."""
        found: set[int] = set()

        async def one() -> bool:
            found.update(await self.pids("query = 'COMMIT' AND wait_event = 'PgSleep'"))
            return bool(found)

        await self._until(one, "a backend committing")
        return found.pop()

    async def listening(self, *, other_than: set[int]) -> int:
        found: set[int] = set()

        async def one() -> bool:
            found.update(await self.pids("query LIKE 'LISTEN %'") - other_than)
            return bool(found)

        await self._until(one, "a listening backend")
        return found.pop()

    async def _none_of(self, pids: set[int]) -> bool:
        return not pids & await self.pids()

    async def _until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not await check():
            assert loop.time() < deadline, f"no {what} within {DEADLINE} s"
            await asyncio.sleep(0.01)


@dataclass
class Target:
    url: str  # the storage's: its own schema and application_name
    schema: str
    backends: Backends


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    import asyncpg

    async with fresh_schema() as url:
        admin = await asyncpg.connect(plain_url())
        try:
            name = f"omnihook_test_{secrets.token_hex(6)}"
            schema = parse_url(url).schema
            assert schema is not None
            yield Target(with_application_name(url, name), schema, Backends(admin, name))
        finally:
            await admin.close()


@pytest.fixture
async def store(target: Target) -> AsyncIterator[Storage]:
    opened = create_storage(target.url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def task(store: Storage) -> TaskRecord:
    made = make_task()
    await store.create_task(made)
    return made


def inbox_job(notification_id: str, task_id: str) -> Any:
    return make_job(
        task_id=task_id,
        kind="inbox",
        payload={"notification_id": notification_id},
        dedupe_key=f"inbox:{notification_id}",
    )


async def test_the_connections_carry_the_urls_application_name(
    store: Storage, target: Target
) -> None:
    await store.ping()
    await store.wait_for_jobs(0)  # the listening connection too
    assert len(await target.backends.pids()) >= 2


async def test_connections_terminated_between_operations_are_replaced_unnoticed(
    store: Storage, target: Target, task: TaskRecord
) -> None:
    for _ in range(5):
        await store.wait_for_jobs(0)
        assert await target.backends.terminate() >= 1
        # every call succeeds: on a connection found dead, it runs again on a fresh one
        await store.ping()
        found = await store.get_task(task.id)
        assert found is not None and found.id == task.id
        notification = make_notification(task.id)
        await store.record_notification(notification, inbox_job(notification.id, task.id))
        [job] = await store.lease_jobs(now=at(1), lease_seconds=30, limit=5, kinds=["inbox"])
        assert await store.complete_job(job.id, job.lease_token, now=at(2))
    assert len(await store.list_notifications(task.id)) == 5


async def _lock_the_task(target: Target, task: TaskRecord) -> Any:
    """Another session holding the task's row: the storage's next write to it waits, inside
    its transaction, before its COMMIT."""
    import asyncpg

    holder = await asyncpg.connect(plain_url())
    await holder.execute("BEGIN")
    await holder.execute(f'SELECT 1 FROM "{target.schema}".tasks WHERE id = $1 FOR UPDATE', task.id)
    return holder


def _writes(store: Storage, task: TaskRecord) -> dict[str, Callable[[], Awaitable[object]]]:
    """Writes that wait on the task's row lock (apply's UPDATE, the FK check of an insert)."""
    notification = make_notification(task.id)

    async def apply() -> object:
        change = TaskChange(task, events=[make_event(task.id)], jobs=[make_job(task_id=task.id)])
        return await store.apply(change)

    async def record_notification() -> object:
        await store.record_notification(notification, inbox_job(notification.id, task.id))
        return notification.id

    return {"apply": apply, "record_notification": record_notification}


async def _landed(store: Storage, task: TaskRecord, write: str) -> int:
    """How many times the write landed: events of the task, or its inbox jobs."""
    if write == "apply":
        return len(await store.list_events(task.id))
    return len(await store.list_jobs(task_id=task.id, kind="inbox"))


@pytest.mark.parametrize("write", ["apply", "record_notification"])
async def test_a_write_whose_connection_is_lost_before_commit_runs_again_and_lands_once(
    store: Storage, target: Target, task: TaskRecord, write: str
) -> None:
    version = task.version  # apply moves the record's own on
    holder = await _lock_the_task(target, task)
    try:
        running = asyncio.ensure_future(_writes(store, task)[write]())
        seen: set[int] = set()
        for _ in range(len(RETRY_DELAYS)):  # each run but the last loses its connection
            pid = await target.backends.waiting_on_a_lock(other_than=seen)
            seen.add(pid)
            assert await target.backends.terminate({pid}) == 1
            assert not running.done()
        await target.backends.waiting_on_a_lock(other_than=seen)  # the last run waits too
        await holder.execute("ROLLBACK")
        outcome = await asyncio.wait_for(running, DEADLINE)
    finally:
        await holder.close()

    assert outcome is True if write == "apply" else outcome is not None
    assert await _landed(store, task, write) == 1
    found = await store.get_task(task.id)
    assert found is not None
    assert found.version == version + (1 if write == "apply" else 0)


@pytest.mark.parametrize("write", ["apply", "record_notification"])
async def test_a_write_that_loses_its_connection_at_every_run_is_unavailable_and_undone(
    store: Storage, target: Target, task: TaskRecord, write: str
) -> None:
    version = task.version  # apply moves the record's own on
    holder = await _lock_the_task(target, task)
    try:
        running = asyncio.ensure_future(_writes(store, task)[write]())
        seen: set[int] = set()
        for _ in range(len(RETRY_DELAYS) + 1):
            pid = await target.backends.waiting_on_a_lock(other_than=seen)
            seen.add(pid)
            await target.backends.terminate({pid})
        with pytest.raises(StorageUnavailable, match="connection lost"):
            await asyncio.wait_for(running, DEADLINE)
    finally:
        await holder.close()

    assert await _landed(store, task, write) == 0
    found = await store.get_task(task.id)
    assert found is not None and found.version == version


@dataclass
class Tally:
    outcomes: Counter[str]

    async def call(self, name: str, call: Awaitable[object]) -> object:
        """The call's result, or None after a storage error (counted); any other exception
        fails the test."""
        try:
            result = await call
        except StorageUnavailable:
            self.outcomes[f"{name}: unavailable"] += 1
            return None
        except StorageError as exc:  # translated, but not what a lost connection should be
            self.outcomes[f"{name}: StorageError {exc}"] += 1
            return None
        self.outcomes[f"{name}: ok"] += 1
        return result


async def _done(call: Awaitable[None]) -> bool:
    await call
    return True


async def test_calls_under_terminations_again_and_again_succeed_or_are_unavailable(
    store: Storage, target: Target, task: TaskRecord
) -> None:
    rng = random.Random(12)
    tally = Tally(Counter())
    stop = asyncio.Event()
    recorded: list[str] = []  # notifications whose call succeeded
    tried: list[str] = []

    async def applies() -> None:
        while not stop.is_set():
            current = await tally.call("get_task", store.get_task(task.id))
            if isinstance(current, TaskRecord):
                await tally.call(
                    "apply", store.apply(TaskChange(current, events=[make_event(task.id)]))
                )

    async def callbacks() -> None:
        while not stop.is_set():
            notification = make_notification(task.id)
            tried.append(notification.id)
            job = inbox_job(notification.id, task.id)
            if await tally.call("record", _done(store.record_notification(notification, job))):
                recorded.append(notification.id)

    async def jobs() -> None:
        while not stop.is_set():
            await tally.call("enqueue", store.enqueue([make_job(task_id=task.id)]))
            leased = await tally.call(
                "lease", store.lease_jobs(now=at(1), lease_seconds=30, limit=2, kinds=["test.job"])
            )
            for job in leased if isinstance(leased, list) else []:
                await tally.call(
                    "renew", store.renew_lease(job.id, job.lease_token, now=at(2), lease_seconds=30)
                )
                await tally.call("complete", store.complete_job(job.id, job.lease_token, now=at(3)))
            await tally.call("ping", store.ping())

    async def waits() -> None:
        while not stop.is_set():
            await store.wait_for_jobs(0.05)  # never raises, whatever happens to its connection

    async def terminations() -> int:
        killed = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 4.0
        while loop.time() < until:
            await asyncio.sleep(rng.uniform(0.02, 0.12))
            killed += await target.backends.terminate()
        stop.set()
        return killed

    start = await store.get_task(task.id)
    assert start is not None
    killed, *_ = await asyncio.gather(terminations(), applies(), callbacks(), jobs(), waits())

    foreign = {k: n for k, n in tally.outcomes.items() if "StorageError" in k}
    assert not foreign, f"errors other than StorageUnavailable: {foreign}"
    outcomes = tally.outcomes
    assert killed >= 10
    assert outcomes["apply: ok"] >= 5 and outcomes["record: ok"] >= 5, outcomes

    # afterwards, everything works at once, and each write landed at most once
    await store.ping()
    final = await store.get_task(task.id)
    assert final is not None
    landed = final.version - start.version
    assert outcomes["apply: ok"] <= landed <= outcomes["apply: ok"] + outcomes["apply: unavailable"]
    assert len(await store.list_events(task.id)) == landed  # its one event with each apply
    stored = {n.id for n in await store.list_notifications(task.id)}
    assert set(recorded) <= stored <= set(tried)
    inbox = await store.list_jobs(task_id=task.id, kind="inbox")
    assert sorted(job.payload["notification_id"] for job in inbox) == sorted(stored)


async def test_the_listener_wakes_workers_after_its_connection_was_killed_again_and_again(
    store: Storage, target: Target
) -> None:
    other = create_storage(target.url)  # another process enqueuing
    await other.open()
    try:
        await store.wait_for_jobs(0)  # listening from now on
        seen: set[int] = set()
        for _ in range(3):
            pid = await target.backends.listening(other_than=seen)
            seen.add(pid)
            assert await target.backends.terminate({pid}) == 1
            await target.backends.listening(other_than=seen)  # listening again
            while True:  # the wake-ups of the loss and of listening again
                waiter = asyncio.create_task(store.wait_for_jobs(0.3))
                await asyncio.sleep(0.2)
                if not waiter.done():
                    break
            await waiter
            waiter = asyncio.create_task(store.wait_for_jobs(DEADLINE))
            await asyncio.sleep(0.3)
            assert not waiter.done()  # nothing to wake it yet
            started = asyncio.get_running_loop().time()
            await other.enqueue([make_job()])
            await asyncio.wait_for(waiter, DEADLINE)
            assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        await other.close()


async def _slow_first_commit(target: Target) -> None:
    """The next COMMIT that writes a task or a notification takes 30 s (a deferred trigger;
    later ones are quick: a sequence counts them, outside any transaction)."""
    schema = f'"{target.schema}"'
    admin = target.backends.admin
    await admin.execute(f"CREATE SEQUENCE {schema}.commits")
    await admin.execute(
        f"CREATE FUNCTION {schema}.slow_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF nextval('{schema}.commits') = 1 THEN PERFORM pg_sleep(30); END IF; "
        "RETURN NULL; END $$"
    )
    for table in ("tasks", "notifications"):
        await admin.execute(
            f"CREATE CONSTRAINT TRIGGER slow_first_commit AFTER INSERT OR UPDATE ON "
            f"{schema}.{table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            f"EXECUTE FUNCTION {schema}.slow_first_commit()"
        )


@pytest.mark.parametrize("write", ["apply", "record_notification"])
async def test_a_connection_lost_during_commit_is_retried_only_when_that_is_safe(
    store: Storage, target: Target, task: TaskRecord, write: str
) -> None:
    version = task.version
    await _slow_first_commit(target)
    running = asyncio.ensure_future(_writes(store, task)[write]())
    committing = await target.backends.committing()
    assert await target.backends.terminate({committing}) == 1  # the COMMIT's outcome: unknown

    if write == "apply":  # a compare-and-set: a second run would answer "changed meanwhile"
        with pytest.raises(StorageUnavailable, match="outcome is unknown"):
            await asyncio.wait_for(running, DEADLINE)
        expected = 0
    else:  # new rows: it looks for them on a fresh connection, finds none, inserts them
        assert await asyncio.wait_for(running, DEADLINE) is not None
        expected = 1
    assert await _landed(store, task, write) == expected
    found = await store.get_task(task.id)
    assert found is not None and found.version == version
