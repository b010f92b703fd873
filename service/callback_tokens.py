"""Callback tokens: the unguessable part of a task's callback URL.

The token itself goes out with a create and is never stored with the task (only its hash, which
the receiver matches); the ``submit`` job that sends a create keeps a copy in its payload, so
a create sent again goes with the same URL.
"""

from __future__ import annotations

import hashlib
import secrets

CALLBACK_TOKEN = "callback_token"  # the submit job's copy of its create's token


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
