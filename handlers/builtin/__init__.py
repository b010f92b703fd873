"""omnihook's own handlers, written as ordinary plugins.

They load through the same registry path as user plugins (``build_registry`` loads them first,
with source ``"builtin"``), so that path is exercised on every start:

* :mod:`handlers.builtin.sidecar`: ``<video>.json`` beside each stored video;
* :mod:`handlers.builtin.poster`: ``<video>.jpg``, a poster frame, beside each stored video.
"""

from __future__ import annotations

#: Dotted names of the built-in plugin modules, in load order.
BUILTIN_MODULES: tuple[str, ...] = ("handlers.builtin.sidecar", "handlers.builtin.poster")
