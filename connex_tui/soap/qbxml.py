"""qbXML 13.0 requests we send to QuickBooks Desktop and the responses we read back.

Requests are built as strings in the exact element order of Intuit's schema (QuickBooks rejects an
out-of-order or unknown element with HRESULT 0x80040400 and gives no hint which one). Every piece of
text goes through `qb_text` first, because QuickBooks Desktop stores ISO-8859-1 only and chokes on
anything else, and is cut to the field's length limit (QuickBooks answers 3070 otherwise).

Responses are parsed leniently: QuickBooks may return enum values and elements newer than the
version we asked for, so they are never schema-validated; we only insist on what we act on: the
`statusCode` of every `...Rs`, its iterator attributes, and the Ret fields we ask for with
IncludeRetElement (one text value each; QuantityOnHand a QUANTYPE, TimeModified a real date and
time). The response is relayed by the Web Connector over the network, so anything else is refused
with QBXMLParseError rather than recorded, or left to fail further on.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal
from xml.sax.saxutils import escape

from lxml import etree

from connex_tui.xmlsafe import UnsafeXMLError, parse_untrusted

__all__ = [
    "QBXML_VERSION",
    "ItemKind",
    "QBResponse",
    "QBXMLParseError",
    "StatusClass",
    "TxnDoc",
    "TxnKind",
    "TxnLine",
    "classify_status",
    "item_query_by_list_id_rq",
    "item_query_rq",
    "memo_for",
    "memo_marker",
    "message_set",
    "negotiate_version",
    "parse_response",
    "qb_text",
    "ref_number_for",
    "txn_add_rq",
    "txn_changes_rq",
    "txn_query_by_ref_rq",
    "touched_list_ids",
    "TxnSource",
    "TXN_SOURCES",
]

QBXML_VERSION = "13.0"

TxnKind = Literal["sales_receipt", "invoice", "sales_order", "credit_memo"]
ItemKind = Literal["inventory", "assembly"]
StatusClass = Literal["ok", "no_match", "warning", "missing_reference", "locked", "iterator_invalid", "error"]

# QuickBooks Desktop field limits (reference §7.5; the schema enforces the same maxLength values).
REF_NUMBER_MAX = 11
MEMO_MAX = 4095
DESC_MAX = 4095
ITEM_FULLNAME_MAX = 159
CUSTOMER_FULLNAME_MAX = 209

_TXN_PREFIX: dict[str, str] = {
    "sales_receipt": "SalesReceipt",
    "invoice": "Invoice",
    "sales_order": "SalesOrder",
    "credit_memo": "CreditMemo",
}
_ITEM_QUERY: dict[str, str] = {
    "inventory": "ItemInventoryQueryRq",
    "assembly": "ItemInventoryAssemblyQueryRq",
}
_ON_ERROR = frozenset({"continueOnError", "stopOnError", "rollbackOnError"})

_ADD_RETURNS = ("TxnID", "EditSequence", "RefNumber", "Memo")
_QUERY_RETURNS = ("TxnID", "RefNumber", "Memo", "TxnDate")
_ITEM_RETURNS = (
    "ListID",
    "TimeModified",
    "EditSequence",
    "Name",
    "FullName",
    "IsActive",
    "ManufacturerPartNumber",
    "QuantityOnHand",
)
# What a response's Rets may hold of what we asked for: one text value each (see _check_ret).
_RET_FIELDS = frozenset(_ADD_RETURNS + _QUERY_RETURNS + _ITEM_RETURNS)

# DATETIMETYPE from qbxmltypes130.xsd (without its empty-string alternative).
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(T[0-9]{1,2}(:[0-9]{1,2}(:[0-9]{1,2}([+-][0-9]{1,2}:[0-9]{1,2})?)?)?)?"
)
_VERSION_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}")
# IDTYPE: at most 36 characters; QuickBooks writes "80000003-1446676743".
_LIST_ID_RE = re.compile(r"[0-9A-Za-z-]{1,36}")
_INT_RE = re.compile(r"[+-]?[0-9]+")  # not int(): it would accept "1_0" and non-ASCII digits
# INTTYPE as QuickBooks writes it (a 32-bit int). The bound also keeps int() away from thousands of
# digits (a ValueError past 4300) and SQLite away from integers it cannot store (OverflowError).
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# QUANTYPE from qbxmltypes130.xsd: no exponent, no NaN or Infinity, at most 10 + 5 digits.
_QUANTITY_RE = re.compile(r"[+-]?[0-9]{1,10}(\.[0-9]{1,5})?")
# DATETIMETYPE zero-padded, as QuickBooks writes TimeModified; the groups are checked as a date too.
_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})(?:[+-]([0-9]{2}):([0-9]{2}))?)?)?)?"
)

# Typographic characters NFKD leaves alone but that have an obvious Latin-1 spelling.
_TYPOGRAPHIC: dict[str, str] = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u2035": "'",
    "\u2039": "'",
    "\u203a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u2036": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2043": "-",
    "\ufe58": "-",
    "\ufe63": "-",
    "\uff0d": "-",
    "\u2022": "*",
    "\u2026": "...",
}


# ---------------------------------------------------------------------------------------------
# Documents


@dataclass(frozen=True)
class TxnLine:
    item: str  # QuickBooks item FullName
    quantity: Decimal
    rate: Decimal | None = None
    desc: str | None = None


@dataclass(frozen=True)
class TxnDoc:
    ref_number: str  # <= 11 chars (use ref_number_for)
    memo: str  # carries our duplicate-check marker, see memo_for
    customer: str  # customer FullName
    lines: tuple[TxnLine, ...]
    txn_date: date | None = None


# ---------------------------------------------------------------------------------------------
# Text


def _latin1(value: str) -> str:
    """`value` reduced to what QuickBooks Desktop can store: Latin-1 without control characters."""
    # NFC first so a decomposed "e" + U+0301 becomes the Latin-1 "é" instead of a bare "e".
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if code < 0x100:
            # C0 controls other than tab/newline are not even legal XML; DEL and C1 are junk.
            if (code < 0x20 and ch not in "\t\n") or 0x7F <= code <= 0x9F:
                continue
            out.append(ch)
            continue
        mapped = _TYPOGRAPHIC.get(ch)
        if mapped is not None:
            out.append(mapped)
            continue
        category = unicodedata.category(ch)
        if category in ("Mn", "Me", "Cf"):
            # stray combining marks, variation selectors, zero-width joiners: invisible, drop.
            continue
        decomposed = unicodedata.normalize("NFKD", ch)
        kept = [
            c for c in decomposed if ord(c) < 0x100 and not unicodedata.combining(c) and unicodedata.category(c) != "Cc"
        ]
        out.append("".join(kept) if kept else "?")
    return "".join(out)


def qb_text(value: str, max_len: int) -> str:
    """Make `value` safe for a QuickBooks text field and at most `max_len` characters long.

    Anything outside Latin-1 is transliterated (NFKD, typographic quotes and dashes mapped to
    ASCII) or replaced by '?'; control characters are dropped; nothing else is collapsed.
    XML escaping is not done here but when the element is written.
    """
    if max_len < 0:
        raise ValueError(f"max_len must not be negative, got {max_len}")
    return _latin1(str(value))[:max_len]


def _code(store_id: str) -> str:
    digest = hashlib.sha1(store_id.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest).decode("ascii")


def ref_number_for(order_number: str, store_id: str) -> str:
    """RefNumber for a store order: the order number when it fits in 11 characters, else a
    stable 11-character code derived from `store_id` ("W" + 10 base32 characters of its SHA-1,
    50 bits: collisions between different store ids are not a practical concern)."""
    text = _latin1(str(order_number)).strip()
    if 0 < len(text) <= REF_NUMBER_MAX:
        return text
    return "W" + _code(str(store_id))[: REF_NUMBER_MAX - 1]


def memo_marker(store_id: str) -> str:
    """The duplicate-check marker "[cx:<store_id>]" that `memo_for` puts in every memo.

    A store id that would not survive `qb_text` unchanged (non-Latin-1, control characters,
    brackets, very long) is replaced by "#" + a hash, so that two such ids cannot end up with
    the same marker after QuickBooks has stored it.
    """
    sid = str(store_id)
    if sid and len(sid) <= 64 and sid.isprintable() and _latin1(sid) == sid and "[" not in sid and "]" not in sid:
        return f"[cx:{sid}]"
    return f"[cx:#{_code(sid)[:16]}]"


def memo_for(order_number: str, store_id: str) -> str:
    """Memo for a store order, e.g. "Web order #1001 [cx:8812]"; the marker always fits."""
    marker = memo_marker(store_id)
    head = "Web order #"
    number = qb_text(str(order_number), MEMO_MAX - len(head) - len(marker) - 1)
    return f"{head}{number} {marker}"


# ---------------------------------------------------------------------------------------------
# Builders


def negotiate_version(major: object, minor: object) -> str:
    """The lower of QBXML_VERSION and the version the Web Connector reported; QBXML_VERSION
    when either part is missing or not a plain non-negative integer."""
    parts: list[int] = []
    for part in (major, minor):
        if part is None or isinstance(part, bool):
            return QBXML_VERSION
        text = str(part).strip()
        if not text.isascii() or not text.isdigit() or len(text) > 3:
            return QBXML_VERSION
        parts.append(int(text))
    if parts[0] < 1:
        return QBXML_VERSION
    ours = tuple(int(p) for p in QBXML_VERSION.split("."))
    theirs = (parts[0], parts[1])
    if theirs >= ours:
        return QBXML_VERSION
    return f"{theirs[0]}.{theirs[1]}"


def _text(value: str) -> str:
    # Non-ASCII Latin-1 as numeric references (as quickbooks-php does): the request then survives
    # any encoding confusion between us, the Web Connector and QuickBooks.
    return escape(value).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _attr(value: str) -> str:
    escaped = escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
    return '"' + escaped.encode("ascii", "xmlcharrefreplace").decode("ascii") + '"'


def _el(name: str, text: str) -> str:
    return f"<{name}>{_text(text)}</{name}>"


def _request_attrs(request_id: str, **extra: str | None) -> str:
    rid = _attr_value("request_id", request_id)
    out = f" requestID={_attr(rid)}"
    for key, value in extra.items():
        if value is not None:
            out += f" {key}={_attr(value)}"
    return out


def _iterator_attrs(request_id: str, iterator: str, iterator_id: str | None) -> str:
    """The attributes of an iterated query: `iterator="Start"`, or `"Continue"` with its iteratorID."""
    if iterator == "Start":
        if iterator_id is not None:
            raise ValueError("iterator_id is only sent with iterator='Continue'")
        return _request_attrs(request_id, iterator="Start")
    if iterator == "Continue":
        return _request_attrs(request_id, iterator="Continue", iteratorID=_attr_value("iterator_id", iterator_id))
    raise ValueError(f"iterator must be 'Start' or 'Continue', got {iterator!r}")


def _attr_value(what: str, value: object) -> str:
    """An id we put in an attribute and expect echoed back verbatim: refuse, never alter, it."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if _latin1(value) != value or "\n" in value or "\t" in value:
        raise ValueError(f"{what} {value!r} has characters QuickBooks would not echo back unchanged")
    return value


