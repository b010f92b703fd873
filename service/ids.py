"""Identifiers: a prefix and a time-ordered random part (ULID-like), so ids sort by creation."""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower-case


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 random chars (80 bits).

    Ids name things, they guard nothing (callback tokens come from ``secrets``), so the fast
    generator serves: seeded from the OS at start and again in every forked child."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base32(millis, 10)}{_base32(random.getrandbits(80), 16)}"
