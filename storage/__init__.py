"""Durable state of omnihook behind one interface (:class:`storage.base.Storage`)."""

from __future__ import annotations

from storage.base import Storage
from storage.factory import create_storage

__all__ = ["Storage", "create_storage"]
