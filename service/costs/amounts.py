"""Money and units as exact decimals: read from settings and files, written as plain text.

Prices, estimates and budgets are ``Decimal`` throughout, never floats: a budget compares sums
of many small rates, and ``0.1 + 0.2`` must be ``0.3``. JSON carries them as strings.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["decimal_text", "parse_amount"]


def decimal_text(amount: Decimal) -> str:
    """Fixed-point text without an exponent or trailing zeros: ``"10"``, ``"0.3165"``."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_amount(text: str) -> Decimal:
    """A finite, non-negative decimal from text; ``ValueError`` saying why otherwise."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if amount < 0:
        raise ValueError(f"{text!r} is negative")
    return amount
