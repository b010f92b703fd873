"""Copies in and out of the in-memory backend, JSON-checked as the SQL backends would."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import TypeVar

from service.errors import StorageError

_R = TypeVar("_R")


def json_copy(value: _R) -> _R:
    # A round trip through JSON, as the SQL backends do: a value they could not store
    # fails here too instead of passing the fast tests and breaking in production.
    try:
        copied: _R = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise StorageError(f"value is not JSON-serialisable: {exc}") from exc
    return copied


def stored(record: _R, *json_fields: str) -> _R:
    """A private copy of ``record`` to keep, its JSON fields normalised."""
    fresh = copy.deepcopy(record)
    for name in json_fields:
        setattr(fresh, name, json_copy(getattr(fresh, name)))
    return fresh


def out(records: Iterable[_R]) -> list[_R]:
    return [copy.deepcopy(record) for record in records]
