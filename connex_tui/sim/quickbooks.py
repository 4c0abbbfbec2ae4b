"""A QuickBooks Desktop company file in memory that answers qbXML the way QuickBooks does.

`QuickBooksSim.process(request_xml)` plays the part of QuickBooks' request processor behind the
Web Connector (``IRequestProcessor.ProcessRequest``): it takes a qbXML request document and
returns the qbXML response text, or raises `QBXMLRequestError` (HRESULT + message) when
QuickBooks would refuse the whole document.

The simulator deliberately shares no code with our own request builders and response parsers
(``connex_tui.soap`` / ``connex_tui.engine``): requests are read with lxml here and responses are
written as text here, so a mistake in the builders shows up as a failure against the simulator.

What it does
------------
* Document checks, each -> ``QBXMLRequestError("0x80040400", "QuickBooks found an error when
  parsing the provided XML text stream.")``: not well-formed, a DOCTYPE, no
  ``<?qbxml version="X.Y"?>`` before the ``QBXML`` root, a version above 13.0, a character
  outside ISO-8859-1 (QuickBooks stores Latin-1 text only; ``latin1_only=False`` turns this check
  off), and with ``validate=True`` any violation of Intuit's qbXML 13.0 schema (element order,
  unknown elements, bad values). One exception, as in QuickBooks: a string that is only too long
  for its field does not fail the document; that request answers statusCode 3070
  "The string "…" in the field "…" is too long." and the others run.
* Message set: ``onError="continueOnError"`` runs every request; ``stopOnError`` (and
  ``rollbackOnError``, which QuickBooks does not support; no rollback is done) stops after the
  first Rs whose statusSeverity is Error, and the rest get no Rs at all.
  ``responseData="includeNone"`` leaves the Ret elements out. ``newMessageSetID`` /
  ``oldMessageSetID`` (error recovery) are ignored.
* Supported requests: SalesReceiptAddRq, InvoiceAddRq, SalesOrderAddRq, CreditMemoAddRq,
  SalesReceiptQueryRq, InvoiceQueryRq, SalesOrderQueryRq, CreditMemoQueryRq,
  ItemInventoryQueryRq and ItemInventoryAssemblyQueryRq. **Every other request type is answered
  with** ``<{Name}Rs statusCode="1000" statusSeverity="Error" statusMessage="{Name}Rq is not
  supported by the simulator">`` (QuickBooks itself would of course process it). The same
  answer is given for parts of supported requests the simulator does not model: line groups,
  ClassFilter, AccountFilter, CurrencyFilter, DateMacro.
* Adds: CustomerRef (ListID or FullName) must exist, else 3140 "There is an invalid reference to
  QuickBooks Customer "X" in the SalesReceipt."; every line's ItemRef must exist, else 3140
  "There is an invalid reference to QuickBooks Item "X" in the SalesReceipt line.". A line on an
  item named in `locked_items` answers **3175** "The record is in use by another user: …" (3175
  is QuickBooks' "could not lock the record" family). A failing add changes nothing.
  Sales receipts and invoices lower QuantityOnHand by each line's Quantity, credit memos raise
  it, sales orders leave it and raise QuantityOnSalesOrder; every touched item gets a new
  TimeModified and EditSequence. Duplicate RefNumbers are accepted (QuickBooks does not reject
  them). A missing RefNumber is numbered by the simulator (1, 2, … per transaction type), a
  missing Rate is the item's SalesPrice, a missing Amount is Quantity (or 1) x Rate. A line
  without Quantity moves no stock. Lines may reference inventory, assembly and the untracked
  kinds ("non_inventory", "service", "other_charge") added with `add_item`.
* Transaction queries: TxnID+ (an unknown one -> 500 Warn for the set), RefNumber+ (case
  insensitive), RefNumberCaseSensitive+, or the TxnFilter elements MaxReturned,
  ModifiedDateRangeFilter, TxnDateRangeFilter (From/ToTxnDate), EntityFilter (ListID / FullName /
  …WithChildren), RefNumberFilter, RefNumberRangeFilter, and PaidStatus for invoices (an invoice
  is paid when its total is 0; payments are not modelled). No match -> statusCode 1.
  IncludeLineItems adds the line Rets; IncludeRetElement is honoured. Ordered by TimeModified,
  then creation order.
* Item queries (ItemInventoryQueryRq / ItemInventoryAssemblyQueryRq): ListID+ / FullName+ (an
  unknown one -> 500 Warn for the set; found items are still returned, active or not), or the
  filters MaxReturned, ActiveStatus (default ActiveOnly), FromModifiedDate / ToModifiedDate
  (inclusive; date-only or partial times are accepted, a date-only ToModifiedDate means the end
  of that day, an offset is ignored and the time is taken as QuickBooks-local), NameFilter and
  NameRangeFilter (on FullName, case-insensitive). Ordered by TimeModified, then ListID.
  A date QuickBooks cannot convert answers 3020.
* Iterators (item and transaction queries): ``iterator="Start"`` fixes the result set (the
  matching keys, sorted once) and answers the first MaxReturned of it with ``retCount``,
  ``iteratorRemainingCount`` and ``iteratorID="{uuid}"``; ``iterator="Continue"`` pages on
  (a MaxReturned or IncludeRetElement on the Continue request replaces the Start's; other filters
  on Continue are ignored, the set is fixed) and shows each object as it is now. When the remaining
  count reaches 0 the iterator is gone. An unknown, finished or stopped iteratorID, or one
  created before `end_session` / `begin_session`, answers 3391 "The iteratorID "{X}" is not valid.".
  ``iterator="Stop"`` discards it.
* Timestamps come from `clock` (naive local time) and strictly increase: each change takes
  ``max(clock(), previous + 1 s)``, so TimeModified orders changes. They are written with
  ``utc_offset`` (default "-07:00", as QuickBooks always writes one; None leaves it off).
  EditSequence is the change's epoch second, ListIDs/TxnIDs look like "80000001-1714552201".

* Items and transactions (``bumps_item_time_modified=``): whether a transaction that moves an
  item's QuantityOnHand also gives the item a new TimeModified and EditSequence is not documented
  by Intuit (reference qbwc-qbxml.md sections 6.3 and 11: "Whether inventory movements update an
  item's TimeModified" is unverified), so both are modelled: True (the default) bumps them, False
  changes only the quantity, and a read by FromModifiedDate then misses the movement. Besides the
  sales forms, the transactions that move stock are queryable: InventoryAdjustment (what
  `adjust_quantity` records), ItemReceipt, Bill, VendorCredit, Check, CreditCardCharge,
  CreditCardCredit and BuildAssembly (entered with `record_txn`, as a bookkeeper would in
  QuickBooks; not added through qbXML here), with their lines as qbxml130.xsd names them
  (ItemLineRet, InventoryAdjustmentLineRet with QuantityDifference, ComponentItemLineRet).
* Editions (``edition=``): "pro", "premier" (the default) or "enterprise". QuickBooks Pro has no
  inventory assemblies and no sales orders (Intuit's product comparison: both are Premier and
  Enterprise features), so on "pro" ItemInventoryAssemblyQueryRq, SalesOrderAddRq and
  SalesOrderQueryRq answer **3250** "This feature is not enabled or not available in this version
  of QuickBooks." (status text as QuickBooks sends it, quoted in consolibyte/quickbooks-php
  ``QuickBooks/Callbacks/SQL/Errors.php``); `add_item(kind="assembly")` is refused there.
* The company file: `company_file` (its path, as the Web Connector reports it in
  strCompanyFileName), `company_name`, and the DataExt FileID the Web Connector stamps under an
  application's OwnerID on first contact. `host_query_response()` is the strHCPResponse the Web
  Connector sends with the first sendRequestXML: HostQueryRs, CompanyQueryRs (with the
  DataExtRet FileID) and PreferencesQueryRs, shaped like a real one logged from QuickBooks
  Premier 2012 (a node-qbwc stub's sendRequestXML comment, public GitHub; reference
  qbwc-qbxml.md section 3.4: "the CompanyRet in strHCPResponse contains DataExtRet FileID").

Not modelled: sales tax, payments, other list types (customers are names only), units of measure,
sites/lots/serials, custom fields (OwnerID is accepted and ignored), per-version element checks
below 13.0 (every request is validated against the 13.0 schema), Mod/Delete/Void requests.
With ``validate=False`` a value the code cannot read raises QBXMLRequestError when it is met,
possibly after earlier requests of the same set were applied.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Callable, Iterable

import structlog
from lxml import etree

from connex_tui.specdir import qbxml_schema
from connex_tui.xmlsafe import UnsafeXMLError, local_name, parse_untrusted

_log = structlog.get_logger("connex.sim.quickbooks")

__all__ = ["QBXMLRequestError", "SimItem", "SimTxn", "SimTxnLine", "QuickBooksSim"]

PARSE_HRESULT = "0x80040400"
PARSE_MESSAGE = "QuickBooks found an error when parsing the provided XML text stream."
MAX_QBXML_VERSION = (13, 0)

_EPOCH = datetime(1970, 1, 1)
_CENT = Decimal("0.01")
_RATE_STEP = Decimal("0.00001")

TRACKED_KINDS = ("inventory", "assembly")
UNTRACKED_KINDS = ("non_inventory", "service", "other_charge")

EDITIONS = ("pro", "premier", "enterprise")
# What QuickBooks Pro lacks (Intuit's edition comparison: inventory assemblies and sales orders
# are Premier and Enterprise features); the request names answered 3250 there.
_PRO_MISSING = frozenset(
    {
        "ItemInventoryAssemblyQueryRq",
        "SalesOrderAddRq",
        "SalesOrderQueryRq",
        "BuildAssemblyQueryRq",
        "BuildAssemblyAddRq",
    }
)
_NOT_AVAILABLE = "This feature is not enabled or not available in this version of QuickBooks."
_PRODUCT = {
    "pro": "QuickBooks Pro 2024",
    "premier": "QuickBooks Premier Edition 2024",
    "enterprise": "QuickBooks Enterprise Solutions 24.0",
}


class QBXMLRequestError(Exception):
    """What QuickBooks' request processor raises: the Web Connector reports it as hresult + message."""

    def __init__(self, hresult: str, message: str) -> None:
        super().__init__(f"{hresult}: {message}")
        self.hresult = hresult
        self.message = message


