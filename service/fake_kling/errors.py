"""The provider's error codes (kling-api.md §4) and the one exception that carries them.

Anything the simulated API refuses raises :class:`KlingError`; the active profile turns it into
the wire envelope with the HTTP status of the §4 table.
"""

from __future__ import annotations

# code -> (HTTP status, Kling-like message)
ERROR_CODES: dict[int, tuple[int, str]] = {
    1000: (401, "Authentication failed"),
    1001: (401, "Authorization is empty"),
    1002: (401, "Authorization is invalid"),
    1003: (401, "Authorization is not yet valid"),
    1004: (401, "Authorization has expired"),
    1100: (429, "Account exception"),
    1101: (429, "Account in arrears (postpaid scenario)"),
    1102: (429, "Resource pack depleted or expired (prepaid scenario)"),
    1103: (403, "Unauthorized access to requested resource, such as API/model"),
    1200: (400, "Invalid request parameters"),
    1201: (400, "Invalid parameters, such as incorrect key or illegal value"),
    1202: (404, "The requested method is invalid"),
    1203: (404, "The requested resource does not exist, such as the model"),
    1300: (400, "Trigger strategy of the platform"),
    1301: (400, "Trigger the content security policy of the platform"),
    1302: (429, "The API request is too fast, exceeding the platform's rate limit"),
    1303: (429, "parallel task over resource pack limit"),
    1304: (429, "Trigger the platform's IP whitelisting policy"),
    5000: (500, "Server internal error"),
    5001: (503, "Server temporarily unavailable, usually due to maintenance"),
    5002: (504, "Server internal timeout, usually due to a backlog"),
}


class KlingError(Exception):
    """A refusal with one of Kling's codes; ``message`` defaults to the code's own text."""

    def __init__(self, code: int, message: str | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown Kling error code {code}")
        self.code = code
        self.http_status, default = ERROR_CODES[code]
        self.message = message if message is not None else default
        super().__init__(f"{code}: {self.message}")


def invalid(field: str, problem: str) -> KlingError:
    """A 1201 naming the offending field, the way Kling words parameter errors."""
    return KlingError(1201, f"Invalid parameter {field}: {problem}")
