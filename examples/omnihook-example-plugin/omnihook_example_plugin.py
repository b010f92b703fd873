"""An example omnihook handler plugin: a log of finished tasks, one JSON line each.

``task.completed`` (every video of a task is stored) appends a line with the task, its prompt,
its cost and where its videos are to the file named by ``COMPLETED_TASKS_LOG``. ``task.failed``
prints a one-line summary to the worker's output.

It shows the habits every handler should have:

* it is **idempotent**: omnihook runs each (event, handler) pair at least once, so a line is
  keyed by ``event.id`` and never written twice;
* it says **when retrying is pointless** with ``DoNotRetry`` (the log is not configured), and
  lets any other exception (a full disk...) be retried on its schedule;
* blocking file I/O is in a **sync** handler (run in a thread of its own); the async one does
  nothing that blocks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from handlers import DoNotRetry, Event, on

#: The environment variable naming the file to append to.
LOG_VARIABLE = "COMPLETED_TASKS_LOG"


@on("task.completed", timeout=10, retries=[1, 10, 60])
def log_completed_task(event: Event) -> None:
    """Append one JSON line about the completed task to ``$COMPLETED_TASKS_LOG``."""
    target = os.environ.get(LOG_VARIABLE)
    if not target:
        raise DoNotRetry(f"set {LOG_VARIABLE} to the file completed tasks are logged to")
    path = Path(target)
    if already_logged(path, event.id):
        return  # an earlier attempt wrote it: at-least-once delivery, exactly-once effect
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(summary(event), ensure_ascii=False) + "\n")


@on("task.failed")
async def print_failure(event: Event) -> None:
    """Print why a task failed; the worker's output (or its log collector) shows it."""
    task = event.task
    print(f"omnihook: task {task['external_task_id']} failed: {task['status_message']}")


def summary(event: Event) -> dict[str, Any]:
    """The line written for a ``task.completed`` event."""
    task = event.task
    return {
        "event_id": event.id,
        "completed_at": event.timestamp.isoformat(),
        "task_id": task["id"],
        "external_task_id": task["external_task_id"],
        "model_name": task["model_name"],
        "prompt": task["request"].get("prompt"),
        "cost": task["cost"],
        "videos": [video["path"] for video in task["videos"]],
        "metadata": task["metadata"],
    }


def already_logged(path: Path, event_id: str) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    return any(json.loads(line).get("event_id") == event_id for line in lines if line.strip())
