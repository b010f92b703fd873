"""The simulated provider itself, independent of any wire shape.

:class:`Simulator` accepts tasks, refuses them the way Kling does, owns the background
coroutines that move tasks along and send callbacks, and cancels them all when it stops.
Profiles (:mod:`service.fake_kling.profiles`) put an API shape in front of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx

from .callbacks import USER_AGENT, CallbackSender, CallbackStyle, RetryPolicy
from .config import FakeKlingConfig
from .errors import KlingError, invalid
from .media import MediaLibrary
from .progression import TaskRun
from .scenario import ScenarioError, parse_scenario
from .store import SimTask, SimVideo, TaskStore, media_url, new_numeric_id
from .submission import CreateRequest

logger = logging.getLogger(__name__)


class Simulator:
    """Tasks, media and callbacks of one simulated Kling account."""

    def __init__(
        self, config: FakeKlingConfig, *, callbacks: CallbackStyle, media: MediaLibrary
    ) -> None:
        self.config = config
        self.store = TaskStore()
        self.media = media
        self._callbacks = callbacks
        self._sender: CallbackSender | None = None
        self._background: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the callback client; on exit cancel every task run and close the client."""
        async with httpx.AsyncClient(
            timeout=self.config.callback_timeout,
            follow_redirects=False,
            trust_env=False,  # callbacks go where they are told, never through a proxy
            headers={"User-Agent": USER_AGENT},
        ) as client:
            style, config = self._callbacks, self.config
            self._sender = CallbackSender(
                client,
                config.webhook_secret if style.signed else None,
                retry=RetryPolicy(config.callback_retry_window, config.callback_retry_delay)
                if style.retry_until_ok
                else None,
            )
            try:
                yield
            finally:
                self._sender = None
                await self._cancel_background()

    async def create(
        self, request: CreateRequest, *, base_url: str, gateway_id: str | None = None
    ) -> SimTask:
        """Accept a task (and start its run) or raise :class:`KlingError`. ``gateway_id`` is
        the id a gateway hands out in place of Kling's."""
        if self._sender is None:
            raise KlingError(5001, "simulator is not running (was the app's lifespan started?)")
        try:
            scenario = parse_scenario(request.prompts)
        except ScenarioError as exc:
            raise invalid("prompt", str(exc)) from None
        for flag in sorted(scenario.asks_for() & self._callbacks.unsupported.keys()):
            why = self._callbacks.unsupported[flag]
            raise invalid(
                "prompt",
                f"[sim:{flag}] has no meaning for the {self.config.profile} profile: {why}",
            )
        if scenario.reject_code is not None:
            raise KlingError(scenario.reject_code)
        external_id = request.external_task_id
        if external_id is not None and self.store.has_external_id(external_id):
            raise invalid("external_task_id", f"{external_id} already exists")
        limit = self.config.max_concurrent
        if limit is not None and self.store.running_count() >= limit:
            self.store.refused_full += 1
            raise KlingError(1303)

        task = SimTask(
            task_id=new_numeric_id(),
            model_name=request.model_name,
            scenario=scenario,
            base_url=base_url.rstrip("/"),
            external_task_id=external_id,
            gateway_id=gateway_id,
            callback_url=request.callback_url,
            requested_duration=request.duration,
            mode=request.mode,
            watermark=request.watermark and self._callbacks.watermarks,
        )
        self.store.add(task)
        run = TaskRun(
            task,
            step_seconds=self.config.step_seconds,
            sender=self._sender,
            render=self._callbacks.render,
            media=self.media,
        )
        if scenario.early:
            await run.announce_submitted_now()
        self._spawn(run.advance(), task)
        self._spawn(run.deliver(), task)
        logger.info(
            "task %s created (external id %s)",
            task.task_id,
            external_id,
            extra={"action": "fake_kling.task.created"},
        )
        return task

    # Every lookup is a query of the task: it hands out fresh URLs for the files whose URL was
    # refused as expired ([sim:media=expire]).

    def get(self, ref: str) -> SimTask:
        """A task by its id, or by its external id unless ``[sim:lookup]`` hides it there."""
        task = self.store.find(ref)
        if task is None or (task.task_id != ref and task.scenario.lookup != "path"):
            raise KlingError(1203, f"task {ref} does not exist")
        return self._queried(task)

    def get_by_query(self, external_task_id: str) -> SimTask:
        """A task by ``?external_task_id=``, unless ``[sim:lookup]`` hides it there."""
        task = self.store.find_external(external_task_id)
        if task is None or task.scenario.lookup not in ("path", "query"):
            raise KlingError(1203, f"task {external_task_id} does not exist")
        return self._queried(task)

    def get_public(self, ref: str) -> SimTask:
        """A task by the id its create answered only (how a gateway looks its tasks up)."""
        task = self.store.find_public(ref)
        if task is None:
            raise KlingError(1203, f"task {ref} does not exist")
        return self._queried(task)

    def page(self, page_num: int, page_size: int) -> list[SimTask]:
        return [self._queried(task) for task in self.store.page(page_num, page_size)]

    def _queried(self, task: SimTask) -> SimTask:
        if task.scenario.media == "expire":
            task.videos = [self._fresh_urls(task, video) for video in task.videos]
        return task

    def _fresh_urls(self, task: SimTask, video: SimVideo) -> SimVideo:
        faults = self.media.faults
        key = faults.fresh_key(video.id)
        if key is not None:
            video = replace(video, url=media_url(task.base_url, video.id, video.kind, key))
        key = faults.fresh_key(video.watermark_id)
        if key is not None and video.watermark_url is not None:
            url = media_url(task.base_url, video.watermark_id, video.kind, key)
            video = replace(video, watermark_url=url)
        return video

    def _spawn(self, work: Coroutine[Any, Any, None], task: SimTask) -> None:
        job = asyncio.create_task(work, name=f"fake-kling-{task.task_id}")
        self._background.add(job)
        job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._background.discard(job)
        if not job.cancelled() and job.exception() is not None:
            logger.error(
                "background job %s crashed",
                job.get_name(),
                exc_info=job.exception(),
                extra={"action": "fake_kling.task.crashed"},
            )

    async def _cancel_background(self) -> None:
        jobs = list(self._background)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
