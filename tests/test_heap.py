"""``serve`` leaves what exists once it has started out of garbage collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.app import create_app
from service.heap import freeze_startup_heap
from service.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process must not keep every test's objects forever


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        isolated=True,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        media_dir=tmp_path / "media",
        kling_api_key="k",
    )


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_freezing_frees_startup_garbage_rather_than_keeping_it_forever() -> None:
    node = _Node()
    gone = weakref.ref(node)
    del node
    freeze_startup_heap()
    assert gc.get_freeze_count() > 0
    assert gone() is None


async def test_serves_app_freezes_once_started(settings: Settings) -> None:
    app = create_app(settings, freeze_heap=True)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0


async def test_other_apps_leave_the_heap_alone(settings: Settings) -> None:
    app = create_app(settings)  # tests and embedders: many apps in one process
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
