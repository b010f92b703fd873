"""Property: whatever the provider sends, in whatever order, however often, the story of a task
stays consistent.

Random sequences of notifications (duplicated, reordered, conflicting, signed or not, about
another task), answers of our own queries, and the deadline, are applied through
``Services.change_task`` on the memory backend exactly as the inbox and sync jobs apply them.
After every step: the status never moved backwards, a final state was never left, each event
was emitted once and in story order, and no video URL came from an unsigned notification.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.apply.lifecycle import FINAL, RANK, plan_provider_state, plan_timed_out
from service.bootstrap import open_services
from service.kling.state import ProviderStatus, ProviderTaskState, ProviderVideo
from service.services import Services
from service.settings import load_settings
from storage.memory.backend import MemoryStorage
from storage.records import TaskRecord, TaskStatus
from tests.factories import at, make_task
from tests.receiver_support import registry

GOOD_URL = "https://cdn.provider.example/{n}.mp4"
EVIL_URL = "https://attacker.example/{n}.mp4"
STORY = [
    "task.submitted",
    "task.processing",
    "task.succeeded",
    "task.completed",
    "task.timed_out",
    "task.failed",
]


@dataclass(frozen=True)
class News:
    kind: str  # "notify" (signed or not), "query" (our own, confirmed) or "deadline"
    status: ProviderStatus = ProviderStatus.PROCESSING
    signed: bool = False
    other_task: bool = False
    videos: int = 1


statuses = st.sampled_from(list(ProviderStatus))
news = st.one_of(
    st.builds(
        News,
        kind=st.just("notify"),
        status=statuses,
        signed=st.booleans(),
        other_task=st.booleans(),
        videos=st.integers(0, 2),
    ),
    st.builds(News, kind=st.just("query"), status=statuses, videos=st.integers(0, 2)),
    st.just(News(kind="deadline")),
)


def provider_state(item: News, step: int) -> ProviderTaskState:
    trusted = item.kind == "query" or item.signed
    template = GOOD_URL if trusted else EVIL_URL
    videos = tuple(
        ProviderVideo(index=i, provider_video_id=f"v{i}", url=template.format(n=f"{step}-{i}"))
        for i in range(item.videos if item.status == ProviderStatus.SUCCEEDED else 0)
    )
    return ProviderTaskState(
        task_id="kt-other" if item.other_task else "kt-1",
        status=item.status,
        status_message="because" if item.status == ProviderStatus.FAILED else "",
        videos=videos,
    )


async def apply(services: Services, task_id: str, item: News, step: int) -> None:
    now = at(step)
    if item.kind == "deadline":
        await services.change_task(
            task_id,
            lambda t, v: plan_timed_out(
                t, v, deadline=timedelta(hours=1), now=now, emitter=services.emitter
            ),
        )
        return
    state = provider_state(item, step)
    await services.change_task(
        task_id,
        lambda t, v: plan_provider_state(
            t,
            v,
            state,
            now=now,
            emitter=services.emitter,
            confirmed=item.kind == "query",
            needs_confirmation=item.kind == "notify" and not item.signed,
        ),
    )


async def check(services: Services, start: TaskStatus, before: TaskRecord) -> TaskRecord:
    after = await services.storage.get_task(before.id)
    assert after is not None
    assert RANK[after.status] >= RANK[before.status], "moved backwards"
    if before.status in FINAL:
        assert (after.status, after.status_message) == (before.status, before.status_message)
    types = [e.type for e in await services.storage.list_events(before.id)]
    assert len(types) == len(set(types)), f"an event twice: {types}"
    assert types == sorted(types, key=STORY.index), f"out of story order: {types}"
    # each state reached is announced, and only those
    status = after.status
    assert ("task.submitted" in types) == (start == TaskStatus.PENDING != status)
    if status in (TaskStatus.PROCESSING, TaskStatus.SUCCEEDED):
        assert "task.processing" in types
    assert ("task.succeeded" in types) == (status == TaskStatus.SUCCEEDED)
    assert ("task.failed" in types) == (status == TaskStatus.FAILED)
    assert "task.timed_out" not in types or status == TaskStatus.FAILED
    for video in await services.storage.list_videos(before.id):
        assert not video.url.startswith("https://attacker."), "an unsigned URL was used"
    return after


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[asyncio.Runner, Services]]:
    """One event loop and one set of services for every example (a fresh task each)."""
    with asyncio.Runner() as runner, tempfile.TemporaryDirectory() as tmp:
        settings_ = load_settings(
            database_url="memory://", media_dir=Path(tmp) / "media", kling_api_key="k"
        )
        opened = open_services(
            settings_,
            storage=MemoryStorage(),
            registry=registry(),
            transport=httpx.MockTransport(lambda request: httpx.Response(500)),
        )
        services = runner.run(opened.__aenter__())
        try:
            yield runner, services
        finally:
            runner.run(opened.__aexit__(None, None, None))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.sampled_from([TaskStatus.PENDING, TaskStatus.SUBMITTED]),
    sequence=st.lists(news, min_size=1, max_size=12).flatmap(
        # duplicates and reorderings of the same news, on top of random news
        lambda items: st.permutations(items + items[: len(items) // 2])
    ),
)
def test_any_sequence_of_news_tells_one_consistent_story(
    world: tuple[asyncio.Runner, Services], start: TaskStatus, sequence: list[News]
) -> None:
    runner, services = world

    async def scenario() -> None:
        task = make_task(status=start, provider_task_id="kt-1")
        await services.storage.create_task(task)
        current = task
        for step, item in enumerate(sequence, start=1):
            await apply(services, task.id, item, step)
            current = await check(services, start, current)
        await services.storage.delete_task(task.id)

    runner.run(scenario())
