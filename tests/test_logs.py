"""Callback tokens never reach the logs."""

from __future__ import annotations

import logging

import pytest

from service.logs import RedactCallbackTokens, install_redaction, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("POST /callbacks/kling/AbC-123_x HTTP/1.1", "POST /callbacks/kling/*** HTTP/1.1"),
        ("/callbacks/kling/tok?x=1", "/callbacks/kling/***?x=1"),
        ("GET /v1/tasks/task_1", "GET /v1/tasks/task_1"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_access_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction("test.access")
    install_redaction("test.access")  # idempotent
    logger = logging.getLogger("test.access")
    assert sum(isinstance(f, RedactCallbackTokens) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4", "POST", "/callbacks/kling/s3cret", "1.1", 200
        )
    assert "s3cret" not in caplog.text
    assert "/callbacks/kling/***" in caplog.text
