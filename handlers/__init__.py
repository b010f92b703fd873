"""Handler plugins: user code that runs on omnihook's events (CONTRACT.md "Handler plugins").

A plugin needs only what is exported here; see :mod:`handlers.api`. The app side lives in
:mod:`handlers.registry` (finding and loading plugins) and :mod:`handlers.runner` (running one
handler once, isolated).
"""

from __future__ import annotations

from handlers.api import EVENT_TYPES, DoNotRetry, Event, on
from handlers.payloads import BudgetData, EventData, TaskData, VideoData, WatermarkData

__all__ = [
    "EVENT_TYPES",
    "BudgetData",
    "DoNotRetry",
    "Event",
    "EventData",
    "TaskData",
    "VideoData",
    "WatermarkData",
    "on",
]
