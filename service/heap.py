"""Keeping the garbage collector off the long-lived objects of a long-running process.

CPython's full (generation 2) collection walks every tracked object, and most of a running
``serve`` or ``worker`` is the modules, classes and functions loaded at start (Starlette,
pydantic, httpx, the plugins...), which live as long as the process. Walked on every full
collection, they made each one a pause of tens of milliseconds in the middle of answering
callbacks: the receiver benchmark's 99th percentile. Frozen (``gc.freeze``), they are left out
of every later collection; what is made afterwards is collected as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once everything of the process's start is loaded (imports, plugins, the app)."""
    gc.collect()  # start-up's own garbage is freed, not frozen for the process's life
    gc.freeze()
