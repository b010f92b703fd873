"""A handler that blocks its event loop (``time.sleep`` inside ``async def``) in the real
pipeline, served like ``omnihook serve`` (receiver and in-process worker in one process): the
callbacks are still acknowledged at once, the run times out, and the next handler runs on its
own handler loop while the blocked one is still blocked."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.handler_harness import HandlerService, serving_plugin

pytestmark = pytest.mark.e2e

BLOCK_SECONDS = 8.0  # how long the handler blocks its loop
TIMEOUT_SECONDS = 2.0  # its timeout: the host gives up on it, and on its loop, well before
PLUGIN = textwrap.dedent(
    f"""
    import json, os, time
    from handlers import on

    def record(name, event):
        with open(os.environ["CONTAINMENT_CALLS"], "a") as calls:
            calls.write(json.dumps({{"handler": name, "attempt": event.attempt}}) + "\\n")

    @on("task.succeeded", timeout={TIMEOUT_SECONDS}, retries=[600])
    async def blocks_its_loop(event):
        record("blocks", event)
        time.sleep({BLOCK_SECONDS})  # wrong in async def: it blocks whatever loop runs it
        record("blocks-done", event)

    @on("video.downloaded")
    async def after(event):
        record("after", event)
    """
)


@pytest.fixture
async def service(
    fake_kling_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HandlerService]:
    async with serving_plugin(
        PLUGIN,
        fake_kling_url=fake_kling_url,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        calls_variable="CONTAINMENT_CALLS",
    ) as service:
        yield service


async def test_a_handler_blocking_its_loop_delays_neither_callbacks_nor_other_handlers(
    service: HandlerService,
) -> None:
    task_id = await service.submit("a paper boat")

    async def blocking() -> bool:
        return bool(service.called("blocks"))

    await service.until("the blocking handler started", blocking)
    latencies = await service.late_repeats(10)
    acknowledged_while_blocking = not service.called("blocks-done")

    async def after_ran() -> bool:
        return bool(service.called("after"))

    await service.until("the handler of video.downloaded ran", after_ran)
    after_ran_while_blocking = not service.called("blocks-done")

    async def blocker_timed_out() -> dict[str, Any] | None:
        task = (await service.api.get(f"/v1/tasks/{task_id}")).json()
        for run in task["handler_runs"]:
            if run["handler"].endswith(":blocks_its_loop") and run["last_error"]:
                return dict(run)
        return None

    blocker_run = await service.until("the blocking run was marked timed out", blocker_timed_out)

    # The callbacks were answered at once while a handler blocked its loop for seconds...
    assert acknowledged_while_blocking, "the callbacks were sent after the handler ended"
    assert max(latencies) < 1.0, latencies
    # ...the next handler ran on its own loop meanwhile, and the blocking run is to be retried.
    assert after_ran_while_blocking
    assert f"timed out after {TIMEOUT_SECONDS}s" in blocker_run["last_error"]
    assert (blocker_run["status"], blocker_run["attempts"]) == ("queued", 1)
