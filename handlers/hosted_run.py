"""One attempt of one handler as the handler host sees it: what it is and where it is now.

The runner creates it; the host, its thread pool and its loop move it from stage to stage, and
the watchdog (another thread) reads it to say which handler (and event) blocks a loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.Enum):
    STARTING = "starting"
    # A sync handler's earlier runs (abandoned ones included) hold its share of the threads.
    WAITING_FOR_SHARE = "waiting for its share of the handler threads"
    WAITING_FOR_THREAD = "waiting for a free handler thread"
    IN_THREAD = "running in a handler thread"
    ON_LOOP = "running on its handler's loop"


@dataclass(eq=False)
class HostedRun:
    handler: str
    event_id: str
    event_type: str
    attempt: int
    timeout: float
    stage: Stage = Stage.STARTING
    # Set when the run went to its handler's loop: which one (it may be replaced meanwhile).
    loop_name: str | None = None

    @property
    def about(self) -> str:
        return (
            f"handler {self.handler} on {self.event_type} {self.event_id} (attempt {self.attempt})"
        )

    @property
    def log_context(self) -> dict[str, str]:
        return {"handler": self.handler, "event_id": self.event_id, "event_type": self.event_type}
