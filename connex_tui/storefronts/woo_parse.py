"""WooCommerce REST v3 documents turned into the storefront values, one item at a time.

Everything here is pure (no I/O), so recorded answers can be fed to it directly in tests. A value
that cannot be what WooCommerce documents (NaN, Infinity, a fraction or a word where a count
belongs, a number too large to be real) fails the one item it is in (an order, a product) with a
reason naming the item and the field; the rest of the page goes on.

Where WooCommerce keeps what (its source, plugins/woocommerce/includes/):

* ``wc-stock-functions.php`` ``wc_reduce_stock_levels``: an order taking stock sets its line item's
  meta ``_reduced_stock`` to the line's quantity; ``wc_increase_stock_levels`` (an order becoming
  cancelled or pending) puts that many back and *deletes* the meta.
* ``wc-order-functions.php`` ``wc_restock_refunded_items``: a refund with restock lowers
  ``_reduced_stock`` (kept, even at 0) and raises ``_restock_refunded_items`` on the *order's*
  line item, a running total. The refund itself records nothing about stock: its line items carry
  only ``_refunded_item_id`` (``wc_create_refund``), and ``api_restock`` is a write-only argument
  (``WC_REST_Order_Refunds_Controller`` schema, context "edit").
* The REST API returns all of an order line's meta, ``_`` keys included
  (``WC_REST_Orders_V2_Controller::get_order_item_data``), values as stored (strings).
* ``WC_Product_Variation::get_sku`` / ``get_manage_stock`` / ``get_stock_quantity`` (view
  context): a variation without a SKU shows its parent's; one without stock of its own while the
  parent has some shows ``manage_stock: "parent"`` and the parent's quantity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import numbers
from .base import CatalogEntry, StoreLine, StoreOrder, StoreRefund, as_utc
from .numbers import BadValue as BadValue  # re-exported: callers catch woo_parse.BadValue

MAX_UNITS = 10**9  # more units than any shop holds: a corrupt value, not a count
MAX_ID = 2**63 - 1  # WordPress ids are BIGINT UNSIGNED; SQLite and Python agree up to here
REDUCED = "_reduced_stock"
RESTOCKED = "_restock_refunded_items"
REFUNDED_ITEM = "_refunded_item_id"
CANCEL_REFUND_ID = "cancel"


class BadNumber(str):
    """What the JSON decoder makes of NaN, Infinity and integers too long to be real, so the
    one item holding them fails instead of the page (see `JSON_HOOKS`). A string, so an order
    holding one can still be kept (its raw JSON written back) with its problem."""

    def __new__(cls, text: str) -> BadNumber:  # noqa: PYI034 - str's __new__, shortened
        return super().__new__(cls, text if len(text) <= 24 else text[:20] + "…")

    @property
    def text(self) -> str:
        return str.__str__(self)


def _parse_int(text: str) -> int | BadNumber:
    return int(text) if len(text) <= 20 else BadNumber(text)


def _parse_float(text: str) -> float | BadNumber:
    value = float(text)
    return value if math.isfinite(value) else BadNumber(text)


JSON_HOOKS: dict[str, Any] = {
    "parse_constant": BadNumber,
    "parse_int": _parse_int,
    "parse_float": _parse_float,
}


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, BadNumber) else value.text
    return text if len(text) <= 40 else text[:39] + "…"


def count(value: Any, what: str, *, minimum: int = 0) -> int:
    """A whole number of units (or an id): an int, an integral float, or such a string (meta
    values are strings). Anything else is a BadValue naming `what`."""
    number = numbers.whole(value, digit_strings=True)
    if isinstance(number, numbers.Flaw) or not minimum <= number <= MAX_UNITS:
        raise BadValue(f"{what} is {_shown(value)}, not a whole number between {minimum} and {MAX_UNITS}")
    return number


def identifier(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID:
        return int(value)
    raise BadValue(f"{what} is {_shown(value)}, not a WooCommerce id")


def money(value: Any, what: str) -> Decimal | None:
    """A price or total: a finite decimal of sane size (below `numbers.MAX_AMOUNT`); None when
    absent."""
    if value is None or value == "":
        return None
    amount = numbers.Flaw.NOT_A_NUMBER if isinstance(value, BadNumber) else numbers.amount(value)
    if isinstance(amount, numbers.Flaw) or abs(amount) >= numbers.MAX_AMOUNT:
        raise BadValue(f"{what} is {_shown(value)}, not an amount")
    return amount


def text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a numeric SKU typed into a plugin's field
    raise BadValue(f"{what} is {_shown(value)}, not text")


def meta(item: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(present, value) of a meta key in an item's ``meta_data``."""
    rows = item.get("meta_data")
    if not isinstance(rows, list):
        return False, None
    for row in rows:
        if isinstance(row, dict) and row.get("key") == key:
            return True, row.get("value")
    return False, None


