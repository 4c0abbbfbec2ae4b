"""The one small protocol every storefront client implements, and the values it speaks in.

The engine drives storefronts only through `Storefront`; platform quirks (pagination, batch
endpoints, GraphQL costs, authentication) stay inside each platform's module. This module imports
nothing from the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True)
class StoreLine:
    """One line of an order or of a restock: the store's SKU, units, unit price and name."""

    sku: str
    quantity: Decimal
    price: Decimal | None = None
    name: str = ""


@dataclass(frozen=True)
class StoreRefund:
    """Stock an order put back on the shelf: a refund's restocked lines, or a cancellation's
    (`lines` holds only units restocked at the synced location). `refund_id` is stable across
    reads and unique within the order; the engine gives QuickBooks each restocked unit once."""

    refund_id: str
    lines: tuple[StoreLine, ...]
    created_at: str = ""


@dataclass(frozen=True)
class StoreOrder:
    """One order: what a store client reads, and what the engine keeps (`orders.insert_order`),
    a credit memo it derives from a restock included. The engine reads `cancelled`, `refunds`
    and `problem` when importing; it stores the identity, status, customer, times, lines and
    `raw`."""

    store_id: str  # the platform's own id, unique per store
    number: str  # what the merchant and the customer call it ("1001")
    lines: tuple[StoreLine, ...] = ()
    status: str = "processing"  # the platform's status word ("processing", "paid", "cancelled"...)
    customer: str = ""
    created_at: str = ""  # ISO 8601 when the order was placed, "" when unknown (stored as placed_at)
    modified_at: str = ""  # ISO 8601 UTC, what the watermark follows
    cancelled: bool = False
    refunds: tuple[StoreRefund, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    # Set when the store's answer for this order holds a value that cannot be right (NaN, a word
    # where a count belongs...): the order cannot be posted as it is, and the reason says why.
    problem: str = ""


@dataclass(frozen=True)
class CatalogEntry:
    """One SKU on the store and what it takes to set its stock."""

    sku: str
    item_id: str  # WooCommerce product or variation id; Shopify InventoryItem gid
    parent_id: str | None = None  # WooCommerce: the parent product of a variation
    quantity: int | None = None  # the store's current stock, when it tracks it
    managed: bool = True  # the store tracks stock for it
    problem: str = ""  # the store's answer for it was unusable: pushes to this SKU fail with this reason


@dataclass(frozen=True)
class StockUpdate:
    sku: str
    quantity: int
    entry: CatalogEntry


@dataclass(frozen=True)
class StockResult:
    sku: str
    ok: bool
    before: int | None = None
    after: int | None = None
    reason: str = ""
    permanent: bool = False  # a failure that retrying the same update cannot fix


# Upper bounds (seconds) of the store round-trip histogram: a local emulator answers in a few
# milliseconds, a busy WordPress batch of 100 in seconds, the default timeout is 60.
ROUND_TRIP_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class RoundTrips:
    """A fixed-bucket histogram of request durations: constant memory however long it runs."""

    bounds: tuple[float, ...] = ROUND_TRIP_BOUNDS
    counts: list[int] = field(default_factory=lambda: [0] * (len(ROUND_TRIP_BOUNDS) + 1))
    total_seconds: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        slot = next((i for i, bound in enumerate(self.bounds) if seconds <= bound), len(self.bounds))
        self.counts[slot] += 1
        self.total_seconds += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), the last bound being +inf."""
        running, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            out.append((bound, running))
        return out


@dataclass
class RequestStats:
    """What a client sent, for the benchmarks, the dashboard, /metrics and tests."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    waited_seconds: float = 0.0
    notice: str = ""  # a standing remark for the dashboard ("Shopify serves API 2026-04, not ...")
    round_trips: RoundTrips = field(default_factory=RoundTrips)


class StorefrontError(Exception):
    """The store could not be reached or refused us; the message is written for a merchant."""


class CredentialsError(StorefrontError):
    """401/403: retrying will not help until someone fixes the keys."""


class StoreUnavailable(StorefrontError):
    """Retries ran out on 429/5xx/timeouts/connection errors; try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Storefront(Protocol):
    platform: str
    batch_limit: int  # the most stock updates one request may carry
    stats: RequestStats

    async def list_orders(self, modified_since: datetime | None) -> list[StoreOrder]:
        """Every order modified at or after `modified_since` (all orders when None; a naive time
        is UTC, see `as_utc`)."""

    async def catalog(self) -> list[CatalogEntry]:
        """Every SKU on the store with its ids and current stock."""

    async def set_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        """Set absolute stock for at most `batch_limit` SKUs; one result per update, same order."""

    async def close(self) -> None: ...


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive time (no tzinfo) is taken to be UTC already. The store clients
    read their times, and the times they are given, through this one rule."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
