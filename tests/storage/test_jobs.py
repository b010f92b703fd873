"""Durable jobs: enqueue, lease, fencing, retry/fail/requeue, next_job_due."""

from __future__ import annotations

import asyncio

from storage.base import Storage
from storage.records import JobRecord, JobStatus
from tests.factories import at, make_job, make_task

LEASE = 30.0


async def _lease_one(storage: Storage, now_s: float = 100) -> JobRecord:
    leased = await storage.lease_jobs(now=at(now_s), lease_seconds=LEASE, limit=1)
    assert len(leased) == 1
    return leased[0]


async def test_enqueue_skips_a_taken_dedupe_key(storage: Storage) -> None:
    first = make_job(dedupe_key="k", payload={"n": 1})
    await storage.enqueue([first, make_job(dedupe_key="k"), make_job()])
    await storage.enqueue([make_job(dedupe_key="k", payload={"n": 2})])

    assert await storage.get_job(first.id) == first
    leased = await storage.lease_jobs(now=at(0), lease_seconds=LEASE, limit=10)
    assert len(leased) == 2


async def test_lease_takes_due_jobs_oldest_run_at_first(storage: Storage) -> None:
    late = make_job(run_at=at(30))
    early = make_job(run_at=at(10))
    future = make_job(run_at=at(1000))
    await storage.enqueue([late, early, future])

    leased = await storage.lease_jobs(now=at(100), lease_seconds=LEASE, limit=10)

    assert [j.id for j in leased] == [early.id, late.id]
    for job in leased:
        assert job.status == JobStatus.RUNNING
        assert job.attempts == 1
        assert job.lease_token == 1
        assert job.lease_expires_at == at(100 + LEASE)
        assert job.updated_at == at(100)
        assert await storage.get_job(job.id) == job
    future_now = await storage.get_job(future.id)
    assert future_now is not None and future_now.status == JobStatus.QUEUED


async def test_lease_is_due_at_exactly_run_at_and_respects_limit(storage: Storage) -> None:
    jobs = [make_job(run_at=at(5)) for _ in range(3)]
    await storage.enqueue(jobs)

    assert await storage.lease_jobs(now=at(4), lease_seconds=LEASE, limit=10) == []
    first = await storage.lease_jobs(now=at(5), lease_seconds=LEASE, limit=2)
    assert [j.id for j in first] == [jobs[0].id, jobs[1].id]  # same run_at: insertion order
    assert await storage.lease_jobs(now=at(5), lease_seconds=LEASE, limit=0) == []


async def test_lease_filters_by_kind(storage: Storage) -> None:
    inbox = make_job(kind="inbox")
    download = make_job(kind="download")
    await storage.enqueue([inbox, download])

    assert await storage.lease_jobs(now=at(1), lease_seconds=LEASE, limit=9, kinds=[]) == []
    got = await storage.lease_jobs(now=at(1), lease_seconds=LEASE, limit=9, kinds={"download"})
    assert [j.id for j in got] == [download.id]
    got = await storage.lease_jobs(now=at(1), lease_seconds=LEASE, limit=9, kinds=("inbox", "x"))
    assert [j.id for j in got] == [inbox.id]


