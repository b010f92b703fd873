"""One task's life: ``submitted`` → ``processing`` → ``succeed``/``failed``, and its callbacks.

A :class:`TaskRun` drives two coroutines owned by the simulator: :meth:`TaskRun.advance` moves
the task on its schedule (queries see each state at once), and :meth:`TaskRun.deliver` sends
the callbacks, in order, from an outbox, so a slow or delayed receiver never holds the
schedule back. Scenario directives shape only what goes into the outbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from .callbacks import Callback, CallbackRenderer, CallbackSender, Signing
from .media import MediaLibrary
from .store import IMAGE, VIDEO, SimTask, SimVideo, TaskStatus, media_url, new_numeric_id

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
            task.videos = [self._new_output(VIDEO) for _ in range(scenario.videos)]
            task.videos += [self._new_output(IMAGE) for _ in range(scenario.images)]
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

    def _new_output(self, kind: str) -> SimVideo:
        """A video or an image, and its watermarked copy when the request asked for one."""
        task, media = self.task, self._media
        output = SimVideo(
            id=new_numeric_id(),
            url="",
            duration=media.duration if kind == VIDEO else None,
            kind=kind,
        )
        media_ids = [output.id] + ([output.watermark_id] if task.watermark else [])
        for media_id in media_ids:
            if kind == VIDEO:
                media.add(media_id)
            else:
                media.add_image(media_id, watermarked=media_id != output.id)
            if task.scenario.media is not None:
                media.faults.set(media_id, task.scenario.media)
        return replace(
            output,
            url=media_url(task.base_url, output.id, kind),
            watermark_url=media_url(task.base_url, output.watermark_id, kind)
            if task.watermark
            else None,
        )


def _signing(task: SimTask) -> Signing:
    if task.scenario.badsig:
        return Signing.WRONG
    return Signing.NONE if task.scenario.unsigned else Signing.AS_CONFIGURED


def _deduction(task: SimTask) -> str:
    videos = sum(1 for video in task.videos if video.kind == VIDEO)
    units = _UNIT_RATE.get(task.mode, 0.8) * int(task.requested_duration) * videos
    return f"{round(units, 2):g}"
