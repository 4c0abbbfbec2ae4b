"""Numbers from a store or QuickBooks, checked where they enter the engine.

Everything a store or QuickBooks sends is untrusted: a plugin, a proxy or a person can put NaN,
Infinity, a fraction, a word or 10**30 where a count belongs. Each check here either returns a
value the engine can store and compute with, or raises `BadNumber` with a sentence naming what
was wrong, so the one item that carried it fails with that reason and the rest goes on.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

# Stock counts: Shopify and BigCommerce cap a location's quantity at 2,147,483,647 (a 32-bit int;
# /work/shared/reference/storefronts.md, "Per-location maximum is 2,147,483,647"); WooCommerce
# stores stock as a MySQL double but nobody keeps more than a billion of one SKU on a shelf.
STOCK_LIMIT = 2_147_483_647
# One order line: far above any real order, far below what would overflow QuickBooks' quantity.
LINE_QUANTITY_LIMIT = Decimal(1_000_000)
LINE_QUANTITY_PLACES = 5  # QuickBooks keeps quantities to 5 decimal places
SHOWN = 40  # characters of a bad value quoted in a reason


class BadNumber(ValueError):
    """A value that is not the number it should be; the message says why, for a person."""


def shown(value: object) -> str:
    """A bad value as quoted in a reason: repr-like, one line, bounded."""
    text = repr(str(value)) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise BadNumber(f"{what} is {shown(value)}, not a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadNumber(f"{what} is {shown(value)}, not a finite number")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > 64:
            raise BadNumber(f"{what} is {shown(value)}, not a number")
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise BadNumber(f"{what} is {shown(value)}, not a number") from None
    else:
        raise BadNumber(f"{what} is {shown(value)}, not a number")
    if not number.is_finite():
        raise BadNumber(f"{what} is {shown(value)}, not a finite number")
    return number


def whole_number(value: object, what: str, *, low: int = -STOCK_LIMIT, high: int = STOCK_LIMIT) -> int:
    """An integral count within [low, high]; 7.0 and "7" are 7, 7.5 and NaN are refused."""
    number = _decimal(value, what)
    if number != number.to_integral_value():
        raise BadNumber(f"{what} is {shown(value)}, not a whole number")
    if not low <= number <= high:
        raise BadNumber(f"{what} is {shown(value)}, outside {low:,} to {high:,}")
    return int(number)


def stock_level(value: object, what: str) -> int:
    """A quantity QuickBooks reports, as the whole units a store can show: a fraction is rounded
    down and a negative (sold before it was received) shows as 0; NaN, Infinity, words and
    counts beyond STOCK_LIMIT are refused."""
    number = _decimal(value, what)
    if abs(number) > STOCK_LIMIT:
        raise BadNumber(f"{what} is {shown(value)}, outside -{STOCK_LIMIT:,} to {STOCK_LIMIT:,}")
    return max(int(number), 0)


def line_quantity(value: object, what: str) -> Decimal:
    """An order or refund line's quantity: finite, at most LINE_QUANTITY_LIMIT either way, and
    with no more decimal places than QuickBooks keeps. Zero and negatives pass (the caller
    decides what they mean)."""
    number = _decimal(value, what)
    if abs(number) > LINE_QUANTITY_LIMIT:
        raise BadNumber(f"{what} is {shown(value)}, more than {LINE_QUANTITY_LIMIT:,} units")
    exponent = number.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -LINE_QUANTITY_PLACES
        and number != number.quantize(Decimal(1).scaleb(-LINE_QUANTITY_PLACES))
    ):
        raise BadNumber(f"{what} is {shown(value)}, finer than QuickBooks' {LINE_QUANTITY_PLACES} decimal places")
    return number


def money(value: object, what: str) -> Decimal:
    """A price: finite and within what a till could ring up."""
    number = _decimal(value, what)
    if abs(number) > Decimal(10) ** 12:
        raise BadNumber(f"{what} is {shown(value)}, not a plausible price")
    return number