def message_set(requests: Sequence[str], version: str = QBXML_VERSION, on_error: str = "continueOnError") -> str:
    """Wrap request elements in the qbXML envelope (compact, no leading whitespace)."""
    if isinstance(requests, str):
        raise TypeError("requests must be a sequence of request strings, not one string")
    if not _VERSION_RE.fullmatch(version):
        raise ValueError(f"not a qbXML version: {version!r}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"onError must be one of {sorted(_ON_ERROR)}, got {on_error!r}")
    body = "".join(requests)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<?qbxml version="{version}"?>'
        f'<QBXML><QBXMLMsgsRq onError="{on_error}">{body}</QBXMLMsgsRq></QBXML>'
    )


def _number(value: object, what: str) -> str:
    """QUANTYPE/PRICETYPE text: at most 10 integer digits and 5 decimals, no exponent."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float)):
        raise ValueError(f"{what} must be a Decimal, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        if not number.is_finite():
            raise ValueError(f"{what} must be finite, got {value!r}")
        number = number.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(f"{what} is out of range: {value!r}") from None
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", "+0"):
        text = "0"
    if len(text.lstrip("+-").split(".")[0]) > 10:
        raise ValueError(f"{what} has more than 10 integer digits: {value!r}")
    return text


def _date(value: date) -> str:
    if not isinstance(value, date):
        raise ValueError(f"txn_date must be a date, got {value!r}")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _txn_prefix(kind: str) -> str:
    try:
        return _TXN_PREFIX[kind]
    except KeyError:
        raise ValueError(f"unknown transaction kind {kind!r}; expected one of {sorted(_TXN_PREFIX)}") from None


def _include(names: Sequence[str]) -> str:
    return "".join(_el("IncludeRetElement", name) for name in names)


def txn_add_rq(kind: TxnKind, doc: TxnDoc, request_id: str) -> str:
    """SalesReceiptAddRq / InvoiceAddRq / SalesOrderAddRq / CreditMemoAddRq for `doc`."""
    prefix = _txn_prefix(kind)
    customer = qb_text(doc.customer, CUSTOMER_FULLNAME_MAX)
    if not customer:
        raise ValueError("a transaction needs a customer FullName")
    if not doc.lines:
        raise ValueError("a transaction needs at least one line")
    parts = [f"<{prefix}AddRq{_request_attrs(request_id)}><{prefix}Add>"]
    # Header, in schema order: CustomerRef, (ClassRef, ARAccountRef, TemplateRef), TxnDate, RefNumber, ..., Memo.
    parts.append(f"<CustomerRef>{_el('FullName', customer)}</CustomerRef>")
    if doc.txn_date is not None:
        parts.append(_el("TxnDate", _date(doc.txn_date)))
    ref = qb_text(doc.ref_number, REF_NUMBER_MAX)
    if ref:  # an empty RefNumber would make QuickBooks number it itself; leave it out instead
        parts.append(_el("RefNumber", ref))
    memo = qb_text(doc.memo, MEMO_MAX)
    if memo:
        parts.append(_el("Memo", memo))
    for index, line in enumerate(doc.lines, 1):
        item = qb_text(line.item, ITEM_FULLNAME_MAX)
        if not item:
            raise ValueError(f"line {index} has no item FullName")
        parts.append(f"<{prefix}LineAdd><ItemRef>{_el('FullName', item)}</ItemRef>")
        if line.desc:
            desc = qb_text(line.desc, DESC_MAX)
            if desc:
                parts.append(_el("Desc", desc))
        parts.append(_el("Quantity", _number(line.quantity, f"line {index} quantity")))
        if line.rate is not None:
            parts.append(_el("Rate", _number(line.rate, f"line {index} rate")))
        parts.append(f"</{prefix}LineAdd>")
    parts.append(f"</{prefix}Add>")
    parts.append(_include(_ADD_RETURNS))
    parts.append(f"</{prefix}AddRq>")
    return "".join(parts)


def txn_query_by_ref_rq(kind: TxnKind, ref_numbers: Sequence[str], request_id: str) -> str:
    """SalesReceiptQueryRq etc. looking transactions up by RefNumber (the duplicate check)."""
    prefix = _txn_prefix(kind)
    if isinstance(ref_numbers, str):
        raise TypeError("ref_numbers must be a sequence of strings, not one string")
    refs: list[str] = []
    for raw in ref_numbers:
        ref = qb_text(raw, REF_NUMBER_MAX)  # the same cut txn_add_rq applies, so they match
        if ref and ref not in refs:
            refs.append(ref)
    if not refs:
        # without a RefNumber the query would return every transaction in the company file
        raise ValueError("txn_query_by_ref_rq needs at least one non-empty RefNumber")
    body = "".join(_el("RefNumber", ref) for ref in refs)
    return f"<{prefix}QueryRq{_request_attrs(request_id)}>{body}{_include(_QUERY_RETURNS)}</{prefix}QueryRq>"


def item_query_by_list_id_rq(kind: ItemKind, request_id: str, list_ids: Sequence[str]) -> str:
    """ItemInventoryQueryRq / ItemInventoryAssemblyQueryRq for these ListIDs, answering only the
    fields we record (IncludeRetElement). ListID+ excludes every filter (schema choice), so no
    iterator: the caller sends at most a page of ListIDs at a time."""
    try:
        name = _ITEM_QUERY[kind]
    except KeyError:
        raise ValueError(f"unknown item kind {kind!r}; expected one of {sorted(_ITEM_QUERY)}") from None
    if isinstance(list_ids, str) or not list_ids:
        raise ValueError("item_query_by_list_id_rq needs a non-empty sequence of ListIDs")
    ids = []
    for list_id in list_ids:
        if not isinstance(list_id, str) or not _LIST_ID_RE.fullmatch(list_id):
            raise ValueError(f"not a QuickBooks ListID: {list_id!r}")
        if list_id not in ids:
            ids.append(list_id)
    body = "".join(_el("ListID", list_id) for list_id in ids)
    return f"<{name}{_request_attrs(request_id)}>{body}{_include(_ITEM_RETURNS)}</{name}>"


@dataclass(frozen=True)
class TxnSource:
    """A transaction type that moves quantity on hand, and where its Ret names items."""

    qb_name: str  # "SalesReceipt"
    lines: tuple[str, ...]  # the line (and line group) Rets holding an ItemRef, as qbxml130.xsd names them
    lines_flag: str = "IncludeLineItems"  # the query element that asks for the lines
    refs: tuple[str, ...] = ()  # item references on the Ret itself


# Every transaction that moves an item's QuantityOnHand (QuickBooks' TxnTypeFilter enumeration in
# qbxml130.xsd, less the ones that carry no items or leave quantity on hand alone, such as sales
# orders, estimates and purchase orders). BuildAssembly is Premier/Enterprise only (3250 on Pro).
TXN_SOURCES: tuple[TxnSource, ...] = (
    TxnSource("SalesReceipt", ("SalesReceiptLineRet", "SalesReceiptLineGroupRet")),
    TxnSource("Invoice", ("InvoiceLineRet", "InvoiceLineGroupRet")),
    TxnSource("CreditMemo", ("CreditMemoLineRet", "CreditMemoLineGroupRet")),
    TxnSource("InventoryAdjustment", ("InventoryAdjustmentLineRet",)),
    TxnSource("ItemReceipt", ("ItemLineRet", "ItemGroupLineRet")),
    TxnSource("Bill", ("ItemLineRet", "ItemGroupLineRet")),
    TxnSource("VendorCredit", ("ItemLineRet", "ItemGroupLineRet")),
    TxnSource("Check", ("ItemLineRet", "ItemGroupLineRet")),
    TxnSource("CreditCardCharge", ("ItemLineRet", "ItemGroupLineRet")),
    TxnSource("CreditCardCredit", ("ItemLineRet", "ItemGroupLineRet")),
    TxnSource("BuildAssembly", ("ComponentItemLineRet",), "IncludeComponentLineItems", ("ItemInventoryAssemblyRef",)),
)
TXN_SOURCE = {source.qb_name: source for source in TXN_SOURCES}


def txn_changes_rq(
    source: TxnSource,
    request_id: str,
    *,
    from_modified: str,
    max_returned: int = 100,
    iterator: Literal["Start", "Continue"] = "Start",
    iterator_id: str | None = None,
) -> str:
    """`<source>QueryRq` for the transactions modified since `from_modified` (inclusive), with their
    lines, answering only TxnID, TimeModified and the lines (IncludeRetElement keeps it small)."""
    if isinstance(max_returned, bool) or not isinstance(max_returned, int) or max_returned < 1:
        raise ValueError(f"max_returned must be a positive int, got {max_returned!r}")
    if not isinstance(from_modified, str) or not _DATETIME_RE.fullmatch(from_modified):
        raise ValueError(f"from_modified is not a qbXML DATETIMETYPE: {from_modified!r}")
    attrs = _iterator_attrs(request_id, iterator, iterator_id)
    name = f"{source.qb_name}QueryRq"
    return (
        f"<{name}{attrs}>{_el('MaxReturned', str(max_returned))}"
        f"<ModifiedDateRangeFilter>{_el('FromModifiedDate', from_modified)}</ModifiedDateRangeFilter>"
        f"{_el(source.lines_flag, 'true')}{_include(('TxnID', 'TimeModified', *source.refs, *source.lines))}</{name}>"
    )


def touched_list_ids(ret: dict[str, Any], source: TxnSource) -> set[str]:
    """The ListIDs of the items a transaction Ret names: ItemRef in its lines (also inside line
    groups) and the source's own item references. Anything oddly shaped is passed over."""
    found: set[str] = set()

    def ref(value: Any) -> None:
        if isinstance(value, dict):
            list_id = value.get("ListID")
            if isinstance(list_id, str) and _LIST_ID_RE.fullmatch(list_id.strip()):
                found.add(list_id.strip())

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for entry in value:
                walk(entry)
        elif isinstance(value, dict):
            for key, inner in value.items():
                if key == "ItemRef":
                    for one in inner if isinstance(inner, list) else [inner]:
                        ref(one)
                elif key.endswith("LineRet") or key.endswith("LineGroupRet") or key == "ItemGroupLineRet":
                    walk(inner)

    for name in source.refs:
        ref(ret.get(name))
    for name in source.lines:
        walk(ret.get(name))
    return found


