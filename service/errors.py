"""The one exception tree of omnihook.

Everything omnihook raises on purpose derives from :class:`OmnihookError`. Foreign exceptions
(sqlite3, asyncpg, httpx, pydantic) are translated where they enter our code, with
``raise Ours(...) from exc``, so callers never have to know which library sat underneath.

    OmnihookError
    ├── ConfigurationError        a setting is missing or malformed
    ├── InvalidRequest            a submission breaks the rules of the Omni Video API (422)
    ├── NotFound                  no such task, video, webhook... (404)
    ├── Conflict                  e.g. a duplicate ``external_task_id`` (409)
    ├── BudgetExceeded            a submission would take a budget past its limit (402)
    ├── PriceUnknown              the price table has no rate for a request (model, mode...)
    ├── StorageError              the database failed or is unreachable
    │   └── StorageUnavailable        cannot reach it / connection lost / locked: try again
    ├── ProviderError             the provider answered with an error code
    │   ├── ProviderAuthError         1000-1004: credentials refused
    │   ├── ProviderRejected          the request was refused for good (1100-1304 but 1302/1303)
    │   └── ProviderRetryable         worth trying again later (1302, 1303, 5000-5002)
    ├── ProviderUnreachable       no answer at all: timeout, reset, DNS (the outcome is unknown)
    ├── NotificationInvalid       a callback body we cannot read
    └── DownloadError             a video could not be fetched or stored
        └── DownloadRetryable         ...but trying again may work
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from service.costs.amounts import decimal_text


class OmnihookError(Exception):
    """Base of every error omnihook raises on purpose."""


class ConfigurationError(OmnihookError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Problem:
    """One broken rule of a request: where (a dotted field path) and what."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidRequest(OmnihookError):
    """A request breaks one or more rules; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
        super().__init__(f"invalid request: {summary}")


class NotFound(OmnihookError):
    """The named resource does not exist."""


class Conflict(OmnihookError):
    """The request conflicts with what is stored (e.g. a duplicate external_task_id)."""


class BudgetExceeded(OmnihookError):
    """A submission's estimate would take a budget past its limit; nothing was sent.

    ``spent`` is what the budget's window already holds (see :mod:`service.costs.budgets`),
    ``estimate`` what this submission would add; the amounts are in ``currency``.
    """

    def __init__(
        self,
        *,
        budget: str,
        window: str,
        limit: Decimal,
        spent: Decimal,
        estimate: Decimal,
        currency: str,
    ) -> None:
        self.budget = budget
        self.window = window
        self.limit = limit
        self.spent = spent
        self.estimate = estimate
        self.currency = currency
        super().__init__(
            f"budget {budget} ({window}) would be exceeded: {decimal_text(spent)} spent"
            f" + {decimal_text(estimate)} estimated > {decimal_text(limit)} {currency}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: amounts as decimal strings, never floats."""
        return {
            "budget": self.budget,
            "window": self.window,
            "limit": decimal_text(self.limit),
            "spent": decimal_text(self.spent),
            "estimate": decimal_text(self.estimate),
            "currency": self.currency,
        }


class PriceUnknown(OmnihookError):
    """The price table cannot price a request: no rate for its model, mode or options.

    ``missing`` names what is absent (e.g. ``"kling-video-o1 mode 4k"``), so the message tells
    which entry to add to the ``OMNIHOOK_PRICE_TABLE`` file.
    """

    def __init__(self, provider: str, missing: str) -> None:
        self.provider = provider
        self.missing = missing
        super().__init__(
            f"the {provider} price table has no rate for {missing};"
            " add one in the OMNIHOOK_PRICE_TABLE file"
        )


class StorageError(OmnihookError):
    """The database failed; the operation did not happen (its transaction was rolled back)."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or its connection was lost (or its write lock stayed
    held, or its file is gone): transient, try again."""


class ProviderError(OmnihookError):
    """The provider answered, with an error code of kling-api.md §4."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.provider_message = message
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(f"provider error {code}: {message}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider_code": self.code,
            "provider_message": self.provider_message,
            "provider_request_id": self.request_id,
        }


class ProviderAuthError(ProviderError):
    """The provider refused our credentials (1000-1004)."""


class ProviderRejected(ProviderError):
    """The provider refused the request for good; sending it again will not help."""


class ProviderRetryable(ProviderError):
    """The provider is busy or failing (1302, 1303, 5000-5002): try again after a while."""


class ProviderUnreachable(OmnihookError):
    """No usable answer: timeout, connection reset, DNS failure, unreadable body.

    The outcome is unknown: a create may or may not have been accepted.
    """


class NotificationInvalid(OmnihookError):
    """A callback body that cannot be read as a task notification."""


class DownloadError(OmnihookError):
    """A video could not be downloaded or stored; trying again will not help."""


class DownloadRetryable(DownloadError):
    """A video could not be downloaded now; a later attempt may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
