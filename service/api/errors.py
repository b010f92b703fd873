"""Errors as JSON: ``{"error": code, "message": text, ...}``, whatever raised them."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.query import BadQuery
from service.errors import (
    ConfigurationError,
    Conflict,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderUnreachable,
    StorageError,
)


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidRequest)
    problems = [problem.as_dict() for problem in exc.problems]
    return error_response(422, "invalid_request", str(exc), problems=problems)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return error_response(409, "conflict", str(exc))


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
    return error_response(503, "storage_unavailable", str(exc))


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
    ConfigurationError: _not_configured,
    ProviderError: _provider,
    ProviderUnreachable: _unreachable,
    StorageError: _storage,
    BadQuery: _bad_query,
    HTTPException: _http,
}
