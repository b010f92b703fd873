"""The handler plugin ``omnihook demo`` writes into its temporary directory and loads.

It is kept as text, not imported here: it is user code, loaded by the service from a ``.py``
path (``OMNIHOOK_HANDLERS``), exactly as a user's own plugin would be.
"""

from __future__ import annotations

import json
from pathlib import Path

PLUGIN_FILE = "demo_handlers.py"
SEEN_FILE = "seen-events.jsonl"

PLUGIN_SOURCE = f'''\
"""omnihook demo handlers: one counts every event, one fails once to show a retry."""

import json
from pathlib import Path

from handlers import on

SEEN = Path(__file__).with_name({SEEN_FILE!r})


@on("*")
def demo_count_event(event):
    # One line per run; a run may repeat (at-least-once), so readers count distinct ids.
    with SEEN.open("a", encoding="utf-8") as seen:
        seen.write(json.dumps({{"id": event.id, "type": event.type}}) + "\\n")


@on("task.completed")
async def demo_flaky_on_completed(event):
    # Fail the first attempt on purpose: the run is retried and then succeeds.
    if event.attempt == 1:
        raise RuntimeError("failing the first attempt on purpose, to show a retry")
'''


def write_plugin(directory: Path) -> Path:
    path = directory / PLUGIN_FILE
    path.write_text(PLUGIN_SOURCE, encoding="utf-8")
    return path


def seen_event_ids(directory: Path) -> set[str]:
    """Ids of the events the plugin's counter has run for."""
    path = directory / SEEN_FILE
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["id"] for line in lines if line.strip()}
