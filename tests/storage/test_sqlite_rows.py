"""SQLite's text encodings: fixed-width UTC instants that sort as the instants do, compact JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.errors import StorageError
from storage.sqlite.rows import decode_time, encode_json, encode_time


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2025, 1, 1, 12, 0, tzinfo=UTC), "2025-01-01T12:00:00.000000Z"),
        (datetime(2025, 1, 1, 12, 0, 0, 123, tzinfo=UTC), "2025-01-01T12:00:00.000123Z"),
        (datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2))), "2024-12-31T22:00:00.000000Z"),
        (datetime(2025, 1, 1), "2025-01-01T00:00:00.000000Z"),  # naive: taken as UTC
    ],
)
def test_instants_are_fixed_width_utc_text(moment: datetime, text: str) -> None:
    assert encode_time(moment) == text
    assert decode_time(text) == moment.replace(tzinfo=moment.tzinfo or UTC)


def test_encoded_instants_sort_as_the_instants() -> None:
    base = datetime(2025, 6, 1, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n * 999_983) for n in range(0, 5000, 37)]
    moments.append(datetime(2025, 6, 1, 3, tzinfo=timezone(timedelta(hours=5))))
    assert sorted(moments) == sorted(moments, key=encode_time)


def test_the_last_instant_remembered_never_answers_for_another() -> None:
    first = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    equal_elsewhere = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2025, 1, 1, 12, 0)
    later = first + timedelta(microseconds=1)
    expected = "2025-01-01T12:00:00.000000Z"
    for moment, text in [
        (first, expected),
        (first, expected),
        (equal_elsewhere, expected),
        (naive, expected),
        (later, "2025-01-01T12:00:00.000001Z"),
        (first, expected),
        (later, "2025-01-01T12:00:00.000001Z"),
    ]:
        assert encode_time(moment) == text


def test_json_is_compact_and_keeps_text_as_is() -> None:
    assert encode_json({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
    with pytest.raises(StorageError):
        encode_json({"a": object()})
