"""Numbers from a store's answers, read once for both store clients.

A store's JSON is untrusted: a count may arrive as NaN, an infinity, a fraction, a bool or a
word, an amount as anything at all. `whole` and `amount` decide what a value is; each client
words its own error (its messages name the store's fields and are part of what it reports) and
applies its own bounds (`MAX_AMOUNT` is shared). A value that fails makes the client raise
`BadValue`, which fails the one order, refund or catalog entry holding it.
"""

from __future__ import annotations

import enum
import math
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_AMOUNT = Decimal(10) ** 12  # more money than any one order line holds: a corrupt value


class BadValue(ValueError):
    """A value in a store's answer that cannot be what the store documents; the message names
    the value and where it was."""


class Flaw(enum.Enum):
    """Why a value is not the number asked for."""

    NOT_A_NUMBER = "not a number"  # a bool, None, a list, a word, ...
    NOT_FINITE = "not finite"  # NaN or an infinity
    FRACTION = "a fraction"  # a number with a fractional part where a whole one belongs


def whole(value: Any, *, digit_strings: bool = False) -> int | Flaw:
    """`value` as an int when it is exactly a whole number: an int (never a bool) or a finite
    float with no fraction; with `digit_strings`, also a string of at most 20 ASCII digits with
    an optional sign, blanks around it allowed (WooCommerce's meta values are strings)."""
    if isinstance(value, bool):
        return Flaw.NOT_A_NUMBER
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return Flaw.NOT_FINITE
        return int(value) if value.is_integer() else Flaw.FRACTION
    if digit_strings and isinstance(value, str) and _is_digits(value.strip()):
        return int(value.strip())
    return Flaw.NOT_A_NUMBER


def _is_digits(text: str) -> bool:
    """Digits (ASCII only: int() would take "٣"), an optional sign, at most 20 of them."""
    digits = text[1:] if text[:1] in "+-" else text
    return 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit()


def amount(value: Any) -> Decimal | Flaw:
    """`value` as a finite Decimal when it is a str, an int or a float (never a bool) that reads
    as one (Decimal's own syntax: blanks around it are ignored)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return Flaw.NOT_A_NUMBER
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):  # ValueError: an int too long for str()
        return Flaw.NOT_A_NUMBER
    return number if number.is_finite() else Flaw.NOT_FINITE