class _Malformed(Exception):
    """A value the simulator cannot read (only reachable with validate=False)."""


@dataclass
class SimItem:
    list_id: str
    name: str
    full_name: str
    kind: str  # "inventory" | "assembly" (tracked) | "non_inventory" | "service" | "other_charge"
    quantity_on_hand: Decimal
    time_modified: datetime
    edit_sequence: str
    is_active: bool = True
    manufacturer_part_number: str | None = None
    sales_price: Decimal = Decimal("10.00")
    time_created: datetime | None = None
    parent_list_id: str | None = None
    parent_full_name: str | None = None
    sublevel: int = 0
    quantity_on_sales_order: Decimal = Decimal(0)
    quantity_on_order: Decimal = Decimal(0)

    @property
    def tracked(self) -> bool:
        return self.kind in TRACKED_KINDS


@dataclass
class SimTxnLine:
    txn_line_id: str
    item_list_id: str | None
    item_full_name: str | None
    desc: str | None
    quantity: Decimal | None
    rate: Decimal | None
    amount: Decimal


@dataclass
class SimTxn:
    kind: str  # "sales_receipt" | "invoice" | "sales_order" | "credit_memo" | "bill" | ... (see _TXN_TYPES)
    txn_id: str
    ref_number: str | None
    memo: str | None
    customer: str | None  # customer FullName
    txn_date: date
    lines: list[SimTxnLine]
    time_created: datetime
    time_modified: datetime | None = None
    edit_sequence: str = ""
    txn_number: int = 0
    customer_list_id: str | None = None
    other: str | None = None
    external_guid: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00")).quantize(_CENT)


# ---------------------------------------------------------------------------------------------
# Transaction types


@dataclass(frozen=True)
class _TxnType:
    qb_name: str  # "SalesReceipt"
    kind: str  # "sales_receipt"
    on_hand_sign: int  # -1 lowers QuantityOnHand, +1 raises it, 0 leaves it
    on_sales_order_sign: int
    sales: bool = True  # a sales form: added through qbXML here; the others by `record_txn`
    # The line Ret as qbxml130.xsd names it in this type's Ret, and the query element that asks for lines.
    line_ret: str = ""
    lines_flag: str = "IncludeLineItems"


_TXN_TYPES = {
    t.qb_name: t
    for t in (
        _TxnType("SalesReceipt", "sales_receipt", -1, 0, line_ret="SalesReceiptLineRet"),
        _TxnType("Invoice", "invoice", -1, 0, line_ret="InvoiceLineRet"),
        _TxnType("SalesOrder", "sales_order", 0, +1, line_ret="SalesOrderLineRet"),
        _TxnType("CreditMemo", "credit_memo", +1, 0, line_ret="CreditMemoLineRet"),
        # What else moves quantity on hand, queryable like the sales forms (qbxml130.xsd: their
        # Rets hold ItemLineRet / InventoryAdjustmentLineRet / ComponentItemLineRet lines).
        _TxnType("InventoryAdjustment", "inventory_adjustment", +1, 0, False, "InventoryAdjustmentLineRet"),
        _TxnType("ItemReceipt", "item_receipt", +1, 0, False, "ItemLineRet"),
        _TxnType("Bill", "bill", +1, 0, False, "ItemLineRet"),
        _TxnType("VendorCredit", "vendor_credit", -1, 0, False, "ItemLineRet"),
        _TxnType("Check", "check", +1, 0, False, "ItemLineRet"),
        _TxnType("CreditCardCharge", "credit_card_charge", +1, 0, False, "ItemLineRet"),
        _TxnType("CreditCardCredit", "credit_card_credit", -1, 0, False, "ItemLineRet"),
        _TxnType("BuildAssembly", "build_assembly", +1, 0, False, "ComponentItemLineRet", "IncludeComponentLineItems"),
    )
}
_TXN_BY_KIND = {t.kind: t for t in _TXN_TYPES.values()}
_ITEM_QUERIES = {"ItemInventoryQueryRq": "inventory", "ItemInventoryAssemblyQueryRq": "assembly"}
_ITEM_RET = {"inventory": "ItemInventoryRet", "assembly": "ItemInventoryAssemblyRet"}


