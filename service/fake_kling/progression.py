"""One task's life: ``submitted`` → ``processing`` → ``succeed``/``failed``, and its callbacks.

A :class:`TaskRun` drives two coroutines owned by the simulator: :meth:`TaskRun.advance` moves
the task on its schedule (queries see each state at once), and :meth:`TaskRun.deliver` sends
the callbacks, in order, from an outbox, so a slow or delayed receiver never holds the
schedule back. Scenario directives shape only what goes into the outbox.
"""

from __future__ import annotations

import asyncio
import secrets

from .callbacks import Callback, CallbackRenderer, CallbackSender, Signing
from .media import MediaLibrary
from .store import SimTask, SimVideo, TaskStatus, new_numeric_id

# units per second of output, by mode: only the shape (a decimal string) matters
_UNIT_RATE = {"std": 0.6, "pro": 0.8, "4k": 1.6}


class TaskRun:
    """The schedule and callback outbox of one task."""

    def __init__(
        self,
        task: SimTask,
        *,
        step_seconds: float,
        sender: CallbackSender,
        render: CallbackRenderer,
        media: MediaLibrary,
    ) -> None:
        self.task = task
        self._step = step_seconds
        self._sender = sender
        self._render = render
        self._media = media
        self._outbox: asyncio.Queue[Callback | None] = asyncio.Queue()
        self._announced_submitted = False

    async def announce_submitted_now(self) -> None:
        """Deliver the ``submitted`` callback before returning (``[sim:early]``)."""
        self._announced_submitted = True
        callback = self._callback()
        if callback is not None:
            await self._send(callback)

    async def advance(self) -> None:
        task, scenario = self.task, self.task.scenario
        if not self._announced_submitted:
            self._post(self._callback())
        await asyncio.sleep(self._step)
        task.move_to(TaskStatus.PROCESSING)
        held = self._callback()
        if not scenario.reorder:
            self._post(held)
            held = None
        await asyncio.sleep(self._step)
        if scenario.fail_message is not None:
            task.unit_deduction = "0"
            task.move_to(TaskStatus.FAILED, scenario.fail_message)
        else:
            task.videos = [self._new_video() for _ in range(scenario.videos)]
            task.unit_deduction = _deduction(task)
            task.move_to(TaskStatus.SUCCEED)
        self._post(self._callback())
        self._post(held)
        self._outbox.put_nowait(None)

    async def deliver(self) -> None:
        while (callback := await self._outbox.get()) is not None:
            await self._send(callback)

    def _callback(self) -> Callback | None:
        if self.task.callback_url is None or self.task.scenario.drop:
            return None
        body = self._render(self.task)
        return (
            None
            if body is None
            else Callback.about(self.task.status.value, body, _signing(self.task))
        )

    def _post(self, callback: Callback | None) -> None:
        if callback is not None:
            self._outbox.put_nowait(callback)

    async def _send(self, callback: Callback) -> None:
        scenario = self.task.scenario
        copies = 2 if scenario.duplicate else 1
        await self._sender.deliver(self.task, callback, copies=copies, delay=scenario.delay)

    def _new_video(self) -> SimVideo:
        video_id = new_numeric_id()
        self._media.add(video_id)
        # like Kling's CDN URLs, the link carries a signed-looking query string
        url = f"{self.task.base_url}/media/{video_id}.mp4?cacheKey={secrets.token_hex(16)}"
        return SimVideo(id=video_id, url=url, duration=self._media.duration)


def _signing(task: SimTask) -> Signing:
    if task.scenario.badsig:
        return Signing.WRONG
    return Signing.NONE if task.scenario.unsigned else Signing.AS_CONFIGURED


def _deduction(task: SimTask) -> str:
    units = _UNIT_RATE.get(task.mode, 0.8) * int(task.requested_duration) * len(task.videos)
    return f"{round(units, 2):g}"
