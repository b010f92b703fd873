"""Ids are unique, url-safe, and sort by the time they were made."""

from __future__ import annotations

import re
import time

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
