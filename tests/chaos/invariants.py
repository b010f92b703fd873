"""What must hold after a chaos scenario, once the faults stop and the system settles.

- every notification the service acknowledged (200) is applied: its state's event exists;
  none was answered 500 (a service that cannot store one answers 503);
- each event exactly once per task and type (and video);
- each video downloaded, once, with the sha256 of the provider's bytes, stored at its final
  path; no other file at a final path and no partial file left over;
- no delivery lost: every event has a succeeded delivery to the healthy endpoint, which
  received it, correctly signed, under the event's id as ``webhook-id``;
- every run of the healthy handler succeeded, one per event.

:func:`settle` checks again and again until everything holds or a deadline passes; the
problems of the last check are the scenario's findings.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.rig import HEALTHY_HANDLER, Rig

# the provider's words for the states it calls back about, and the event each one must cause
STATE_EVENTS = {
    "submitted": "task.submitted",
    "processing": "task.processing",
    "succeed": "task.succeeded",
    "failed": "task.failed",
}
PARTIAL_DIR = ".partial"
# problems that waiting cannot mend: settling stops early when only these are left
LASTING = ("receive:", "events once:")
# what the built-in handlers write next to a stored video (a poster frame, its metadata)
SIDECARS = (".jpg", ".json")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    tasks: int = 0
    acknowledged: int = 0
    events: int = 0
    videos: int = 0
    deliveries: int = 0
    handler_runs: int = 0
    # a writer's temporary file (``.NAME.XXXX.tmp``, renamed into place when complete) that a
    # kill left behind: garbage, but never mistaken for a final file
    temp_files_left: list[str] = field(default_factory=list)
    # callbacks the service did not acknowledge, by its answer ("no answer": refused, cut)
    not_acknowledged: Counter[str] = field(default_factory=Counter)

    def add(self, invariant: str, what: str) -> None:
        self.problems.append(f"{invariant}: {what}")


async def settle(rig: Rig, deadline: float) -> Findings:
    """Check until nothing is wrong or ``deadline`` seconds have passed; the last findings."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while True:
        findings = await check(rig)
        lasting = all(problem.startswith(LASTING) for problem in findings.problems)
        if lasting or loop.time() > until:
            report = rig.report
            report.tasks, report.notifications_acknowledged = findings.tasks, findings.acknowledged
            report.events, report.videos = findings.events, findings.videos
            report.deliveries_checked = findings.deliveries
            report.handler_runs_checked = findings.handler_runs
            report.problems = findings.problems
            report.temp_files_left = findings.temp_files_left
            report.callbacks_not_acknowledged = findings.not_acknowledged
            return findings
        await asyncio.sleep(1.0)


async def check(rig: Rig) -> Findings:
    findings = Findings()
    simulated = {task.external_task_id: task for task in rig.simulator.store.all()}
    deliveries = await _deliveries(rig)
    final_paths: set[Path] = set()
    for external_id in rig.external_ids:
        answer = await rig.call("GET", f"/v1/tasks/{external_id}")
        if answer.status_code != 200:
            findings.add("submitted", f"{external_id} answers {answer.status_code}")
            continue
        task = answer.json()
        events = (await rig.call("GET", f"/v1/tasks/{task['id']}/events")).json()["events"]
        findings.tasks += 1
        findings.events += len(events)
        _check_acknowledged(findings, task, events, simulated.get(external_id))
        _check_events(findings, task, events)
        final_paths |= _check_videos(findings, rig, task, simulated.get(external_id))
        _check_deliveries(findings, rig, task, events, deliveries)
        _check_handler_runs(findings, task, events, task["handler_runs"])
    _check_media_dir(findings, rig.media_dir, final_paths)
    if rig.sink.badly_signed:
        findings.add("deliveries", f"badly signed at the sink: {rig.sink.badly_signed[:5]}")
    return findings


def _check_acknowledged(
    findings: Findings, task: dict[str, Any], events: list[dict[str, Any]], sim: Any
) -> None:
    if sim is None:
        findings.add("submitted", f"{task['id']} never reached the provider")
        return
    types = {event["type"] for event in events}
    for callback in sim.callbacks:
        if callback.status_code == 500:  # an outage is answered 503, to be retried
            findings.add("receive", f"{task['id']}: callback {callback.webhook_id} answered 500")
        if callback.status_code != 200:
            findings.not_acknowledged[str(callback.status_code or "no answer")] += 1
            continue
        findings.acknowledged += 1
        wanted = STATE_EVENTS[callback.state]
        if wanted not in types:
            findings.add(
                "applied",
                f"{task['id']}: callback {callback.webhook_id} ({callback.state}) answered 200,"
                f" but no {wanted} (task {task['status']})",
            )


def _check_events(findings: Findings, task: dict[str, Any], events: list[dict[str, Any]]) -> None:
    keys = Counter(_event_key(event) for event in events)
    twice = sorted(key for key, count in keys.items() if count > 1)
    if twice:
        findings.add("events once", f"{task['id']}: {twice}")
    wanted = {"task.succeeded", "task.completed"} | {
        f"video.downloaded:{video['index']}" for video in task["videos"]
    }
    missing = sorted(wanted - set(keys))
    if task["status"] != "succeeded" or missing or not task["videos"]:
        findings.add(
            "finished", f"{task['id']}: {task['status']}, videos {task['videos']}, no {missing}"
        )


