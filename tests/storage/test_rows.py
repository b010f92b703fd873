"""The shared row mapping (storage.rows): every field of every record has its column, and a
value survives each backend's codec both ways."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from service.errors import StorageError
from storage import rows
from storage.postgres import rows as postgres_rows
from storage.rows import Table
from storage.sqlite import rows as sqlite_rows
from tests.factories import make_job, make_task

TABLES: list[Table[Any]] = [
    rows.TASKS,
    rows.VIDEOS,
    rows.EVENTS,
    rows.NOTIFICATIONS,
    rows.JOBS,
    rows.ENDPOINTS,
    rows.ENDPOINT_EVENTS,
    rows.DELIVERIES,
    rows.ATTEMPTS,
]


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.record.__name__)
def test_every_field_of_a_record_has_one_column_read_back(table: Table[Any]) -> None:
    fields = {field.name for field in dataclasses.fields(table.record)}
    read = [column.field for column in table.columns if column.read]
    assert sorted(read) == sorted(fields)
    assert len(set(table.names)) == len(table.names)


@pytest.mark.parametrize("table", [rows.TASKS, rows.ENDPOINTS], ids=["tasks", "endpoints"])
def test_the_version_is_last_for_compare_and_set(table: Table[Any]) -> None:
    assert table.names[0] == "id" and table.names[-1] == "version"


def test_sqlite_round_trip_keeps_the_record_and_stores_text_times() -> None:
    task = make_task(estimate={"amount": "0.1234567", "currency": "USD"})
    params = sqlite_rows.task_params(task)
    assert params["created_at"].endswith("Z") and params["estimated_micros"] == 123457
    columns = sqlite_rows.TASK_COLUMNS
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.row_factory = sqlite3.Row
        conn.execute(f"CREATE TABLE tasks ({columns})")
        conn.execute(f"INSERT INTO tasks VALUES ({sqlite_rows.placeholders(columns)})", params)
        row = conn.execute(f"SELECT {columns} FROM tasks").fetchone()
    assert sqlite_rows.task_from_row(row) == task


def test_a_naive_time_is_taken_as_utc_and_an_offset_one_converted() -> None:
    naive = make_job(run_at=datetime(2026, 1, 1, 12, 0))
    east = make_job(run_at=datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    columns = sqlite_rows.JOB_COLUMNS.split(", ")
    at = columns.index("run_at")
    assert sqlite_rows.job_row(naive)[at] == sqlite_rows.job_row(east)[at]
    assert postgres_rows.job_args(naive)[at] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_postgres_writes_native_values_and_the_amount_as_a_decimal() -> None:
    task = make_task(estimate={"amount": 2.5, "currency": "USD"})
    values = dict(zip(postgres_rows.TASK_COLUMNS, postgres_rows.task_args(task), strict=True))
    assert values["created_at"] == task.created_at
    assert values["estimated_amount"] == Decimal("2.5")
    assert isinstance(values["request"], str)  # JSON encoded before the query is sent


def test_an_estimate_without_a_number_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="not a number"):
        sqlite_rows.task_params(make_task(estimate={"amount": "lots"}))
    assert (
        sqlite_rows.task_params(make_task(estimate={"currency": "USD"}))["estimated_micros"] is None
    )
