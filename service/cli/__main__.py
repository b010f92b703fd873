"""``python -m service.cli``: the same as the ``omnihook`` console script."""

from __future__ import annotations

from . import main

main()
