"""Identifiers: a prefix and a time-ordered random part (ULID-like), so ids sort by creation."""

from __future__ import annotations

import random
import time

_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"  # RFC 4648 base32hex, lower case
# Every pair of digits (10 bits): 13 lookups spell an id. ``base64.b32hexencode`` spells the
# same text, but it is pure Python and was a tenth of the callback receiver's time.
_PAIRS = tuple(high + low for high in _BASE32HEX for low in _BASE32HEX)
_SHIFTS = tuple(range(120, -1, -10))


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 base32hex characters: 48 bits of milliseconds, then 80 random bits.

    base32hex keeps byte order, so ids of one prefix sort by the time they were made. Ids name
    things, they guard nothing (callback tokens come from ``secrets``), so the fast generator
    serves: seeded from the OS at start and again in every forked child."""
    value = (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)
    value <<= 2  # 128 bits spelled as 26 digits of 5 bits: the last digit's low 2 bits are 0
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS])