def item_query_rq(
    kind: ItemKind,
    request_id: str,
    *,
    max_returned: int = 100,
    from_modified: str | None = None,
    iterator: Literal["Start", "Continue"] = "Start",
    iterator_id: str | None = None,
) -> str:
    """ItemInventoryQueryRq / ItemInventoryAssemblyQueryRq, one page of an iterator.

    The filters are re-sent on Continue: whether QuickBooks ignores them then is unverified.
    """
    try:
        name = _ITEM_QUERY[kind]
    except KeyError:
        raise ValueError(f"unknown item kind {kind!r}; expected one of {sorted(_ITEM_QUERY)}") from None
    if isinstance(max_returned, bool) or not isinstance(max_returned, int) or max_returned < 1:
        raise ValueError(f"max_returned must be a positive int, got {max_returned!r}")
    attrs = _iterator_attrs(request_id, iterator, iterator_id)
    parts = [f"<{name}{attrs}>", _el("MaxReturned", str(max_returned)), _el("ActiveStatus", "All")]
    if from_modified is not None:
        if not isinstance(from_modified, str) or not _DATETIME_RE.fullmatch(from_modified):
            raise ValueError(f"from_modified is not a qbXML DATETIMETYPE: {from_modified!r}")
        parts.append(_el("FromModifiedDate", from_modified))
    parts.append(_include(_ITEM_RETURNS))
    parts.append(f"</{name}>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Responses


class QBXMLParseError(ValueError):
    """A qbXML response we cannot act on; the message names what was wrong."""


@dataclass
class QBResponse:
    name: str  # local element name, e.g. "SalesReceiptAddRs"
    request_id: str | None
    status_code: int
    severity: str  # "Info" | "Warn" | "Error" (or whatever newer value QuickBooks sends)
    message: str
    iterator_id: str | None = None
    iterator_remaining: int | None = None
    rets: list[dict[str, Any]] = field(default_factory=list)


def _name(tag: object) -> str | None:
    # inlined local_name(): this runs once per element of a 10 MB response
    if not isinstance(tag, str):
        return None
    if tag[0] == "{":
        return tag.rsplit("}", 1)[1]
    return tag


def _to_dict(element: etree._Element) -> dict[str, Any]:
    """Leaf children -> text, element children -> nested dict, repeated names -> list."""
    out: dict[str, Any] = {}
    for child in element:
        name = _name(child.tag)
        if name is None:
            continue
        if len(child):
            if any(isinstance(grandchild.tag, str) for grandchild in child):
                value: Any = _to_dict(child)
            else:  # text split by a comment or processing instruction is still one text
                value = "".join(child.itertext())
        else:
            value = child.text or ""
        if name in out:
            existing = out[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[name] = [existing, value]
        else:
            out[name] = value
    return out


def _show(value: str, limit: int = 60) -> str:
    """`value` for an error message: repr, cut short."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def _int_attr(element: etree._Element, name: str, attr: str, *, required: bool, minimum: int = _INT_MIN) -> int | None:
    raw = element.get(attr)
    if raw is None:
        if required:
            raise QBXMLParseError(f"{name} has no {attr} attribute")
        return None
    text = raw.strip()
    if not _INT_RE.fullmatch(text):
        raise QBXMLParseError(f"{name} has a non-integer {attr}: {_show(raw)}")
    digits = text.lstrip("+-").lstrip("0")
    value = 0 if len(digits) > 10 else int(digits or "0") * (-1 if text.startswith("-") else 1)
    if len(digits) > 10 or not minimum <= value <= _INT_MAX:
        raise QBXMLParseError(f"{name} has an out-of-range {attr}: {_show(raw)}")
    return value


def _is_time(text: str) -> bool:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second, offset_hours, offset_minutes = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return False
    return offset_hours is None or (int(offset_hours) <= 23 and int(offset_minutes) <= 59)


def _check_ret(rs_name: str, ret_name: str, index: int, ret: dict[str, Any]) -> None:
    """The Ret fields we ask for (and act on) are one text each, and the typed ones are well-typed;
    what else a Ret holds is not our business."""
    where = f"{rs_name}: {ret_name} {index}"
    for key, value in ret.items():
        if key in _RET_FIELDS and not isinstance(value, str):
            shape = "more than one" if isinstance(value, list) else "a structured"
            raise QBXMLParseError(f"{where} has {shape} {key} where one text value belongs")
    quantity = ret.get("QuantityOnHand")
    if quantity is not None and quantity.strip() and not _QUANTITY_RE.fullmatch(quantity.strip()):
        raise QBXMLParseError(f"{where} has a QuantityOnHand that is not a qbXML quantity: {_show(quantity)}")
    modified = ret.get("TimeModified")
    if modified and not _is_time(modified):
        raise QBXMLParseError(f"{where} has a TimeModified that is not a qbXML date and time: {_show(modified)}")


def _iterator_id(rs: etree._Element, name: str) -> str | None:
    """The iteratorID, which we send back verbatim in the next request: one QuickBooks could not
    read back unchanged (outside Latin-1, control characters) is refused here, not there."""
    value: str | None = rs.get("iteratorID")
    if value and (_latin1(value) != value or "\n" in value or "\t" in value):
        raise QBXMLParseError(f"{name} has an iteratorID that cannot be sent back to QuickBooks: {_show(value)}")
    return value


def _default_severity(code: int) -> str:
    if 0 <= code < 500:
        return "Info"
    if 500 <= code < 1000:
        return "Warn"
    return "Error"


def parse_response(xml: str | bytes) -> list[QBResponse]:
    """One QBResponse per `...Rs` element of a QBXML/QBXMLMsgsRs response, in document order."""
    data: str | bytes
    if isinstance(xml, str):
        data = xml.strip()  # text: parse_untrusted ignores the encoding its declaration names
    elif isinstance(xml, (bytes, bytearray)):
        data = bytes(xml).strip()
    else:
        raise QBXMLParseError(f"expected qbXML text, got {type(xml).__name__}")
    if not data:
        raise QBXMLParseError("empty qbXML response")
    try:
        root = parse_untrusted(data)
    except UnsafeXMLError as exc:
        raise QBXMLParseError(f"unreadable qbXML response: {exc}") from exc

    root_name = _name(root.tag)
    if root_name == "QBXMLMsgsRs":
        sets = [root]
    elif root_name == "QBXML":
        sets = [child for child in root if _name(child.tag) == "QBXMLMsgsRs"]
        if not sets:
            raise QBXMLParseError("QBXML response has no QBXMLMsgsRs element")
    else:
        raise QBXMLParseError(f"expected a QBXML or QBXMLMsgsRs root element, got {root_name!r}")

    responses: list[QBResponse] = []
    for msgs in sets:
        for rs in msgs:
            name = _name(rs.tag)
            if name is None or not name.endswith("Rs"):
                continue  # comments, PIs, and anything that is not a response: tolerate
            code = _int_attr(rs, name, "statusCode", required=True)
            assert code is not None
            rets: list[dict[str, Any]] = []
            for child in rs:
                ret_name = _name(child.tag)
                if ret_name is not None and ret_name.endswith("Ret"):
                    ret = _to_dict(child)
                    _check_ret(name, ret_name, len(rets) + 1, ret)
                    rets.append(ret)
            responses.append(
                QBResponse(
                    name=name,
                    request_id=rs.get("requestID"),
                    status_code=code,
                    severity=rs.get("statusSeverity") or _default_severity(code),
                    message=rs.get("statusMessage") or "",
                    iterator_id=_iterator_id(rs, name),
                    iterator_remaining=_int_attr(rs, name, "iteratorRemainingCount", required=False, minimum=0),
                    rets=rets,
                )
            )
    return responses


def classify_status(code: int) -> StatusClass:
    """What a statusCode means for us (ranges from Intuit's status code table, reference §5.3)."""
    if code == 0:
        return "ok"
    if code == 1:
        return "no_match"
    if 2 <= code <= 499:
        return "ok"  # informational
    if 500 <= code <= 999:
        return "warning"
    if code == 3140:
        return "missing_reference"
    if 3170 <= code <= 3180:
        return "locked"
    if code == 3391:
        return "iterator_invalid"
    return "error"