async def test_an_expired_lease_is_leased_again_with_a_new_token(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    first = await _lease_one(storage, 100)

    assert await storage.lease_jobs(now=at(100 + LEASE - 1), lease_seconds=LEASE, limit=5) == []
    second = await _lease_one(storage, 100 + LEASE)

    assert second.id == first.id
    assert second.attempts == 2
    assert second.lease_token == first.lease_token + 1
    assert second.lease_expires_at == at(100 + 2 * LEASE)


async def test_expired_leases_and_queued_jobs_are_leased_together_oldest_first(
    storage: Storage,
) -> None:
    abandoned = make_job(run_at=at(10), kind="inbox")  # its worker dies holding it
    await storage.enqueue([abandoned])
    await _lease_one(storage, 10)
    earlier = make_job(run_at=at(5), kind="inbox")
    later = make_job(run_at=at(20), kind="inbox")
    other_kind = make_job(run_at=at(1), kind="download")
    await storage.enqueue([later, earlier, other_kind])

    now = at(10 + LEASE)  # the lease has expired
    first = await storage.lease_jobs(now=now, lease_seconds=LEASE, limit=2, kinds={"inbox"})
    assert [j.id for j in first] == [earlier.id, abandoned.id]
    rest = await storage.lease_jobs(now=now, lease_seconds=LEASE, limit=5, kinds={"inbox"})
    assert [j.id for j in rest] == [later.id]


async def test_a_stale_token_can_do_nothing(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    old = await _lease_one(storage, 100)
    new = await _lease_one(storage, 200)  # the first worker died; its lease expired
    now = at(201)

    assert not await storage.complete_job(old.id, old.lease_token, now=now)
    assert not await storage.retry_job(old.id, old.lease_token, now=now, run_at=now, error="x")
    assert not await storage.fail_job(old.id, old.lease_token, now=now, error="x")
    assert not await storage.renew_lease(old.id, old.lease_token, now=now, lease_seconds=LEASE)
    assert await storage.get_job(new.id) == new  # untouched

    assert await storage.complete_job(new.id, new.lease_token, now=now)


async def test_complete(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    job = await _lease_one(storage)

    assert await storage.complete_job(job.id, job.lease_token, now=at(101))
    done = await storage.get_job(job.id)
    assert done is not None
    assert (done.status, done.lease_expires_at, done.updated_at) == (
        JobStatus.SUCCEEDED,
        None,
        at(101),
    )
    assert not await storage.complete_job(job.id, job.lease_token, now=at(102))  # finished
    assert not await storage.renew_lease(job.id, job.lease_token, now=at(102), lease_seconds=1)
    assert await storage.lease_jobs(now=at(10_000), lease_seconds=LEASE, limit=5) == []


async def test_renew_extends_the_lease(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    job = await _lease_one(storage, 100)

    assert await storage.renew_lease(job.id, job.lease_token, now=at(120), lease_seconds=LEASE)
    # the old expiry has passed, the renewed one has not
    assert await storage.lease_jobs(now=at(100 + LEASE), lease_seconds=LEASE, limit=5) == []
    assert len(await storage.lease_jobs(now=at(120 + LEASE), lease_seconds=LEASE, limit=5)) == 1


async def test_retry_queues_again_later_with_the_error(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    job = await _lease_one(storage, 100)

    assert await storage.retry_job(job.id, job.lease_token, now=at(101), run_at=at(160), error="e")
    queued = await storage.get_job(job.id)
    assert queued is not None
    assert (queued.status, queued.run_at, queued.last_error) == (JobStatus.QUEUED, at(160), "e")
    assert queued.lease_expires_at is None
    assert not await storage.complete_job(job.id, job.lease_token, now=at(102))

    assert await storage.lease_jobs(now=at(159), lease_seconds=LEASE, limit=5) == []
    again = await _lease_one(storage, 160)
    assert (again.attempts, again.lease_token) == (2, job.lease_token + 1)


async def test_fail_then_requeue(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    job = await _lease_one(storage, 100)
    assert not await storage.requeue_job(job.id, now=at(101))  # running

    assert await storage.fail_job(job.id, job.lease_token, now=at(101), error="boom")
    failed = await storage.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.last_error) == (JobStatus.FAILED, "boom")
    assert await storage.lease_jobs(now=at(10_000), lease_seconds=LEASE, limit=5) == []

    assert await storage.requeue_job(job.id, now=at(500))
    requeued = await storage.get_job(job.id)
    assert requeued is not None
    assert (requeued.status, requeued.run_at, requeued.attempts) == (JobStatus.QUEUED, at(500), 0)
    assert not await storage.requeue_job(job.id, now=at(501))  # queued
    again = await _lease_one(storage, 500)
    assert again.lease_token == job.lease_token + 1  # tokens never go back
    assert again.attempts == 1


async def test_requeue_succeeded_and_missing(storage: Storage) -> None:
    await storage.enqueue([make_job()])
    job = await _lease_one(storage)
    assert await storage.complete_job(job.id, job.lease_token, now=at(101))

    assert await storage.requeue_job(job.id, now=at(200))
    assert not await storage.requeue_job("job_missing", now=at(200))


async def test_list_jobs_by_task_and_kind_oldest_first(storage: Storage) -> None:
    task = make_task()
    await storage.create_task(task)
    second = make_job(task_id=task.id, kind="download", created_at=at(2))
    first = make_job(task_id=task.id, kind="poll", created_at=at(1))
    third = make_job(task_id=task.id, kind="download", created_at=at(3))
    await storage.enqueue([second, first, third, make_job()])

    assert [j.id for j in await storage.list_jobs(task_id=task.id)] == [
        first.id,
        second.id,
        third.id,
    ]
    got = await storage.list_jobs(task_id=task.id, kind="download")
    assert [j.id for j in got] == [second.id, third.id]


async def test_next_job_due(storage: Storage) -> None:
    assert await storage.next_job_due() is None
    await storage.enqueue([make_job(run_at=at(50)), make_job(run_at=at(80))])
    assert await storage.next_job_due() == at(50)

    job = await _lease_one(storage, 60)  # leased until 90: the other one (80) is next
    assert await storage.next_job_due() == at(80)
    await _lease_one(storage, 80)  # leased until 110: the first lease's expiry is next
    assert await storage.next_job_due() == at(60 + LEASE)

    assert await storage.complete_job(job.id, job.lease_token, now=at(61))
    assert await storage.next_job_due() == at(80 + LEASE)


async def test_concurrent_leases_never_share_a_job(storage: Storage) -> None:
    await storage.enqueue([make_job(run_at=at(i % 7)) for i in range(60)])

    batches = await asyncio.gather(
        *(storage.lease_jobs(now=at(10), lease_seconds=LEASE, limit=4) for _ in range(20))
    )

    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 60
