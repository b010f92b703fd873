"""The demo's live table and its closing summary."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from .demo_check import Tracked, Verdict
from .progress import downloads_summary, human_size, styled_status

SHORT_SHA = 8


def live_table(tracked: Sequence[Tracked], elapsed: float) -> Table:
    table = Table(
        title=f"omnihook demo  {elapsed:4.1f} s",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("task", "kind", "status", "downloads", "events", "handler runs"):
        table.add_column(column, overflow="fold")
    for item in tracked:
        task = item.task
        if task is None:
            status = Text(item.error or "submitting", style="red" if item.error else "dim")
            table.add_row(item.case.name, item.case.kind, status, "-", "-", "-")
            continue
        runs = item.runs
        done = sum(1 for run in runs if run["status"] == "succeeded")
        table.add_row(
            item.case.name,
            item.case.kind,
            styled_status(task["status"]),
            downloads_summary(task),
            str(len(item.events)),
            f"{done}/{len(runs)} ok" if runs else "-",
        )
    return table


def summary_table(results: Sequence[tuple[Tracked, Verdict]]) -> Table:
    # Compact enough for an 80-column terminal: one space between columns, short hashes.
    table = Table(title="summary", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    columns = ("task", "expected", "actual", "file", "size", "sha256", "events", "handlers", "")
    for column in columns:
        # fold, never ellipsis: on a narrow terminal a cell wraps but keeps every character
        table.add_column(column, overflow="fold")
    for tracked, verdict in results:
        actual = styled_status(tracked.task["status"]) if tracked.task else Text("-", style="red")
        runs = f"{verdict.runs_ok} ok"
        if verdict.runs_failed:
            runs += f" {verdict.runs_failed} failed"
        table.add_row(
            tracked.case.name,
            tracked.case.expected_status,
            actual,
            "\n".join(verdict.files) or "-",
            "\n".join(human_size(size) for size in verdict.sizes) or "-",
            "\n".join((sha or "-")[:SHORT_SHA] for sha in verdict.hashes) or "-",
            str(len(tracked.events)),
            runs,
            Text("ok", style="green") if verdict.ok else Text("FAILED", style="bold red"),
        )
    return table


def retries_note(results: Sequence[tuple[Tracked, Verdict]]) -> str | None:
    retried = sum(verdict.runs_retried for _, verdict in results)
    if not retried:
        return None
    return (
        f"{retried} handler run(s) retried: the demo plugin fails each task.completed "
        "run once on purpose"
    )
