"""Where the in-process services' logs go during the demo: off the live table."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from rich.logging import RichHandler

from .progress import make_console

LogLine = tuple[float, str]  # (time.time() of the record, its text)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[LogLine]) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        self.lines.append((record.created, text))


@contextlib.contextmanager
def service_logs(verbose: bool) -> Iterator[list[LogLine]]:
    """Keep the service's logs off the live table (the flaky handler logs its failure on
    purpose); they are shown only with --verbose, or as a tail when the demo fails."""
    lines: list[LogLine] = []
    root = logging.getLogger()
    handler: logging.Handler = (
        RichHandler(console=make_console(stderr=True), show_path=False)
        if verbose
        else _ListHandler(lines)
    )
    # httpx logs every request URL at INFO, and callback URLs carry their task's secret token.
    quiet = logging.getLogger("httpx")
    previous_levels = (root.level, quiet.level)
    root.addHandler(handler)
    if verbose:
        root.setLevel(logging.INFO)
        quiet.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_levels[0])
        quiet.setLevel(previous_levels[1])
