"""Errors as JSON: ``{"error": code, "message": text, ...}``, whatever raised them.

A storage failure of any kind (:class:`StorageError` and its subclasses) is a ``503`` with
``Retry-After``: nothing was done, and trying again later may work; never a ``500``. An
exception nobody expected is a ``500`` in the same JSON shape; Starlette's error middleware
then raises it again, and the server logs it with its traceback.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from service.api.query import BadQuery
from service.errors import (
    BudgetExceeded,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PriceUnknown,
    ProviderError,
    ProviderUnreachable,
    StorageError,
)

# Seconds a client is asked to wait before trying again after a storage failure: long enough
# for a restarted database or a released lock, short enough that a provider retrying on its
# own schedule is not told to wait for nothing.
STORAGE_RETRY_AFTER = 5


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def storage_unavailable(exc: StorageError) -> JSONResponse:
    """The answer to a request that a storage failure stopped (nothing of it was stored)."""
    answer = error_response(503, "storage_unavailable", str(exc))
    answer.headers["retry-after"] = str(STORAGE_RETRY_AFTER)
    return answer


def internal_error() -> JSONResponse:
    """The answer to a request that an unexpected error stopped (the error is logged apart)."""
    return error_response(500, "internal_error", "an unexpected error occurred; it is logged")


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidRequest)
    problems = [problem.as_dict() for problem in exc.problems]
    return error_response(422, "invalid_request", str(exc), problems=problems)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return error_response(409, "conflict", str(exc))


async def _over_budget(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BudgetExceeded)
    return error_response(402, "budget_exceeded", str(exc), **exc.as_dict())


async def _unpriced(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PriceUnknown)
    return error_response(
        422, "price_unknown", str(exc), provider=exc.provider, missing=exc.missing
    )


async def _not_configured(request: Request, exc: Exception) -> Response:
    return error_response(503, "not_configured", str(exc))


async def _provider(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProviderError)
    return error_response(502, "provider_error", str(exc), **exc.as_dict())


async def _unreachable(request: Request, exc: Exception) -> Response:
    return error_response(502, "provider_unreachable", str(exc))


async def _bad_query(request: Request, exc: Exception) -> Response:
    return error_response(400, "bad_request", str(exc))


async def _storage(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StorageError)
    return storage_unavailable(exc)


async def _disconnected(request: Request, exc: Exception) -> Response:
    # Nobody may be there to read it; but a body cut off by the server's read deadline ends
    # here too, and the server's guard answers that in its own words (service.http).
    return error_response(400, "client_disconnected", "the body was not received whole")


async def _unexpected(request: Request, exc: Exception) -> Response:
    return internal_error()


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    answer = error_response(exc.status_code, code, str(exc.detail))
    answer.headers.update(exc.headers or {})  # a 405's Allow, for one
    return answer


EXCEPTION_HANDLERS = {
    InvalidRequest: _invalid,
    NotFound: _not_found,
    Conflict: _conflict,
    BudgetExceeded: _over_budget,
    PriceUnknown: _unpriced,
    ConfigurationError: _not_configured,
    ProviderError: _provider,
    ProviderUnreachable: _unreachable,
    StorageError: _storage,
    BadQuery: _bad_query,
    HTTPException: _http,
    ClientDisconnect: _disconnected,
    Exception: _unexpected,  # Starlette's error middleware answers with it (then re-raises)
}