def _event_key(event: dict[str, Any]) -> str:
    video = event["data"].get("video")
    return f"{event['type']}:{video['index']}" if video else str(event["type"])


def _check_videos(findings: Findings, rig: Rig, task: dict[str, Any], sim: Any) -> set[Path]:
    paths = set()
    for video in task["videos"]:
        findings.videos += 1
        media = rig.simulator.media.get(video["provider_video_id"])
        if media is None:
            findings.add("videos", f"{task['id']}: the provider has no {video}")
            continue
        if video["download_status"] != "downloaded" or video["path"] is None:
            findings.add("videos", f"{task['id']} video {video['index']}: {video}")
            continue
        expected = hashlib.sha256(media.data).hexdigest()
        path = Path(video["path"])
        paths.add(path)
        stored = path.read_bytes() if path.is_file() else b""
        if video["sha256"] != expected or hashlib.sha256(stored).hexdigest() != expected:
            findings.add(
                "videos",
                f"{task['id']} video {video['index']}: recorded {video['sha256']}, stored"
                f" {len(stored)} bytes, the provider's sha256 is {expected}",
            )
        watermark = video["watermark"]
        if watermark is not None:  # the copy is checked like the clean file
            copy = rig.simulator.media.get(f"{video['provider_video_id']}-watermarked")
            copy_path = Path(watermark["path"]) if watermark["path"] else None
            if copy is None or copy_path is None or not copy_path.is_file():
                findings.add("videos", f"{task['id']} video {video['index']}: no copy {video}")
            else:
                paths.add(copy_path)
                expected = hashlib.sha256(copy.data).hexdigest()
                if watermark["sha256"] != expected or sha256_of(copy_path) != expected:
                    findings.add("videos", f"{task['id']} video {video['index']}: bad copy")
        served = next(
            (v for v in (sim.videos if sim else []) if v.id == video["provider_video_id"]), None
        )
        if served is None:
            findings.add("videos", f"{task['id']}: the provider never listed {video}")
    return paths


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_media_dir(findings: Findings, media_dir: Path, final_paths: set[Path]) -> None:
    if not media_dir.exists():
        return
    for path in media_dir.rglob("*"):
        if not path.is_file():
            continue
        if PARTIAL_DIR in path.relative_to(media_dir).parts:
            findings.add("media dir", f"a partial file is left: {path.name}")
        elif path.name.startswith(".") and path.suffix == ".tmp":
            findings.temp_files_left.append(str(path.relative_to(media_dir)))
        elif path.resolve() not in final_paths and not _sidecar_of(path, final_paths):
            findings.add("media dir", f"a file at a final path no video names: {path}")


def _sidecar_of(path: Path, final_paths: set[Path]) -> bool:
    video = path.with_suffix("")
    return path.suffix in SIDECARS and video.resolve() in final_paths


async def _deliveries(rig: Rig) -> dict[str, list[dict[str, Any]]]:
    """The healthy endpoint's deliveries, by event id."""
    found: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    cursor = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        page = (
            await rig.call("GET", f"/v1/webhooks/{rig.endpoint_id}/deliveries", params=params)
        ).json()
        for delivery in page["deliveries"]:
            found[delivery["event_id"]].append(delivery)
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def _check_deliveries(
    findings: Findings,
    rig: Rig,
    task: dict[str, Any],
    events: list[dict[str, Any]],
    deliveries: dict[str, list[dict[str, Any]]],
) -> None:
    for event in events:
        findings.deliveries += 1
        made = deliveries.get(event["id"], [])
        if len(made) != 1 or made[0]["status"] != "succeeded":
            statuses = [(d["status"], d["attempts"], d["last_error"]) for d in made]
            findings.add("deliveries", f"{task['id']} {event['type']} {event['id']}: {statuses}")
        elif rig.sink.received.get(event["id"], 0) < 1:
            findings.add(
                "deliveries", f"{event['id']} succeeded, but the healthy sink never received it"
            )


def _check_handler_runs(
    findings: Findings,
    task: dict[str, Any],
    events: list[dict[str, Any]],
    runs: list[dict[str, Any]],
) -> None:
    healthy = [run for run in runs if str(run["handler"]).endswith(HEALTHY_HANDLER)]
    findings.handler_runs += len(healthy)
    per_event = Counter(run["event_id"] for run in healthy)
    for event in events:
        if per_event.get(event["id"], 0) != 1:
            findings.add(
                "handler runs", f"{event['id']} ({event['type']}): {per_event.get(event['id'])}"
            )
    failed = [(r["event_type"], r["status"], r["last_error"]) for r in healthy]
    failed = [f for f in failed if f[1] != "succeeded"]
    if failed:
        findings.add("handler runs", f"{task['id']}: {failed}")
