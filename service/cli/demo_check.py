"""Following the demo's tasks and judging each one against its case."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .client import ClientError, OmnihookClient
from .demo_cases import DemoCase
from .model import TERMINAL_RUNS, Event, HandlerRun, Task, Video, is_finished

# A task.completed event has at least two runs: the demo plugin's counter and its flaky handler.
COMPLETED_MIN_RUNS = 2


@dataclass
class Tracked:
    """One demo task as last seen: the case, the task, its events, or why it is missing."""

    case: DemoCase
    task: Task | None = None
    events: list[Event] = field(default_factory=list)
    error: str | None = None

    @property
    def runs(self) -> list[HandlerRun]:
        return (self.task.get("handler_runs") or []) if self.task is not None else []

    def settled(self) -> bool:
        """Nothing more is expected: the task is finished, its events and handler runs are in."""
        if self.error is not None:
            return True
        if self.task is None or not is_finished(self.task):
            return False
        counts = Counter(event["type"] for event in self.events)
        expected = self.case.expected_events()
        if self.task["status"] != self.case.expected_status:
            expected = {}  # gone wrong: wait for nothing more, the verdict will say why
        if any(counts[kind] < low for kind, (low, _) in expected.items()):
            return False
        runs_per_event = Counter(run["event_id"] for run in self.runs)
        for event in self.events:
            wanted = COMPLETED_MIN_RUNS if event["type"] == "task.completed" else 1
            if runs_per_event[event["id"]] < wanted:
                return False
        return all(run["status"] in TERMINAL_RUNS for run in self.runs)


@dataclass
class Verdict:
    """What the summary shows of one task, and every way it missed its expectations."""

    files: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)
    hashes: list[str | None] = field(default_factory=list)
    runs_ok: int = 0
    runs_failed: int = 0
    runs_retried: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(api: OmnihookClient, tracked: Tracked) -> Verdict:
    verdict = Verdict()
    case, task = tracked.case, tracked.task
    if tracked.error is not None:
        verdict.problems.append(f"submission failed: {tracked.error}")
        return verdict
    if task is None:
        verdict.problems.append("never seen")
        return verdict
    if not is_finished(task):
        # Its events and handler runs are incomplete by nature: the one problem is the wait.
        verdict.problems.append(
            f"still {task['status']} at the deadline (videos pending)"
            if task["status"] == "succeeded"
            else f"still {task['status']} at the deadline"
        )
        _verify_runs(tracked, verdict)
        return verdict
    if task["status"] != case.expected_status:
        reason = f" ({task.get('status_message')})" if task.get("status_message") else ""
        verdict.problems.append(f"ended {task['status']}{reason}, expected {case.expected_status}")
    if case.succeeds and task["status"] == "succeeded":
        await _verify_videos(api, task, case, verdict)
    _verify_events(tracked, verdict)
    _verify_runs(tracked, verdict)
    return verdict


async def _verify_videos(api: OmnihookClient, task: Task, case: DemoCase, verdict: Verdict) -> None:
    if len(task["videos"]) != case.videos:
        verdict.problems.append(f"{len(task['videos'])} videos, expected {case.videos}")
    for video in task["videos"]:
        label = f"video {video['index']}"
        verdict.files.append(Path(video["path"]).name if video["path"] else "-")
        verdict.sizes.append(video.get("size"))
        verdict.hashes.append(video.get("sha256"))
        if video["download_status"] != "downloaded":
            verdict.problems.append(f"{label} is {video['download_status']}: {video.get('error')}")
            continue
        # The file on disk and the file the API serves must both be the bytes it announced.
        problem = await asyncio.to_thread(_check_file, video)
        if problem is not None:
            verdict.problems.append(f"{label}: {problem}")
        served = hashlib.sha256()
        try:
            async for chunk in api.video_chunks(task["id"], video["index"]):
                served.update(chunk)
        except ClientError as exc:
            verdict.problems.append(f"{label}: GET /videos/{video['index']} failed: {exc}")
            continue
        if served.hexdigest() != video["sha256"]:
            verdict.problems.append(f"{label}: the served file's sha256 differs from the API's")


def _check_file(video: Video) -> str | None:
    path = Path(video["path"] or "")
    if not path.is_absolute() or not path.is_file():
        return f"no file at {video['path']}"
    if path.stat().st_size != video["size"]:
        return "the stored file's size differs from the API's"
    if hashlib.sha256(path.read_bytes()).hexdigest() != video["sha256"]:
        return "the stored file's sha256 differs from the API's"
    return None


def _verify_events(tracked: Tracked, verdict: Verdict) -> None:
    counts = Counter(event["type"] for event in tracked.events)
    expected = tracked.case.expected_events()
    for kind, (low, high) in expected.items():
        if not low <= counts[kind] <= high:
            wanted = str(high) if low == high else f"{low}..{high}"
            verdict.problems.append(f"{counts[kind]} x {kind}, expected {wanted}")
    for kind in sorted(set(counts) - set(expected)):
        verdict.problems.append(f"unexpected {counts[kind]} x {kind}")


def _verify_runs(tracked: Tracked, verdict: Verdict) -> None:
    runs = tracked.runs
    verdict.runs_ok = sum(1 for run in runs if run["status"] == "succeeded")
    verdict.runs_failed = sum(1 for run in runs if run["status"] == "failed")
    verdict.runs_retried = sum(1 for run in runs if run["attempts"] > 1)
    if not runs and tracked.events:
        verdict.problems.append("no handler runs")
    for run in runs:
        if run["status"] != "succeeded":
            error = f": {run['last_error']}" if run.get("last_error") else ""
            verdict.problems.append(
                f"handler {run['handler']} on {run['event_type']} is {run['status']}{error}"
            )
