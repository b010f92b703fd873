"""Logging that never shows a secret: callback URLs carry a per-task token, and an access log
line like ``POST /callbacks/kling/<token>`` would hand it to anyone who reads the logs."""

from __future__ import annotations

import logging
import re

_CALLBACK_TOKEN = re.compile(r"(/callbacks/kling/)[^/?\s\"]+")


def redact(text: str) -> str:
    if "/callbacks/kling/" not in text:  # most lines: no regex to run
        return text
    return _CALLBACK_TOKEN.sub(r"\1***", text)


class RedactCallbackTokens(logging.Filter):
    """Masks callback tokens in a record's message and its %-style arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_redaction(*logger_names: str) -> None:
    """Idempotent: adds the filter to each named logger once."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCallbackTokens) for f in logger.filters):
            logger.addFilter(RedactCallbackTokens())


def configure_logging(level: int = logging.INFO) -> None:
    """For ``serve`` and ``worker``: omnihook's own loggers to stderr, tokens redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCallbackTokens())
    for name in ("service", "handlers", "storage"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False
