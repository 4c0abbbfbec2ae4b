"""The typed state a Web Connector session keeps with its row (`qbwc_sessions.state`, JSON).

The plan itself is derived from the database at every call; this is only what the database does
not say: where the item read and the transaction scan are, which requests are out with
QuickBooks, the counters for the closing summary, and the error to report. The JSON keeps the
names it always had, so a session begun before an upgrade goes on after it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ..soap.qbxml import QBXML_VERSION

ITEM_KINDS = ("inventory", "assembly")

RequestKind = Literal["check", "add", "items", "txns", "touched"]


@dataclass
class Outstanding:
    """One request of the message set QuickBooks has: what it was for, and the Rs it must answer."""

    type: RequestKind
    rs: str  # the response element expected, e.g. "SalesReceiptAddRs"
    order: int | None = None  # add: the order
    orders: list[int] = field(default_factory=list)  # check: the orders looked up
    kind: str | None = None  # check: transaction kind; items/touched: item kind
    source: str | None = None  # txns: the transaction type scanned
    ids: list[str] = field(default_factory=list)  # touched: the ListIDs asked for


@dataclass
class ItemRead:
    """The read of items by TimeModified, one kind after the other, each with an iterator."""

    phase: int = 0  # index into ITEM_KINDS; len(ITEM_KINDS) when done
    iterator_id: str | None = None
    remaining: int | None = None
    max_seen: str | None = None  # newest TimeModified of this kind so far (its next watermark)
    restarts: int = 0
    start: str | None = None  # the FromModifiedDate this kind's iterator started from

    @property
    def done(self) -> bool:
        return self.phase >= len(ITEM_KINDS)

    @property
    def kind(self) -> str:
        return ITEM_KINDS[self.phase]

    def reset_iterator(self) -> None:
        self.iterator_id = None
        self.remaining = None

    def next_kind(self) -> None:
        self.phase += 1
        self.iterator_id = self.remaining = self.max_seen = None
        self.restarts = 0


@dataclass
class TxnScan:
    """One transaction type's scan for what was modified since its watermark."""

    start: str  # FromModifiedDate
    iterator_id: str | None = None
    remaining: int | None = None
    max_seen: str | None = None
    restarts: int = 0


@dataclass
class SessionState:
    version: str = QBXML_VERSION
    done: int = 0  # responses recorded
    outstanding: dict[str, Outstanding] | None = None  # requestID -> what it asked
    items: ItemRead = field(default_factory=ItemRead)
    items_complete: bool = False
    txns: dict[str, TxnScan] | None = None  # None: the scan has not begun
    touched_ids: list[str] = field(default_factory=list)  # ListIDs the scan found so far
    touched: dict[str, list[str]] | None = None  # per item kind, ListIDs still to read; None: not yet known
    posted: int = 0
    failed: int = 0
    found: int = 0
    items_read: int = 0
    queued: int = 0
    error: str | None = None
    finished: bool = False
    company: str | None = None  # the company file of this session (CompanyFile JSON)
    wrong_company: bool = False

    def to_json(self) -> str:
        data = asdict(self)
        data["items"]["from"] = data["items"].pop("start")
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> SessionState:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in data.items() if k in known and k not in ("items", "txns", "outstanding")})
        items = dict(data.get("items") or {})
        items["start"] = items.pop("from", None)
        state.items = ItemRead(**{k: v for k, v in items.items() if k in {f.name for f in fields(ItemRead)}})
        if data.get("txns") is not None:
            state.txns = {name: _txn_scan(scan) for name, scan in data["txns"].items()}
        if data.get("outstanding") is not None:
            state.outstanding = {rid: Outstanding(**entry) for rid, entry in data["outstanding"].items()}
        return state

    def summary(self) -> str:
        parts = [f"{self.posted} orders posted"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{self.items_read} items read")
        return "OK: " + ", ".join(parts)


def _txn_scan(data: dict[str, Any]) -> TxnScan:
    data = dict(data)
    data["start"] = data.pop("from", data.get("start"))
    return TxnScan(**{k: v for k, v in data.items() if k in {f.name for f in fields(TxnScan)}})
