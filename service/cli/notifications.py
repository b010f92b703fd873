"""``omnihook notifications list TASK`` and ``omnihook notifications replay ID``.

Every notification the provider sent for a task, as the receiver kept it (how it was verified,
what it changed), and replaying one through the pipeline. Both talk to a running service over
its HTTP API, like ``omnihook tasks``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast
from urllib.parse import quote

import click
from rich.table import Table

from .client import OmnihookClient
from .common import open_client, report_errors, url_option
from .progress import COMPACT, make_console, short_time

Notification = dict[str, Any]
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.3


@click.group()
def notifications() -> None:
    """The provider's notifications of a task, and replaying one."""


@notifications.command("list")
@click.argument("task_id", metavar="TASK")
@url_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(task_id: str, url: str | None, output: str) -> None:
    """Every notification received for TASK (its id or external id), oldest first."""
    found = report_errors(lambda: asyncio.run(_list(url, task_id)))
    console = make_console()
    if output == "json":
        console.print_json(json.dumps(found))
    elif not found:
        console.print(f"no notifications for {task_id}", markup=False)
    else:
        console.print(notifications_table(found))


@notifications.command()
@click.argument("notification_id", metavar="ID")
@url_option
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help=f"Wait (up to {WAIT_SECONDS:g} s) for the worker to process it and show the outcome.",
)
def replay(notification_id: str, url: str | None, wait: bool) -> None:
    """Put notification ID through the pipeline again (harmless: nothing is announced twice)."""
    queued, done = report_errors(lambda: asyncio.run(_replay(url, notification_id, wait)))
    console = make_console()
    console.print(
        f"replay queued: {queued['id']} (task {queued['task_id']}, job {queued['replay_job_id']})",
        markup=False,
    )
    if done is not None:
        console.print(f"outcome: {done['outcome']}", markup=False)
    elif wait:
        console.print("not processed yet: is a worker running?", style="yellow", markup=False)


def notifications_table(found: list[Notification]) -> Table:
    table = Table(**COMPACT)
    for column in ("notification", "received", "verification", "body", "outcome"):
        table.add_column(column, overflow="fold")
    for item in found:
        table.add_row(
            item["id"],
            short_time(item.get("received_at")),
            item.get("verification") or "-",
            _body_summary(item.get("body") or ""),
            item.get("outcome") or "not processed yet",
        )
    return table


def _body_summary(body: str) -> str:
    """The status words of a body, or its beginning: enough to tell notifications apart."""
    try:
        document = json.loads(body)
    except ValueError:
        return body[:60]
    node: Any = document
    words: list[str] = []
    while isinstance(node, dict) and len(words) < 3:
        for key in ("task_status", "status", "state"):
            if isinstance(node.get(key), str):
                words.append(node[key])
        node = node.get("data")
    return " / ".join(words) or body[:60]


async def _list(url: str | None, task_id: str) -> list[Notification]:
    async with open_client(url) as api:
        task = await api.get_task(task_id)  # by id or external id, 404 when unknown
        path = f"/v1/tasks/{quote(task['id'], safe='')}/notifications"
        response = await api._request("GET", path)  # the client's errors and test seam
        return cast(list[Notification], response.json()["notifications"])


async def _replay(
    url: str | None, notification_id: str, wait: bool
) -> tuple[Notification, Notification | None]:
    path = f"/v1/notifications/{quote(notification_id, safe='')}"
    async with open_client(url) as api:
        queued = cast(Notification, (await api._request("POST", f"{path}/replay")).json())
        if not wait:
            return queued, None
        return queued, await _wait_processed(api, path, queued.get("outcome"))


async def _wait_processed(
    api: OmnihookClient, path: str, before: str | None
) -> Notification | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while loop.time() < deadline:
        current = cast(Notification, (await api._request("GET", path)).json())
        if current.get("outcome") != before:
            return current
        await asyncio.sleep(POLL_SECONDS)
    return None
