"""Query parameters shared by the list endpoints: a status filter and a page size.

A bad value raises :class:`BadQuery`, answered as 400 ``bad_request`` with the reason.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from starlette.datastructures import QueryParams

from service.errors import OmnihookError

MAX_LIMIT = 200

_E = TypeVar("_E", bound=Enum)


class BadQuery(OmnihookError):
    """A query parameter with a value the endpoint cannot use."""


def enum_param(params: QueryParams, name: str, kind: type[_E]) -> _E | None:
    """The parameter as a member of ``kind``; None when absent."""
    if name not in params:
        return None
    try:
        return kind(params[name])
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise BadQuery(f"{name} must be one of {allowed}") from None


def limit_param(params: QueryParams, *, default: int = 50) -> int:
    """The page size, from 1 to :data:`MAX_LIMIT`."""
    try:
        limit = int(params.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit
