"""Identifiers: a prefix and a time-ordered random part (ULID-like), so ids sort by creation."""

from __future__ import annotations

import base64
import random
import time


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 base32hex characters: 48 bits of milliseconds, then 80 random bits.

    base32hex keeps byte order, so ids of one prefix sort by the time they were made. Ids name
    things, they guard nothing (callback tokens come from ``secrets``), so the fast generator
    serves: seeded from the OS at start and again in every forked child."""
    raw = ((time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)).to_bytes(16, "big")
    return f"{prefix}_{base64.b32hexencode(raw)[:26].decode().lower()}"