# ---------------------------------------------------------------------------------------------
# Response text


def _esc_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc_attr(s: str) -> str:
    return _esc_text(s).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")


# A node is (name, value, attrs): value is str (text) or a list of nodes.
_Node = tuple


def _n(name: str, value, attrs: Iterable[tuple[str, str]] = ()) -> _Node:
    return (name, value, tuple(attrs))


def _render(node: _Node, out: list[str], depth: int) -> None:
    name, value, attrs = node
    pad = "  " * depth
    attr_text = "".join(f' {k}="{_esc_attr(v)}"' for k, v in attrs)
    if isinstance(value, str):
        out.append(f"{pad}<{name}{attr_text}>{_esc_text(value)}</{name}>")
    elif not value:
        out.append(f"{pad}<{name}{attr_text} />")
    else:
        out.append(f"{pad}<{name}{attr_text}>")
        for child in value:
            _render(child, out, depth + 1)
        out.append(f"{pad}</{name}>")


def _fmt_dec(d: Decimal) -> str:
    s = format(d, "f")
    if s.startswith("-") and d == 0:
        s = s[1:]
    return s


def _fmt_amt(d: Decimal) -> str:
    return _fmt_dec(d.quantize(_CENT, rounding=ROUND_HALF_UP))


def _bool(b: bool) -> str:
    return "true" if b else "false"


def _ref_node(name: str, list_id: str | None, full_name: str | None) -> _Node:
    children = []
    if list_id:
        children.append(_n("ListID", list_id))
    if full_name is not None:
        children.append(_n("FullName", full_name))
    return _n(name, children)


def _only(children: list[_Node], includes: list[str] | None) -> list[_Node]:
    if not includes:
        return children
    wanted = set(includes)
    return [c for c in children if c[0] in wanted]


@dataclass
class _Rs:
    node: _Node
    severity: str


# ---------------------------------------------------------------------------------------------
# Request reading


def _text(el, name: str) -> str | None:
    c = el.find(name)
    if c is None:
        return None
    return (c.text or "").strip()


def _texts(el, name: str) -> list[str]:
    return [(c.text or "").strip() for c in el.findall(name)]


def _ref(el) -> tuple[str | None, str | None]:
    """(ListID, FullName) of a *Ref element."""
    return _text(el, "ListID") or None, _text(el, "FullName")


def _dec(text: str | None) -> Decimal | None:
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Malformed(text) from None
    if not value.is_finite():
        raise _Malformed(text)
    return value


def _int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise _Malformed(text) from None


_DT_RE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:T(\d{1,2})(?::(\d{1,2})(?::(\d{1,2})(?:[+-]\d{1,2}:\d{1,2})?)?)?)?$"
)


class _BadDate(Exception):
    def __init__(self, field_name: str, value: str) -> None:
        super().__init__(value)
        self.field_name = field_name
        self.value = value


def _parse_dt(text: str, field_name: str, *, end: bool) -> datetime:
    """A DATETIMETYPE (or DATETYPE) value as naive QuickBooks-local time; the offset is ignored.

    Missing parts are the start of the period, or its end when `end` (a To… bound, inclusive).
    """
    m = _DT_RE.match(text)
    if not m:
        raise _BadDate(field_name, text)
    y, mo, d, h, mi, s = m.groups()
    try:
        base = datetime(int(y), int(mo), int(d))
        if h is None:
            return base.replace(hour=23, minute=59, second=59) if end else base
        if int(h) > 23 or (mi is not None and int(mi) > 59) or (s is not None and int(s) > 59):
            raise ValueError
        return base.replace(
            hour=int(h),
            minute=int(mi) if mi is not None else (59 if end else 0),
            second=int(s) if s is not None else (59 if end else 0),
        )
    except ValueError:
        raise _BadDate(field_name, text) from None


def _parse_date(text: str, field_name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        m = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})$", text)
        if not m:
            raise _BadDate(field_name, text) from None
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise _BadDate(field_name, text) from None


