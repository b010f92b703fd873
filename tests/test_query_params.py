"""The list endpoints' shared query parameters."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from service.api.query import MAX_LIMIT, BadQuery, enum_param, limit_param
from storage.records import TaskStatus


def test_a_status_filter_is_parsed_or_refused_with_the_allowed_values() -> None:
    assert enum_param(QueryParams(""), "status", TaskStatus) is None
    assert enum_param(QueryParams("status=failed"), "status", TaskStatus) == TaskStatus.FAILED
    with pytest.raises(BadQuery, match="status must be one of queued, pending, submitted"):
        enum_param(QueryParams("status=lost"), "status", TaskStatus)


@pytest.mark.parametrize("text", ["limit=0", f"limit={MAX_LIMIT + 1}", "limit=ten", "limit=1.5"])
def test_a_bad_page_size_is_refused(text: str) -> None:
    with pytest.raises(BadQuery, match="limit must be a whole number"):
        limit_param(QueryParams(text))


def test_page_size_default_and_bounds() -> None:
    assert limit_param(QueryParams("")) == 50
    assert limit_param(QueryParams(f"limit={MAX_LIMIT}")) == MAX_LIMIT
