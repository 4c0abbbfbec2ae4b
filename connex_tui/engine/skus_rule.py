"""The one SKU rule, as plain functions (no database), shared by Python code and SQLite.

Two SKUs are the same when they are equal after trimming. Without such an exact match, they match
when equal after Unicode case folding (`sku_key`), but only where that is unambiguous: exactly one
candidate folds to the key, and nothing else claims it exactly. Nothing is ever transliterated: an
en dash, a fullwidth letter or a Kelvin sign is what it is (the Kelvin sign does fold to "k", as
Unicode says, so "KIT" with one matches "KIT" only when nothing else could).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def sku_key(sku: str) -> str:
    """What two SKUs are compared by when case does not count: trimmed and Unicode case-folded
    (``"ÉCLAIR"`` and ``"éclair"`` agree). SQLite's lower() folds ASCII only, so keys are
    computed here and stored, never derived with lower() in SQL."""
    return sku.strip().casefold()


def sql_sku_key(value: object) -> str | None:
    """`sku_key` for SQLite (registered as the SQL function ``sku_key``); NULL stays NULL."""
    return None if value is None else sku_key(str(value))


def matches(sku: str, candidates: Sequence[T], value: Callable[[T], str]) -> tuple[list[T], bool]:
    """The candidates `sku` matches and whether the match is exact: those equal to it after
    trimming, else those equal after case folding. More than one is for the caller to report."""
    wanted = sku.strip()
    exact = [c for c in candidates if value(c).strip() == wanted]
    if exact:
        return exact, True
    key = sku_key(sku)
    return [c for c in candidates if sku_key(value(c)) == key], False