_VERSION_RE = re.compile(r"""version\s*=\s*["'](?:[A-Za-z]{2})?(\d+)\.(\d+)["']""")
_ENCODING_RE = re.compile(r"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


@dataclass
class _Iterator:
    request_name: str
    keys: list[str]
    pos: int
    max_returned: int | None
    includes: list[str]
    include_lines: bool
    session: int


# ---------------------------------------------------------------------------------------------


class QuickBooksSim:
    """A QuickBooks Desktop company file in memory; see the module docstring for the behaviour."""

    DEFAULT_CUSTOMER = "Web Store"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        validate: bool = True,
        utc_offset: str | None = "-07:00",
        latin1_only: bool = True,
        edition: str = "premier",
        bumps_item_time_modified: bool = True,
        company_file: str = r"C:\Users\Public\Documents\Intuit\QuickBooks\Company Files\Sample.QBW",
        company_name: str = "Sample Shop",
    ) -> None:
        if edition not in EDITIONS:
            raise ValueError(f"unknown QuickBooks edition {edition!r}; expected one of {EDITIONS}")
        self.edition = edition
        self.bumps_item_time_modified = bumps_item_time_modified
        self.company_file = company_file
        self.company_name = company_name
        self.file_ids: dict[str, str] = {}  # OwnerID -> the FileID stamped into this company file
        self._clock = clock or datetime.now
        self.utc_offset = utc_offset
        self.latin1_only = latin1_only
        self._schema = None
        if validate:
            self._schema = qbxml_schema()
            if self._schema is None:
                # An optional part: a log line, never a warning painted over the interface.
                _log.warning(
                    "qbxml_schema_missing",
                    detail="qbxmlops130.xsd not found: the QuickBooks simulator will not validate requests",
                    hint="set CONNEX_QBXML_SPEC_DIR to the folder holding Intuit's qbXML schemas",
                )
        self.validate = self._schema is not None
        self._lock = threading.RLock()
        self._last_stamp: datetime | None = None
        self._list_seq = 0x80000000
        self._txn_seq = 0
        self._txn_number = 0
        self._auto_ref: dict[str, int] = {}
        self._session = 0
        self._iterators: dict[str, _Iterator] = {}

        self.items: dict[str, SimItem] = {}
        self._items_by_id: dict[str, SimItem] = {}
        self.customers: dict[str, str] = {}  # FullName -> ListID
        self._customers_by_id: dict[str, str] = {}
        self.transactions: list[SimTxn] = []
        self._txns_by_id: dict[str, SimTxn] = {}
        self._txn_order: dict[str, int] = {}
        self.requests: list[str] = []
        self.locked_items: set[str] = set()

        stamp = self._stamp()
        self._accounts = {name: self._new_list_id(stamp) for name in ("Sales", "Cost of Goods Sold", "Inventory Asset")}
        self.add_customer(self.DEFAULT_CUSTOMER)

    # ------------------------------------------------------------------ ids and time

    def _stamp(self) -> datetime:
        now = self._clock()
        if now.tzinfo is not None:
            now = now.replace(tzinfo=None)
        now = now.replace(microsecond=0)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(seconds=1)
        self._last_stamp = now
        return now

    @staticmethod
    def _epoch(stamp: datetime) -> int:
        return int((stamp - _EPOCH).total_seconds())

    def _new_list_id(self, stamp: datetime) -> str:
        self._list_seq += 1
        return f"{self._list_seq:X}-{self._epoch(stamp)}"

    def _new_txn_id(self, stamp: datetime) -> str:
        self._txn_seq += 1
        return f"{self._txn_seq:X}-{self._epoch(stamp)}"

    def _fmt_time(self, t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + (self.utc_offset or "")

    def _touch(self, item: SimItem, stamp: datetime) -> None:
        item.time_modified = stamp
        item.edit_sequence = str(self._epoch(stamp))

    # ------------------------------------------------------------------ company file set-up

    def add_item(
        self,
        name: str,
        quantity: Decimal | int = 0,
        *,
        kind: str = "inventory",
        parent: str | None = None,
        manufacturer_part_number: str | None = None,
        price: Decimal | int | str = Decimal("10.00"),
        is_active: bool = True,
    ) -> SimItem:
        """Create an item as a user would in QuickBooks. `parent` is the FullName of an existing item."""
        with self._lock:
            if kind not in TRACKED_KINDS + UNTRACKED_KINDS:
                raise ValueError(f"unknown item kind {kind!r}")
            if kind == "assembly" and self.edition == "pro":
                raise ValueError("QuickBooks Pro has no inventory assemblies")
            if not name or ":" in name or len(name) > 31:
                raise ValueError(f"QuickBooks item names are 1-31 characters without ':': {name!r}")
            parent_item = None
            if parent is not None:
                parent_item = self.items.get(parent)
                if parent_item is None:
                    raise KeyError(f"parent item {parent!r} does not exist")
            full_name = f"{parent_item.full_name}:{name}" if parent_item else name
            if full_name in self.items:
                raise ValueError(f'The name "{full_name}" of the list element is already in use.')
            stamp = self._stamp()
            item = SimItem(
                list_id=self._new_list_id(stamp),
                name=name,
                full_name=full_name,
                kind=kind,
                quantity_on_hand=Decimal(str(quantity)) if kind in TRACKED_KINDS else Decimal(0),
                time_modified=stamp,
                edit_sequence=str(self._epoch(stamp)),
                is_active=is_active,
                manufacturer_part_number=manufacturer_part_number,
                sales_price=Decimal(str(price)),
                time_created=stamp,
                parent_list_id=parent_item.list_id if parent_item else None,
                parent_full_name=parent_item.full_name if parent_item else None,
                sublevel=parent_item.sublevel + 1 if parent_item else 0,
            )
            self.items[full_name] = item
            self._items_by_id[item.list_id] = item
            return item

    def add_customer(self, name: str) -> None:
        with self._lock:
            if name in self.customers:
                return
            list_id = self._new_list_id(self._stamp())
            self.customers[name] = list_id
            self._customers_by_id[list_id] = name

    def item(self, full_name: str) -> SimItem:
        return self.items[full_name]

    def adjust_quantity(self, name: str, delta: Decimal | int | str) -> SimTxn:
        """Adjust Quantity/Value on Hand, done by hand in QuickBooks: an InventoryAdjustment."""
        return self.record_txn("InventoryAdjustment", [(name, delta)], memo="adjusted by hand")

    def record_txn(
        self, qb_name: str, lines: list[tuple[str, Decimal | int | str]], *, memo: str | None = None
    ) -> SimTxn:
        """A transaction a bookkeeper enters in QuickBooks itself (a bill, an item receipt, a vendor
        credit, a check or card charge for items, an inventory adjustment): each line's quantity
        moves the item's QuantityOnHand by the type's sign (an adjustment's quantity is the
        difference itself). The item's TimeModified moves only if `bumps_item_time_modified`."""
        with self._lock:
            tt = _TXN_TYPES[qb_name]
            if tt.sales:
                raise ValueError(f"{qb_name} is added through qbXML (process), not record_txn")
            if qb_name == "BuildAssembly" and self.edition == "pro":
                raise ValueError("QuickBooks Pro has no inventory assemblies")
            stamp = self._stamp()
            txn_id = self._new_txn_id(stamp)
            sim_lines = []
            for name, quantity in lines:
                item = self.items[name]
                if not item.tracked:
                    raise ValueError(f"{name!r} is not an inventory item")
                qty = Decimal(str(quantity))
                item.quantity_on_hand += tt.on_hand_sign * qty
                if self.bumps_item_time_modified:
                    self._touch(item, stamp)
                sim_lines.append(
                    SimTxnLine(
                        self._new_txn_id(stamp),
                        item.list_id,
                        item.full_name,
                        None,
                        qty,
                        None,
                        (qty * item.sales_price).quantize(_CENT),
                    )
                )
            return self._keep_txn(
                SimTxn(
                    kind=tt.kind,
                    txn_id=txn_id,
                    ref_number=None,
                    memo=memo,
                    customer=None,
                    txn_date=stamp.date(),
                    lines=sim_lines,
                    time_created=stamp,
                    time_modified=stamp,
                    edit_sequence=str(self._epoch(stamp)),
                )
            )

    def _keep_txn(self, txn: SimTxn) -> SimTxn:
        self._txn_number += 1
        txn.txn_number = self._txn_number
        self._txn_order[txn.txn_id] = len(self.transactions)
        self.transactions.append(txn)
        self._txns_by_id[txn.txn_id] = txn
        return txn

    def edit_item(
        self,
        name: str,
        *,
        is_active: bool | None = None,
        sales_price: Decimal | int | str | None = None,
        manufacturer_part_number: str | None = None,
    ) -> SimItem:
        """An edit of the item made by hand in QuickBooks (bumps TimeModified and EditSequence)."""
        with self._lock:
            item = self.items[name]
            if is_active is not None:
                item.is_active = is_active
            if sales_price is not None:
                item.sales_price = Decimal(str(sales_price))
            if manufacturer_part_number is not None:
                item.manufacturer_part_number = manufacturer_part_number
            self._touch(item, self._stamp())
            return item

    # ------------------------------------------------------------------ the company file

    def stamp_file_id(self, owner_id: str, file_id: str) -> None:
        """What the Web Connector does on its first contact with this file for an application: it
        writes the .qwc's FileID as a private DataExt of the Company under the OwnerID (QBWC
        Programmer's Guide ch.4; Intuit's WCWebService sample, note on OwnerID and FileID)."""
        with self._lock:
            self.file_ids.setdefault(owner_id, file_id)

    def host_query_response(self) -> str:
        """strHCPResponse: HostQueryRs + CompanyQueryRs + PreferencesQueryRs, as QuickBooks answers them."""
        with self._lock:
            data_ext = "".join(
                "<DataExtRet>"
                f"<OwnerID>{_esc_text(owner)}</OwnerID><DataExtName>FileID</DataExtName>"
                f"<DataExtType>STR255TYPE</DataExtType><DataExtValue>{_esc_text(file_id)}</DataExtValue>"
                "</DataExtRet>"
                for owner, file_id in self.file_ids.items()
            )
            versions = "".join(f"<SupportedQBXMLVersion>{v}</SupportedQBXMLVersion>" for v in ("12.0", "13.0"))
            return (
                '<?xml version="1.0" ?>\n<QBXML>\n<QBXMLMsgsRs>\n'
                '<HostQueryRs requestID="0" statusCode="0" statusSeverity="Info" statusMessage="Status OK"><HostRet>'
                f"<ProductName>{_PRODUCT[self.edition]}</ProductName><MajorVersion>34</MajorVersion>"
                f"<MinorVersion>0</MinorVersion><Country>US</Country>{versions}"
                "<IsAutomaticLogin>false</IsAutomaticLogin><QBFileMode>SingleUser</QBFileMode></HostRet></HostQueryRs>\n"
                '<CompanyQueryRs requestID="1" statusCode="0" statusSeverity="Info" statusMessage="Status OK"><CompanyRet>'
                f"<IsSampleCompany>false</IsSampleCompany><CompanyName>{_esc_text(self.company_name)}</CompanyName>"
                f"<LegalCompanyName>{_esc_text(self.company_name)}</LegalCompanyName>{data_ext}"
                "</CompanyRet></CompanyQueryRs>\n"
                '<PreferencesQueryRs requestID="2" statusCode="0" statusSeverity="Info" statusMessage="Status OK">'
                "<PreferencesRet><PurchasesAndVendorsPreferences><IsUsingInventory>true</IsUsingInventory>"
                "</PurchasesAndVendorsPreferences></PreferencesRet></PreferencesQueryRs>\n"
                "</QBXMLMsgsRs>\n</QBXML>\n"
            )

    # ------------------------------------------------------------------ sessions

    def begin_session(self) -> None:
        """The Web Connector opened a connection to QuickBooks (BeginSession)."""
        with self._lock:
            self._session += 1
            self._iterators.clear()

    def end_session(self) -> None:
        """The connection closed: the iterators of this session die with it."""
        with self._lock:
            self._session += 1
            self._iterators.clear()

    # ------------------------------------------------------------------ ProcessRequest

    def process(self, request_xml: str | bytes) -> str:
        """Process one qbXML request document like QuickBooks' ProcessRequest."""
        with self._lock:
            if isinstance(request_xml, bytes):
                self.requests.append(request_xml.decode("utf-8", errors="replace"))
            else:
                self.requests.append(request_xml)
            root, too_long = self._parse(request_xml)
            msgs = root.find("QBXMLMsgsRq")
            on_error = msgs.get("onError")
            include_data = msgs.get("responseData") != "includeNone"
            nodes: list[_Node] = []
            for rq in msgs:
                if not isinstance(rq.tag, str):
                    continue
                if rq in too_long:
                    field_name, value = too_long[rq]
                    rs = self._status(
                        rq, 3070, "Error", f'The string "{value}" in the field "{field_name}" is too long.'
                    )
                else:
                    try:
                        rs = self._dispatch(rq)
                    except _Malformed:
                        raise QBXMLRequestError(PARSE_HRESULT, PARSE_MESSAGE) from None
                    except _BadDate as exc:
                        rs = self._status(
                            rq,
                            3020,
                            "Error",
                            f'There was an error when converting the date value "{exc.value}" '
                            f'in the field "{exc.field_name}".',
                        )
                node = rs.node
                if not include_data:
                    node = _n(node[0], [], node[2])
                nodes.append(node)
                if rs.severity == "Error" and on_error != "continueOnError":
                    break
            out = ['<?xml version="1.0" ?>', "<QBXML>"]
            _render(_n("QBXMLMsgsRs", nodes), out, 1)
            out.append("</QBXML>")
            return "\n".join(out) + "\n"

    # ------------------------------------------------------------------ document checks

    def _parse(self, request_xml: str | bytes):
        def fail() -> QBXMLRequestError:
            return QBXMLRequestError(PARSE_HRESULT, PARSE_MESSAGE)

        data: str | bytes = request_xml
        if isinstance(request_xml, str):
            m = _ENCODING_RE.match(request_xml)
            if m and m.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
                try:
                    data = request_xml.encode(m.group(1))
                except (LookupError, UnicodeEncodeError):
                    raise fail() from None
        try:
            root = parse_untrusted(data)
        except (UnsafeXMLError, ValueError):
            raise fail() from None

        version = None
        for sib in root.itersiblings(preceding=True):
            if isinstance(sib, etree._ProcessingInstruction) and sib.target == "qbxml":
                m = _VERSION_RE.search(sib.text or "")
                if m:
                    version = (int(m.group(1)), int(m.group(2)))
                break
        if version is None or version > MAX_QBXML_VERSION:
            raise fail()

        if self.latin1_only and _has_non_latin1(root):
            raise fail()

        if local_name(root.tag) != "QBXML" or root.nsmap.get(None):
            raise fail()
        too_long: dict = {}
        if self._schema is not None:
            if not self._schema.validate(root):
                tree = root.getroottree()
                for entry in self._schema.error_log:
                    if entry.type_name != "SCHEMAV_CVC_MAXLENGTH_VALID":
                        raise fail()
                    found = tree.xpath(entry.path) if entry.path else []
                    if not found:
                        raise fail()
                    el = found[0]
                    rq = el
                    while rq.getparent() is not None and local_name(rq.getparent().tag) != "QBXMLMsgsRq":
                        rq = rq.getparent()
                    if rq.getparent() is None:
                        raise fail()
                    too_long.setdefault(rq, (local_name(el.tag), el.text or ""))
        else:
            msgs = root.find("QBXMLMsgsRq")
            if msgs is None or msgs.get("onError") not in (
                "continueOnError",
                "stopOnError",
                "rollbackOnError",
            ):
                raise fail()
        if root.find("QBXMLMsgsRq") is None:
            # A valid document without QBXMLMsgsRq: a subscription message set or nothing at all.
            raise QBXMLRequestError("0x80040402", "Only QBXMLMsgsRq message sets are supported by the simulator.")
        return root, too_long

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, rq) -> _Rs:
        name = local_name(rq.tag)
        if self.edition == "pro" and name in _PRO_MISSING:
            return self._status(rq, 3250, "Error", _NOT_AVAILABLE)
        if name.endswith("AddRq") and name[: -len("AddRq")] in _TXN_TYPES and _TXN_TYPES[name[: -len("AddRq")]].sales:
            return self._txn_add(rq, _TXN_TYPES[name[: -len("AddRq")]])
        if name.endswith("QueryRq") and name[: -len("QueryRq")] in _TXN_TYPES:
            return self._txn_query(rq, _TXN_TYPES[name[: -len("QueryRq")]])
        if name in _ITEM_QUERIES:
            return self._item_query(rq, _ITEM_QUERIES[name])
        return self._unsupported(rq, f"{name} is not supported by the simulator")

    @staticmethod
    def _rs_name(rq) -> str:
        name = local_name(rq.tag)
        return name[:-2] + "Rs" if name.endswith("Rq") else name + "Rs"

    def _status(
        self,
        rq,
        code: int,
        severity: str,
        message: str,
        children: list[_Node] | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> _Rs:
        attrs = []
        if rq.get("requestID") is not None:
            attrs.append(("requestID", rq.get("requestID")))
        attrs += [("statusCode", str(code)), ("statusSeverity", severity), ("statusMessage", message)]
        attrs += list(extra)
        return _Rs(_n(self._rs_name(rq), children or [], attrs), severity)

    def _ok(self, rq, children: list[_Node], extra: Iterable[tuple[str, str]] = ()) -> _Rs:
        return self._status(rq, 0, "Info", "Status OK", children, extra)

    def _unsupported(self, rq, message: str) -> _Rs:
        return self._status(rq, 1000, "Error", message)

    def _no_match(self, rq, extra: Iterable[tuple[str, str]] = ()) -> _Rs:
        return self._status(rq, 1, "Info", "A query request did not find a matching object in QuickBooks", [], extra)

    @staticmethod
    def _missing_message(missing: str) -> str:
        return (
            "The query request has not been fully completed. There was a required element "
            f'("{missing}") that could not be found in QuickBooks.'
        )

    # ------------------------------------------------------------------ adds

    def _find_customer(self, list_id: str | None, full_name: str | None) -> tuple[str, str] | None:
        if list_id:
            name = self._customers_by_id.get(list_id)
            return (list_id, name) if name is not None else None
        if full_name is not None and full_name in self.customers:
            return self.customers[full_name], full_name
        return None

    def _find_item(self, list_id: str | None, full_name: str | None) -> SimItem | None:
        if list_id:
            return self._items_by_id.get(list_id)
        if full_name is not None:
            return self.items.get(full_name)
        return None

    def _txn_add(self, rq, tt: _TxnType) -> _Rs:
        add = rq.find(f"{tt.qb_name}Add")
        if add is None:
            raise _Malformed(f"{tt.qb_name}Add")
        includes = _texts(rq, "IncludeRetElement")

        customer = None
        cust_el = add.find("CustomerRef")
        if cust_el is not None:
            list_id, full_name = _ref(cust_el)
            customer = self._find_customer(list_id, full_name)
            if customer is None:
                return self._status(
                    rq,
                    3140,
                    "Error",
                    f"There is an invalid reference to QuickBooks Customer "
                    f'"{full_name if full_name is not None else list_id}" in the {tt.qb_name}.',
                )
        elif tt.qb_name != "SalesReceipt":
            raise _Malformed("CustomerRef")

        txn_date_text = _text(add, "TxnDate")
        txn_date = _parse_date(txn_date_text, "TxnDate") if txn_date_text else None

        # (item, desc, quantity, rate, amount) per line, all checked before anything changes.
        planned: list[tuple[SimItem | None, str | None, Decimal | None, Decimal | None, Decimal]] = []
        for line_el in add:
            if not isinstance(line_el.tag, str):
                continue
            lname = local_name(line_el.tag)
            if lname == f"{tt.qb_name}LineGroupAdd":
                return self._unsupported(rq, f"{lname} is not supported by the simulator")
            if lname in ("DiscountLineAdd", "SalesTaxLineAdd", "ShippingLineAdd"):
                return self._unsupported(rq, f"{lname} is not supported by the simulator")
            if lname != f"{tt.qb_name}LineAdd":
                continue
            item = None
            item_el = line_el.find("ItemRef")
            if item_el is not None:
                list_id, full_name = _ref(item_el)
                item = self._find_item(list_id, full_name)
                if item is None:
                    shown = full_name if full_name is not None else list_id
                    return self._status(
                        rq,
                        3140,
                        "Error",
                        f'There is an invalid reference to QuickBooks Item "{shown}" in the {tt.qb_name} line.',
                    )
                if item.full_name in self.locked_items:
                    return self._status(
                        rq,
                        3175,
                        "Error",
                        f'The record is in use by another user: QuickBooks could not lock Item "{item.full_name}" '
                        f"to save the {tt.qb_name}. Try again later.",
                    )
            if line_el.find("RatePercent") is not None or line_el.find("PriceLevelRef") is not None:
                return self._unsupported(rq, "RatePercent and PriceLevelRef are not supported by the simulator")
            quantity = _dec(_text(line_el, "Quantity"))
            rate = _dec(_text(line_el, "Rate"))
            amount = _dec(_text(line_el, "Amount"))
            if rate is None and amount is None and item is not None:
                rate = item.sales_price
            if amount is None:
                amount = ((quantity if quantity is not None else Decimal(1)) * (rate or Decimal(0))).quantize(
                    _CENT, rounding=ROUND_HALF_UP
                )
            elif rate is None and quantity:
                rate = (amount / quantity).quantize(_RATE_STEP, rounding=ROUND_HALF_UP).normalize()
                if rate == rate.to_integral_value():
                    rate = rate.quantize(_CENT)
            planned.append((item, _text(line_el, "Desc"), quantity, rate, amount))

        # Everything checked: apply.
        stamp = self._stamp()
        epoch = str(self._epoch(stamp))
        touched: dict[str, SimItem] = {}
        lines: list[SimTxnLine] = []
        txn_id = self._new_txn_id(stamp)
        for item, desc, quantity, rate, amount in planned:
            if item is not None and item.tracked and quantity:
                if tt.on_hand_sign:
                    item.quantity_on_hand += tt.on_hand_sign * quantity
                    touched[item.list_id] = item
                if tt.on_sales_order_sign:
                    item.quantity_on_sales_order += tt.on_sales_order_sign * quantity
                    touched[item.list_id] = item
            lines.append(
                SimTxnLine(
                    txn_line_id=self._new_txn_id(stamp),
                    item_list_id=item.list_id if item else None,
                    item_full_name=item.full_name if item else None,
                    desc=desc,
                    quantity=quantity,
                    rate=rate,
                    amount=amount,
                )
            )
        if self.bumps_item_time_modified:
            for item in touched.values():
                self._touch(item, stamp)

        ref_number = _text(add, "RefNumber")
        if not ref_number:
            n = self._auto_ref.get(tt.kind, 0) + 1
            self._auto_ref[tt.kind] = n
            ref_number = str(n)
        self._txn_number += 1
        txn = SimTxn(
            kind=tt.kind,
            txn_id=txn_id,
            ref_number=ref_number,
            memo=_text(add, "Memo"),
            customer=customer[1] if customer else None,
            txn_date=txn_date or stamp.date(),
            lines=lines,
            time_created=stamp,
            time_modified=stamp,
            edit_sequence=epoch,
            txn_number=self._txn_number,
            customer_list_id=customer[0] if customer else None,
            other=_text(add, "Other"),
            external_guid=_text(add, "ExternalGUID"),
        )
        self._txn_order[txn_id] = len(self.transactions)
        self.transactions.append(txn)
        self._txns_by_id[txn_id] = txn
        return self._ok(rq, [self._txn_ret(txn, includes, with_lines=True)])

    def _txn_ret(self, txn: SimTxn, includes: list[str] | None, *, with_lines: bool) -> _Node:
        tt = _TXN_BY_KIND[txn.kind]
        total = txn.total
        c: list[_Node] = [
            _n("TxnID", txn.txn_id),
            _n("TimeCreated", self._fmt_time(txn.time_created)),
            _n("TimeModified", self._fmt_time(txn.time_modified or txn.time_created)),
            _n("EditSequence", txn.edit_sequence),
            _n("TxnNumber", str(txn.txn_number)),
        ]
        if txn.customer is not None:
            c.append(_ref_node("CustomerRef", txn.customer_list_id, txn.customer))
        c.append(_n("TxnDate", txn.txn_date.isoformat()))
        if txn.ref_number is not None:
            c.append(_n("RefNumber", txn.ref_number))
        c.append(_n("Subtotal", _fmt_amt(total)))
        if tt.qb_name == "Invoice":
            c.append(_n("AppliedAmount", "0.00"))
            c.append(_n("BalanceRemaining", _fmt_amt(total)))
        else:
            c.append(_n("TotalAmount", _fmt_amt(total)))
        if tt.qb_name == "CreditMemo":
            c.append(_n("CreditRemaining", _fmt_amt(total)))
        if tt.qb_name == "SalesOrder":
            c.append(_n("IsManuallyClosed", "false"))
            c.append(_n("IsFullyInvoiced", "false"))
        if txn.memo is not None:
            c.append(_n("Memo", txn.memo))
        if tt.qb_name == "Invoice":
            c.append(_n("IsPaid", _bool(total == 0)))
        if txn.other is not None:
            c.append(_n("Other", txn.other))
        if txn.external_guid is not None:
            c.append(_n("ExternalGUID", txn.external_guid))
        if with_lines:
            for line in txn.lines:
                lc: list[_Node] = [_n("TxnLineID", line.txn_line_id)]
                if line.item_full_name is not None:
                    lc.append(_ref_node("ItemRef", line.item_list_id, line.item_full_name))
                if line.desc is not None:
                    lc.append(_n("Desc", line.desc))
                if line.quantity is not None:
                    quantity_tag = "QuantityDifference" if tt.qb_name == "InventoryAdjustment" else "Quantity"
                    lc.append(_n(quantity_tag, _fmt_dec(line.quantity)))
                if line.rate is not None:
                    lc.append(_n("Rate", _fmt_dec(line.rate)))
                if tt.qb_name != "InventoryAdjustment":
                    lc.append(_n("Amount", _fmt_amt(line.amount)))
                c.append(_n(tt.line_ret, lc))
        return _n(f"{tt.qb_name}Ret", _only(c, includes))

    # ------------------------------------------------------------------ queries: shared paging

    def _page(
        self,
        rq,
        keys: list[str],
        render: Callable[[str, list[str], bool], _Node | None],
        *,
        max_returned: int | None,
        includes: list[str],
        include_lines: bool,
        start: bool,
        warn_missing: str | None = None,
    ) -> _Rs:
        """Answer a query whose matching keys are `keys` (already sorted)."""
        if start:
            iterator_id = "{" + str(uuid.uuid4()) + "}"
            it = _Iterator(
                request_name=local_name(rq.tag),
                keys=keys,
                pos=0,
                max_returned=max_returned,
                includes=includes,
                include_lines=include_lines,
                session=self._session,
            )
            self._iterators[iterator_id] = it
            return self._continue(rq, iterator_id, it)
        page = keys if max_returned is None else keys[:max_returned]
        rets = [r for r in (render(k, includes, include_lines) for k in page) if r is not None]
        if warn_missing is not None:
            return self._status(rq, 500, "Warn", self._missing_message(warn_missing), rets)
        if not rets:
            return self._no_match(rq)
        return self._ok(rq, rets)

    def _continue(self, rq, iterator_id: str, it: _Iterator) -> _Rs:
        n = it.max_returned if it.max_returned is not None else len(it.keys) - it.pos
        page = it.keys[it.pos : it.pos + n]
        it.pos += len(page)
        remaining = len(it.keys) - it.pos
        if remaining == 0:
            self._iterators.pop(iterator_id, None)
        render = self._render_item if it.request_name in _ITEM_QUERIES else self._render_txn
        rets = [r for r in (render(k, it.includes, it.include_lines) for k in page) if r is not None]
        extra = [
            ("retCount", str(len(rets))),
            ("iteratorRemainingCount", str(remaining)),
            ("iteratorID", iterator_id),
        ]
        if not rets:
            return self._no_match(rq, extra)
        return self._ok(rq, rets, extra)

    def _iterator_step(self, rq) -> _Rs | None:
        """Handle iterator="Continue"/"Stop"; None when the request starts a new result set."""
        mode = rq.get("iterator")
        if mode not in ("Continue", "Stop"):
            return None
        iterator_id = rq.get("iteratorID") or ""
        it = self._iterators.get(iterator_id)
        if it is None or it.session != self._session or it.request_name != local_name(rq.tag):
            return self._status(rq, 3391, "Error", f'The iteratorID "{iterator_id}" is not valid.')
        if mode == "Stop":
            del self._iterators[iterator_id]
            return self._ok(
                rq,
                [],
                [("retCount", "0"), ("iteratorRemainingCount", "0"), ("iteratorID", iterator_id)],
            )
        max_returned = _int(_text(rq, "MaxReturned"))
        if max_returned is not None:
            it.max_returned = max_returned
        includes = _texts(rq, "IncludeRetElement")
        if includes:
            it.includes = includes
        return self._continue(rq, iterator_id, it)

    # ------------------------------------------------------------------ item queries

    def _render_item(self, list_id: str, includes: list[str], _lines: bool) -> _Node | None:
        item = self._items_by_id.get(list_id)
        if item is None:
            return None
        c: list[_Node] = [
            _n("ListID", item.list_id),
            _n("TimeCreated", self._fmt_time(item.time_created or item.time_modified)),
            _n("TimeModified", self._fmt_time(item.time_modified)),
            _n("EditSequence", item.edit_sequence),
            _n("Name", item.name),
            _n("FullName", item.full_name),
            _n("IsActive", _bool(item.is_active)),
        ]
        if item.parent_list_id:
            c.append(_ref_node("ParentRef", item.parent_list_id, item.parent_full_name))
        c.append(_n("Sublevel", str(item.sublevel)))
        if item.manufacturer_part_number is not None:
            c.append(_n("ManufacturerPartNumber", item.manufacturer_part_number))
        c.append(_n("SalesPrice", _fmt_dec(item.sales_price)))
        for ref, account in (
            ("IncomeAccountRef", "Sales"),
            ("COGSAccountRef", "Cost of Goods Sold"),
            ("AssetAccountRef", "Inventory Asset"),
        ):
            c.append(_ref_node(ref, self._accounts[account], account))
        c += [
            _n("QuantityOnHand", _fmt_dec(item.quantity_on_hand)),
            _n("QuantityOnOrder", _fmt_dec(item.quantity_on_order)),
            _n("QuantityOnSalesOrder", _fmt_dec(item.quantity_on_sales_order)),
        ]
        return _n(_ITEM_RET[item.kind], _only(c, includes))

    def _item_query(self, rq, kind: str) -> _Rs:
        step = self._iterator_step(rq)
        if step is not None:
            return step
        includes = _texts(rq, "IncludeRetElement")
        start = rq.get("iterator") == "Start"
        if rq.find("ClassFilter") is not None:
            return self._unsupported(rq, "ClassFilter is not supported by the simulator")

        list_ids = _texts(rq, "ListID")
        full_names = _texts(rq, "FullName")
        missing: str | None = None
        max_returned: int | None = None
        if list_ids or full_names:
            chosen: dict[str, SimItem] = {}
            for lid in list_ids:
                it = self._items_by_id.get(lid)
                if it is None or it.kind != kind:
                    missing = missing or lid
                else:
                    chosen[it.list_id] = it
            for fn in full_names:
                it = self.items.get(fn)
                if it is None or it.kind != kind:
                    missing = missing or fn
                else:
                    chosen[it.list_id] = it
            matched = list(chosen.values())
        else:
            max_returned = _int(_text(rq, "MaxReturned"))
            active = _text(rq, "ActiveStatus") or "ActiveOnly"
            from_text = _text(rq, "FromModifiedDate")
            to_text = _text(rq, "ToModifiedDate")
            from_dt = _parse_dt(from_text, "FromModifiedDate", end=False) if from_text else None
            to_dt = _parse_dt(to_text, "ToModifiedDate", end=True) if to_text else None
            name_match = self._name_matcher(rq)
            matched = [
                it
                for it in self.items.values()
                if it.kind == kind
                and (
                    active == "All"
                    or (active == "ActiveOnly" and it.is_active)
                    or (active == "InactiveOnly" and not it.is_active)
                )
                and (from_dt is None or it.time_modified >= from_dt)
                and (to_dt is None or it.time_modified <= to_dt)
                and name_match(it.full_name)
            ]
        matched.sort(key=lambda it: (it.time_modified, int(it.list_id.split("-", 1)[0], 16)))
        keys = [it.list_id for it in matched]
        return self._page(
            rq,
            keys,
            self._render_item,
            max_returned=max_returned,
            includes=includes,
            include_lines=False,
            start=start,
            warn_missing=missing,
        )

    @staticmethod
    def _name_matcher(rq) -> Callable[[str], bool]:
        nf = rq.find("NameFilter")
        if nf is not None:
            how = _text(nf, "MatchCriterion") or "StartsWith"
            needle = (_text(nf, "Name") or "").lower()
            if how == "Contains":
                return lambda s: needle in s.lower()
            if how == "EndsWith":
                return lambda s: s.lower().endswith(needle)
            return lambda s: s.lower().startswith(needle)
        nr = rq.find("NameRangeFilter")
        if nr is not None:
            lo = (_text(nr, "FromName") or "").lower()
            hi = _text(nr, "ToName")
            hi_l = hi.lower() if hi else None
            return lambda s: s.lower() >= lo and (hi_l is None or s.lower() <= hi_l)
        return lambda s: True

    # ------------------------------------------------------------------ transaction queries

    def _render_txn(self, txn_id: str, includes: list[str], include_lines: bool) -> _Node | None:
        txn = self._txns_by_id.get(txn_id)
        if txn is None:
            return None
        return self._txn_ret(txn, includes, with_lines=include_lines)

    def _txn_query(self, rq, tt: _TxnType) -> _Rs:
        step = self._iterator_step(rq)
        if step is not None:
            return step
        includes = _texts(rq, "IncludeRetElement")
        include_lines = _text(rq, tt.lines_flag) == "true"
        start = rq.get("iterator") == "Start"
        for unsupported in ("AccountFilter", "CurrencyFilter"):
            if rq.find(unsupported) is not None:
                return self._unsupported(rq, f"{unsupported} is not supported by the simulator")
        pool = [t for t in self.transactions if t.kind == tt.kind]

        txn_ids = _texts(rq, "TxnID")
        refs = _texts(rq, "RefNumber")
        refs_cs = _texts(rq, "RefNumberCaseSensitive")
        missing = None
        max_returned = None
        if txn_ids:
            matched = []
            for tid in txn_ids:
                txn = self._txns_by_id.get(tid)
                if txn is None or txn.kind != tt.kind:
                    missing = missing or tid
                elif txn not in matched:
                    matched.append(txn)
        elif refs or refs_cs:
            wanted = {r.lower() for r in refs}
            wanted_cs = set(refs_cs)
            matched = [
                t
                for t in pool
                if t.ref_number is not None and (t.ref_number.lower() in wanted or t.ref_number in wanted_cs)
            ]
        else:
            max_returned = _int(_text(rq, "MaxReturned"))
            matched = pool
            mdr = rq.find("ModifiedDateRangeFilter")
            if mdr is not None:
                f, t_ = _text(mdr, "FromModifiedDate"), _text(mdr, "ToModifiedDate")
                lo = _parse_dt(f, "FromModifiedDate", end=False) if f else None
                hi = _parse_dt(t_, "ToModifiedDate", end=True) if t_ else None
                matched = [
                    t
                    for t in matched
                    if (lo is None or (t.time_modified or t.time_created) >= lo)
                    and (hi is None or (t.time_modified or t.time_created) <= hi)
                ]
            tdr = rq.find("TxnDateRangeFilter")
            if tdr is not None:
                if tdr.find("DateMacro") is not None:
                    return self._unsupported(rq, "DateMacro is not supported by the simulator")
                f, t_ = _text(tdr, "FromTxnDate"), _text(tdr, "ToTxnDate")
                lo_d = _parse_date(f, "FromTxnDate") if f else None
                hi_d = _parse_date(t_, "ToTxnDate") if t_ else None
                matched = [
                    t for t in matched if (lo_d is None or t.txn_date >= lo_d) and (hi_d is None or t.txn_date <= hi_d)
                ]
            ef = rq.find("EntityFilter")
            if ef is not None:
                ids = set(_texts(ef, "ListID")) | set(_texts(ef, "ListIDWithChildren"))
                names = set(_texts(ef, "FullName")) | set(_texts(ef, "FullNameWithChildren"))
                matched = [t for t in matched if t.customer_list_id in ids or t.customer in names]
            rf = rq.find("RefNumberFilter")
            if rf is not None:
                how = _text(rf, "MatchCriterion") or "StartsWith"
                needle = (_text(rf, "RefNumber") or "").lower()

                def ok(ref: str | None) -> bool:
                    r = (ref or "").lower()
                    if how == "Contains":
                        return needle in r
                    if how == "EndsWith":
                        return r.endswith(needle)
                    return r.startswith(needle)

                matched = [t for t in matched if ok(t.ref_number)]
            rr = rq.find("RefNumberRangeFilter")
            if rr is not None:
                lo_r, hi_r = _text(rr, "FromRefNumber"), _text(rr, "ToRefNumber")
                matched = [
                    t
                    for t in matched
                    if t.ref_number is not None
                    and (not lo_r or t.ref_number >= lo_r)
                    and (not hi_r or t.ref_number <= hi_r)
                ]
            paid = _text(rq, "PaidStatus")
            if paid == "PaidOnly":
                matched = [t for t in matched if t.total == 0]
            elif paid == "NotPaidOnly":
                matched = [t for t in matched if t.total != 0]
        matched = sorted(matched, key=lambda t: (t.time_modified or t.time_created, self._txn_order[t.txn_id]))
        return self._page(
            rq,
            [t.txn_id for t in matched],
            self._render_txn,
            max_returned=max_returned,
            includes=includes,
            include_lines=include_lines,
            start=start,
            warn_missing=missing,
        )


def _has_non_latin1(root) -> bool:
    for el in root.iter():
        for s in (el.text, el.tail):
            if s and not _latin1(s):
                return True
        if isinstance(el.tag, str):
            for v in el.attrib.values():
                if not _latin1(v):
                    return True
    return False


def _latin1(s: str) -> bool:
    try:
        s.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
