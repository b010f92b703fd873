"""The ``OMNIHOOK_PRICE_TABLE`` file: the default tables, with the file's in their place.

The file is a JSON object of provider name -> table
(:class:`~service.costs.price_table.PriceTable`); every mistake is reported with the file's path
and the field's dotted path.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from service.costs.default_prices import DEFAULT_PRICE_TABLES
from service.costs.price_table import PriceTable
from service.errors import ConfigurationError
from service.settings import ProviderKind


class _PriceFile(BaseModel):
    """The file: provider name -> its whole table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: dict[ProviderKind, PriceTable]


def load_price_tables(path: Path | None) -> dict[str, PriceTable]:
    """The default tables, with those the file at ``path`` gives in their place.

    ConfigurationError names the file and each bad field (``kling.models.x.rates.std.plain``).
    """
    tables = dict(DEFAULT_PRICE_TABLES)
    if path is None:
        return tables
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"OMNIHOOK_PRICE_TABLE {path}: cannot be read ({exc.strerror or exc})"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigurationError(f"OMNIHOOK_PRICE_TABLE {path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ConfigurationError(
            f"OMNIHOOK_PRICE_TABLE {path}: must be a JSON object of provider name -> table"
        )
    try:
        parsed = _PriceFile.model_validate({"tables": document})
    except ValidationError as exc:
        lines = [f"{_field_path(error['loc'][1:])}: {error['msg']}" for error in exc.errors()]
        raise ConfigurationError(
            f"OMNIHOOK_PRICE_TABLE {path}: invalid price table:\n  " + "\n  ".join(lines)
        ) from None
    for provider, table in parsed.tables.items():
        tables[provider] = table
    return tables


def _field_path(loc: tuple[int | str, ...]) -> str:
    """``kling.models.m.rates.8k`` for a value, with `` (the name)`` when the key is wrong."""
    parts = [str(part) for part in loc]
    if parts and parts[-1] == "[key]":
        return ".".join(parts[:-1]) + " (the name)"
    return ".".join(parts) or "(top)"


def price_table_for(provider: str, path: Path | None = None) -> PriceTable:
    """The table of ``provider`` (an ``OMNIHOOK_PROVIDER`` value), the file's if it has one."""
    tables = load_price_tables(path)
    try:
        return tables[provider]
    except KeyError:
        raise ConfigurationError(
            f"no price table for provider {provider!r}; known: {', '.join(tables)}"
        ) from None