def parse_gmt(value: Any) -> datetime | None:
    """WooCommerce's *_gmt fields: "2017-03-22T19:28:08", no offset, UTC."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11+ reads a trailing Z too
    except ValueError:
        return None
    return as_utc(parsed)


def iso(value: Any) -> str:
    parsed = parse_gmt(value)
    return parsed.isoformat() if parsed is not None else ""


# ---------------------------------------------------------------------- orders


@dataclass(frozen=True)
class _OrderLine:
    item_id: int | None
    line: StoreLine
    restocked: int  # _restock_refunded_items: units refunds put back, a running total
    still_reduced: bool  # _reduced_stock is present (a cancel deletes it when it puts stock back)


def _order_line(number: int, item: Any) -> _OrderLine:
    where = f"line {number}"
    if not isinstance(item, dict):
        raise BadValue(f"{where} is not an object")
    sku = text(item.get("sku"), f"{where}: sku")
    where = f"line {number} ({sku})" if sku else where
    quantity = count(item.get("quantity"), f"{where}: quantity")
    price = money(item.get("price"), f"{where}: price")
    raw_id = item.get("id")
    item_id = identifier(raw_id, f"{where}: id") if raw_id is not None else None
    present, restocked = meta(item, RESTOCKED)
    restocked_units = count(restocked, f"{where}: {RESTOCKED}") if present else 0
    reduced_present, reduced = meta(item, REDUCED)
    if reduced_present:
        count(reduced, f"{where}: {REDUCED}", minimum=-MAX_UNITS)  # only its presence matters; still checked
    return _OrderLine(
        item_id,
        StoreLine(sku=sku, quantity=Decimal(quantity), price=price, name=text(item.get("name"), f"{where}: name")),
        restocked_units,
        reduced_present,
    )


def _refund_takes(refund: dict[str, Any], number: int) -> tuple[str, str, list[tuple[int, int]]]:
    """(refund id, created, [(order line item id, units refunded)])."""
    refund_id = identifier(refund.get("id"), f"refund {number}: id")
    takes = []
    for position, line in enumerate(refund.get("line_items") or [], start=1):
        where = f"refund {refund_id} line {position}"
        if not isinstance(line, dict):
            raise BadValue(f"{where} is not an object")
        present, item = meta(line, REFUNDED_ITEM)
        if not present:
            continue  # a fee or shipping line, or a plugin's: no order line to restock
        units = count(line.get("quantity"), f"{where}: quantity", minimum=-MAX_UNITS)
        takes.append((identifier(item, f"{where}: {REFUNDED_ITEM}"), abs(units)))
    return str(refund_id), iso(refund.get("date_created_gmt")), takes


def restocks(lines: list[_OrderLine], refunds: Iterable[dict[str, Any]]) -> list[StoreRefund]:
    """The order's restocks, one entry per refund that put units back.

    WooCommerce keeps only each line's running total; which refund restocked it is not stored. The
    total grows only when a refund is made (``wc_create_refund`` restocks right after saving it),
    so it is shared out over the refunds of that line newest first, each taking at most what it
    refunded: an increase read soon after it happened lands on the refund that caused it. What is
    left (a total larger than the refunds explain) goes to the newest too. The engine posts per
    order only what its credit memos do not cover yet, so a total that grows is posted once,
    whichever refund it is put against."""
    by_item = {line.item_id: line for line in lines if line.item_id is not None}
    parsed = sorted((_refund_takes(r, n) for n, r in enumerate(refunds, start=1)), key=lambda r: (r[1], int(r[0])))
    left = {item_id: line.restocked for item_id, line in by_item.items()}
    shares: dict[str, dict[int, int]] = {}
    last: dict[int, str] = {}
    for refund_id, _, takes in reversed(parsed):
        for item_id, units in takes:
            if item_id not in left:
                continue
            share = min(units, left[item_id])
            left[item_id] -= share
            last.setdefault(item_id, refund_id)  # the newest refund of that line
            if share:
                shares.setdefault(refund_id, {})[item_id] = shares.get(refund_id, {}).get(item_id, 0) + share
    for item_id, rest in left.items():
        if rest > 0 and item_id in last:
            bucket = shares.setdefault(last[item_id], {})
            bucket[item_id] = bucket.get(item_id, 0) + rest
    result = []
    for refund_id, created, _ in parsed:
        units_by_item = shares.get(refund_id, {})
        entry_lines = tuple(
            StoreLine(by_item[i].line.sku, Decimal(u), by_item[i].line.price, by_item[i].line.name)
            for i, u in units_by_item.items()
            if u > 0 and by_item[i].line.sku
        )
        result.append(StoreRefund(refund_id, entry_lines, created))
    return result


def cancel_restock(order: dict[str, Any], lines: list[_OrderLine]) -> StoreRefund | None:
    """A cancelled order's stock coming back (``wc_increase_stock_levels``): no refund records it.
    A line whose ``_reduced_stock`` is gone had its remaining units put back: its quantity less
    what refunds restocked before. A line that still has the meta (its product stopped managing
    stock, or was deleted) got nothing back."""
    if str(order.get("status") or "") != "cancelled":
        return None
    back = tuple(
        StoreLine(line.line.sku, line.line.quantity - line.restocked, line.line.price, line.line.name)
        for line in lines
        if line.line.sku and not line.still_reduced and line.line.quantity - line.restocked > 0
    )
    return StoreRefund(CANCEL_REFUND_ID, back, iso(order.get("date_modified_gmt"))) if back else None


def customer(order: dict[str, Any]) -> str:
    billing = order.get("billing") if isinstance(order.get("billing"), dict) else {}
    assert isinstance(billing, dict)
    names = [str(billing.get(key) or "").strip() for key in ("first_name", "last_name")]
    name = " ".join(n for n in names if n)
    return name or str(billing.get("company") or "").strip() or str(billing.get("email") or "").strip()


def order(o: dict[str, Any], refunds: list[dict[str, Any]]) -> StoreOrder:
    """One order (and its refunds, as ``GET orders/{id}/refunds`` lists them). A value that
    cannot be right gives the order a `problem` and no lines, never an exception."""
    number = str(o.get("number") or o.get("id"))
    try:
        items = o.get("line_items") or []
        if not isinstance(items, list):
            raise BadValue("line_items is not a list")
        lines = [_order_line(n, item) for n, item in enumerate(items, start=1)]
        entries = restocks(lines, refunds)
        cancelled = cancel_restock(o, lines)
    except BadValue as exc:
        return _order_data(o, number, (), (), f"WooCommerce order {number}: {exc}")
    if cancelled is not None:
        entries.append(cancelled)
    return _order_data(o, number, tuple(line.line for line in lines), tuple(entries), "")


def _order_data(
    o: dict[str, Any], number: str, lines: tuple[StoreLine, ...], refunds: tuple[StoreRefund, ...], problem: str
) -> StoreOrder:
    status = str(o.get("status") or "")
    return StoreOrder(
        store_id=str(o.get("id")),
        number=number,
        status=status,
        modified_at=iso(o.get("date_modified_gmt")),
        lines=lines,
        created_at=iso(o.get("date_created_gmt")),
        customer=customer(o),
        cancelled=status == "cancelled",
        refunds=refunds,
        raw=o,
        problem=problem,
    )


# ---------------------------------------------------------------------- catalog


CATALOG_FIELDS = ("id", "sku", "type", "variations", "manage_stock", "stock_quantity")


def catalog_fields(row: dict[str, Any]) -> dict[str, Any]:
    """What the SKU index needs of a product or variation (a full product is ~2.6 KB of JSON)."""
    return {key: row[key] for key in CATALOG_FIELDS if key in row}


def product_entry(row: dict[str, Any]) -> CatalogEntry | None:
    """A simple or variable product; None without a SKU. A value that cannot be right gives the
    entry a `problem` (its pushes fail with it)."""
    try:
        sku = text(row.get("sku"), "sku").strip()
    except BadValue:
        return None
    if not sku:
        return None
    try:
        item_id = str(identifier(row.get("id"), f"product with SKU {sku}: id"))
    except BadValue as exc:
        return CatalogEntry(sku=sku, item_id="", managed=False, problem=str(exc))
    return _stock_entry(sku, item_id, None, row.get("manage_stock") is True, row.get("stock_quantity"))


def _stock_entry(sku: str, item_id: str, parent: str | None, managed: bool, quantity: Any) -> CatalogEntry:
    if not managed:
        return CatalogEntry(sku=sku, item_id=item_id, parent_id=parent, quantity=None, managed=False)
    try:
        stock = None if quantity is None else count(quantity, f"{sku}: stock_quantity", minimum=-MAX_UNITS)
    except BadValue as exc:
        return CatalogEntry(
            sku=sku, item_id=item_id, parent_id=parent, managed=True, problem=f"WooCommerce product {item_id}: {exc}"
        )
    return CatalogEntry(sku=sku, item_id=item_id, parent_id=parent, quantity=stock, managed=True)


def variation_entry(row: dict[str, Any], parent: dict[str, Any]) -> CatalogEntry | None:
    """A variation, as what it takes to set its stock:

    * ``manage_stock: "parent"``: the parent keeps the stock, so the entry is the parent's (set
      with ``products/batch``, never ``manage_stock: true`` on the variation, which would give it
      a stock of its own); a variation showing its parent's SKU then adds nothing (the parent's
      entry already is that SKU).
    * a variation showing its parent's SKU but keeping its own stock (or none): it claims that
      SKU too, and the engine finds the SKU on several store products and pushes to none.
    """
    entry = product_entry(row)
    if entry is None:
        return None
    parent_id = str(parent.get("id"))
    parent_sku = str(parent.get("sku") or "").strip()
    manage = row.get("manage_stock")
    if manage == "parent":
        if entry.sku == parent_sku:
            return None
        return _stock_entry(entry.sku, parent_id, None, True, row.get("stock_quantity"))
    if entry.problem:
        return entry
    return CatalogEntry(
        sku=entry.sku,
        item_id=entry.item_id,
        parent_id=parent_id,
        quantity=entry.quantity,
        managed=entry.managed,
        problem=entry.problem,
    )
