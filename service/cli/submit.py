"""``omnihook submit``: build a Kling request from flags and a JSON file, send it, maybe wait."""

from __future__ import annotations

import asyncio
import json
import time
from typing import IO, Any

import click
from rich.console import Console
from rich.live import Live

from .client import OmnihookClient
from .common import open_client, report_errors, url_option
from .model import Task, is_finished, is_fully_stored
from .progress import make_console, task_progress

DEFAULT_MODEL = "kling-v3-omni"


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{what} must be a JSON object")
    return value


def build_request(
    base: dict[str, Any],
    *,
    model: str | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    duration: str | None = None,
    aspect_ratio: str | None = None,
    mode: str | None = None,
    images: tuple[str, ...] = (),
    first_frame: str | None = None,
    end_frame: str | None = None,
    sound: bool | None = None,
    external_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """The request body: ``base`` (from ``--json``) with every given flag written over it."""
    body = dict(base)
    if model is not None:
        body.pop("model", None)  # the alias must not contradict the flag
        body["model_name"] = model
    elif "model_name" not in body and "model" not in body:
        body["model_name"] = DEFAULT_MODEL
    fields = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "duration": duration,
        "aspect_ratio": aspect_ratio,
        "mode": mode,
        "external_task_id": external_id,
        "metadata": metadata,
        "priority": priority,
        "sound": None if sound is None else ("on" if sound else "off"),
    }
    body.update({key: value for key, value in fields.items() if value is not None})
    image_list: list[dict[str, str]] = [{"image_url": url} for url in images]
    if first_frame is not None:
        image_list.append({"image_url": first_frame, "type": "first_frame"})
    if end_frame is not None:
        image_list.append({"image_url": end_frame, "type": "end_frame"})
    if image_list:  # a flag-given image list replaces the file's as a whole
        body["image_list"] = image_list
    return body


@click.command()
@url_option
@click.option("--model", default=None, help=f"model_name  [default: {DEFAULT_MODEL}]")
@click.option("--prompt", default=None, help="What the video shows ([sim:...] steers fake-kling).")
@click.option("--negative-prompt", default=None)
@click.option("--duration", default=None, metavar="SECONDS", help='"3".."15" (model rules apply).')
@click.option("--aspect-ratio", default=None, metavar="RATIO", help="16:9, 9:16 or 1:1.")
@click.option("--mode", default=None, help="std (720p), pro (1080p) or 4k (some gateways).")
@click.option("--image", "images", multiple=True, metavar="URL", help="Reference image (repeat).")
@click.option("--first-frame", default=None, metavar="URL", help="Image the video starts from.")
@click.option("--end-frame", default=None, metavar="URL", help="Image the video ends on.")
@click.option("--sound/--no-sound", default=None, help="Generate native audio.")
@click.option("--external-id", default=None, help="Your own unique id for the task.")
@click.option("--metadata", default=None, metavar="JSON", help="A JSON object carried into events.")
@click.option(
    "--priority",
    default=None,
    type=click.IntRange(-1000, 1000),
    help="Queue order while the provider is full: higher goes first  [default: 0]",
)
@click.option(
    "--json",
    "json_file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="JSON object with any other request fields ('-' for stdin); flags win over it.",
)
@click.option("--wait", is_flag=True, help="Show live progress until the videos are stored.")
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05))
@click.option(
    "--timeout",
    "give_up_after",
    default=None,
    type=click.FloatRange(min=0),
    help="With --wait: give up after this many seconds (exit 1).",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def submit(
    url: str | None,
    json_file: IO[str] | None,
    metadata: str | None,
    wait: bool,
    poll_interval: float,
    give_up_after: float | None,
    output: str,
    **flags: Any,
) -> None:
    """Submit a generation task to a running service.

    Exits 0 once submitted; with --wait, 0 when the task succeeded with every video stored,
    1 otherwise.
    """
    base = _json_object(json_file.read(), f"--json {json_file.name}") if json_file else {}
    meta = _json_object(metadata, "--metadata") if metadata is not None else None
    body = build_request(base, metadata=meta, **flags)
    ok = report_errors(
        lambda: asyncio.run(_submit(url, body, wait, poll_interval, give_up_after, output))
    )
    raise SystemExit(0 if ok else 1)


async def _submit(
    url: str | None,
    body: dict[str, Any],
    wait: bool,
    poll_interval: float,
    give_up_after: float | None,
    output: str,
) -> bool:
    console = make_console()
    async with open_client(url) as api:
        task, answered = await api.submit(body)
        if not answered:
            make_console(stderr=True).print(
                "note: the provider's answer was lost; the task stays pending until the "
                "service learns its outcome",
                style="yellow",
            )
        if not wait:
            _print_task(console, task, output)
            return True
        # In JSON mode the live view goes to stderr, so stdout stays one JSON document.
        live_console = console if output == "text" else make_console(stderr=True)
        estimate = task.get("estimated_cost")
        if isinstance(estimate, dict):  # before the wait: what this will cost
            live_console.print(
                f"estimated cost: {estimate.get('amount')} {estimate.get('currency')}",
                markup=False,
            )
        if task["status"] == "queued":
            live_console.print(
                f"task {task['id']} queued (#{task.get('queue_position') or '?'} in line): "
                "waiting for a free provider slot",
                markup=False,
            )
        else:
            live_console.print(f"submitted task {task['id']}", markup=False)
        task = await follow_task(api, task, live_console, poll_interval, give_up_after)
    if output == "json":
        _print_task(console, task, output)
    # In JSON mode stdout carries only the task; the human outcome goes to stderr.
    outcome_console = console if output == "text" else make_console(stderr=True)
    return _report_outcome(outcome_console, task, timed_out=not is_finished(task))


def _print_task(console: Console, task: Task, output: str) -> None:
    if output == "json":
        console.print_json(json.dumps(task))
    else:
        console.print(task_progress(task))


async def follow_task(
    api: OmnihookClient,
    task: Task,
    console: Console,
    poll_interval: float,
    give_up_after: float | None,
) -> Task:
    """Poll the task and redraw it until it is finished or ``give_up_after`` seconds pass."""
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    with Live(task_progress(task), console=console, refresh_per_second=8) as live:
        while not is_finished(task):
            if deadline is not None and time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll_interval)
            task = await api.get_task(task["id"])
            live.update(task_progress(task))
    if not console.is_terminal:  # Live ends its last frame without a newline when piped
        console.line()
    return task


def _report_outcome(console: Console, task: Task, *, timed_out: bool) -> bool:
    task_id = task["id"]
    if timed_out:
        line, ok = f"gave up waiting: task {task_id} is still {task['status']}", False
    elif is_fully_stored(task):
        line, ok = f"task {task_id} succeeded; {len(task['videos'])} video(s) stored", True
    elif task["status"] == "failed":
        line, ok = f"task {task_id} failed: {task.get('status_message') or 'no reason'}", False
    else:
        line, ok = f"task {task_id} succeeded but not every video was stored", False
    console.print(line, style="green" if ok else "red", markup=False)
    return ok
