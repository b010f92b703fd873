"""Ids are unique, url-safe, and sort by the time they were made."""

from __future__ import annotations

import base64
import random
import re
import time

import pytest

from service.ids import new_id


def test_ids_are_unique_and_url_safe() -> None:
    ids = [new_id("evt") for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"evt_[0-9a-v]{26}", i) for i in ids)


def test_ids_sort_by_creation_time() -> None:
    earlier = new_id("task")
    time.sleep(0.002)
    later = new_id("task")
    assert earlier < later


def test_ids_spell_base32hex_so_old_and_new_ids_sort_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ids already stored were made with base64.b32hexencode: the same value spells the same id.
    for value in (0, 1, (1 << 128) - 1, 0x0123456789ABCDEF0123456789ABCDEF):
        millis, bits = value >> 80, value & ((1 << 80) - 1)
        monkeypatch.setattr(time, "time_ns", lambda millis=millis: millis * 1_000_000)
        monkeypatch.setattr(random, "getrandbits", lambda _n, bits=bits: bits)
        expected = base64.b32hexencode(value.to_bytes(16, "big"))[:26].decode().lower()
        assert new_id("job") == f"job_{expected}"
