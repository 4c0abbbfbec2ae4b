"""Shopify, over the Admin GraphQL API (REST is legacy there since 2024-10).

* Orders: `orders(query: "updated_at:>='…'", sortKey: UPDATED_AT)` with cursor pages; only filters
  the real schema documents for `orders(query:)` are sent, and an `extensions.search` warning (Shopify
  ignored part of the search) is an error with Shopify's message. A line is posted with
  `LineItem.quantity` (every unit ordered, refunded and removed ones included) at the unit price
  after all discounts (`discountedUnitPriceAfterAllDiscountsSet`, like WooCommerce's line `price`).
  Every unit that later goes back on our shelf reaches the engine as a `StoreRefund` with a stable
  id: a refund's lines restocked at the configured location (`restocked`, `location`; a
  cancellation with restock is such a refund, restockType CANCEL), and an order edit's removed units
  (`OrderEditAgreement` RETURN sales). So (units posted) - (units in credit memos) is what the order
  took from our location, whether the order is read before or after its refunds and edits. The
  refunds and edits of an order are read by one follow-up `order(id:)` query, only for orders whose
  `currentQuantity` differs from `quantity` on some line.
* Catalog: `productVariants` pages, each variant's InventoryItem gid, `tracked` and the `available`
  quantity at the configured location.
* Stock: `inventorySetQuantities(name: "available")`, at most 250 quantities a call, in the shape of
  the API version Shopify actually serves (the `X-Shopify-API-Version` of each answer; a retired
  version is served by the oldest supported one): up to 2025-10 `ignoreCompareQuantity: true`; from
  2026-01 `changeFromQuantity` on each quantity and an `@idempotent` key per call (reused when that
  same call is retried; a fresh one after IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED). userErrors are mapped
  back to the SKU by the index in their field path.
* Cost: `ShopifyPacer` (below) is the one place that decides page sizes and waits: from each answer's
  requestedQueryCost it learns what a page costs, from throttleStatus (after Shopify refunded the
  difference to actualQueryCost) what the bucket holds, and it waits before a call exactly as long as
  the bucket needs to afford the call's requested cost.
* Untrusted numbers: a NaN, an infinity, a fraction, a string or an absurd count in an order, a
  refund, a variant or a mutation answer fails that one order or SKU with a reason, never the page.
* HTTP: 429/5xx/timeouts/dropped connections are retried by `request_with_retry`; 401/403 raise
  CredentialsError. The access token never appears in a message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp

from . import numbers
from .base import (
    CatalogEntry,
    CredentialsError,
    RequestStats,
    StockResult,
    StockUpdate,
    StorefrontError,
    StoreLine,
    StoreOrder,
    StoreRefund,
    StoreUnavailable,
    as_utc,
)
from .limiter import StoreGate
from .numbers import BadValue
from .retry import HTTPResult, RetryPolicy, request_with_retry

log = logging.getLogger(__name__)

# The newest stable Admin API version on 2026-12-01 (shopify.dev "About Shopify API versioning":
# quarterly releases, each supported for at least 12 months).
DEFAULT_API_VERSION = "2026-10"
IDEMPOTENT_FROM = "2026-01"  # @idempotent and changeFromQuantity exist from this version (real schemas)
MAX_QUERY_COST = 1000  # Shopify refuses a single query that costs more (MAX_COST_EXCEEDED)
MAX_PAGE = 250  # the most nodes a connection returns, and the most entries an input list takes
THROTTLE_ATTEMPTS = 6  # THROTTLED answers tolerated for one call before giving up
KEY_ATTEMPTS = 3  # fresh idempotency keys after IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED
WAIT_MARGIN = 0.002  # seconds added to a computed wait against float rounding
SKUS_PER_LOOKUP = 50  # `sku:A OR sku:B …` terms in one re-read query
MAX_COUNT = 1_000_000_000  # Shopify's own limit on an inventory quantity; more is not a real count
ORDER_WINDOW_DAYS = 60  # orders older than this are hidden without read_all_orders
MAX_LINES_PER_ORDER = 50  # lineItems(first:) on an order page never asks more
MORE_LINES_PAGE = 50  # lines per follow-up query of an order with more lines than the page held

# --------------------------------------------------------------------------------- documents
# Each document notes its calculated cost (shopify.dev "GraphQL Admin API rate limits": objects 1,
# scalars and enums 0, connections 2 + first x one node, a mutation 10 + its payload selection).
# The pacer starts from these and then goes by what Shopify reports.

# cost 3: Location, AppInstallation, the accessScopes list. Learns the bucket, the served version
# and whether the app may read orders older than 60 days.
PROBE = """
query ConnexProbe($locationId: ID!) {
  location(id: $locationId) { id }
  currentAppInstallation { accessScopes { handle } }
}
"""

# cost: 2 + first x 4 (ProductVariant, InventoryItem, InventoryLevel, InventoryQuantity list).
CATALOG = """
query ConnexCatalog($first: Int!, $after: String, $query: String, $locationId: ID!) {
  productVariants(first: $first, after: $after, query: $query, sortKey: ID) {
    nodes {
      id
      sku
      inventoryItem {
        id
        tracked
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
CATALOG_SHAPE = (2, 4)  # (base, per node)

_LINE_FIELDS = """nodes {
          id sku name quantity currentQuantity
          discountedUnitPriceAfterAllDiscountsSet { shopMoney { amount } }
        }
        pageInfo { hasNextPage endCursor }"""

# cost: 2 + first x (1 + 2 + lines x 3): Order, lineItems, LineItem + MoneyBag + MoneyV2.
ORDERS = (
    """
query ConnexOrders($first: Int!, $after: String, $query: String, $lines: Int!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id
      name
      createdAt
      updatedAt
      cancelledAt
      displayFinancialStatus
      email
      lineItems(first: $lines) {
        """
    + _LINE_FIELDS
    + """
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
)

# cost: 1 + 2 + first x 3.
ORDER_LINES = (
    """
query ConnexOrderLines($id: ID!, $first: Int!, $after: String) {
  order(id: $id) {
    lineItems(first: $first, after: $after) {
        """
    + _LINE_FIELDS
    + """
    }
  }
}
"""
)

# What went back: refunds with their restock location, and order edits (sales agreements).
# cost: 1 + refunds x (1 + 2 + refundLines x 3) + 2 + agreements x (1 + 2 + sales x 2).
ORDER_RETURNS = """
query ConnexOrderReturns($id: ID!, $refunds: Int!, $refundLines: Int!, $agreements: Int!, $sales: Int!) {
  order(id: $id) {
    refunds(first: $refunds) {
      id
      createdAt
      refundLineItems(first: $refundLines) {
        nodes { quantity restocked location { id } lineItem { id } }
        pageInfo { hasNextPage }
      }
    }
    agreements(first: $agreements) {
      nodes {
        id
        reason
        happenedAt
        sales(first: $sales) {
          nodes { actionType lineType quantity ... on ProductSale { lineItem { id } } }
          pageInfo { hasNextPage }
        }
      }
      pageInfo { hasNextPage }
    }
  }
}
"""

# The refunds of a batch of orders, by the documented `id` filter. Order edits (agreements) are
# read only for an order whose lines lost units no refund accounts for (ORDER_RETURNS).
# cost: 2 + first x (1 + refunds x (1 + 2 + refundLines x 3)).
ORDERS_REFUNDS = """
query ConnexOrdersRefunds($first: Int!, $query: String!, $refunds: Int!, $refundLines: Int!) {
  orders(first: $first, query: $query) {
    nodes {
      id
      refunds(first: $refunds) {
        id
        createdAt
        refundLineItems(first: $refundLines) {
          nodes { quantity restocked location { id } lineItem { id } }
          pageInfo { hasNextPage }
        }
      }
    }
  }
}
"""
SEARCH_TERMS = 50  # `id:1 OR id:2 …` terms in one search

_SET_SELECTION = """{
    inventoryAdjustmentGroup {
      id
      changes(quantityNames: ["available"]) { name delta quantityAfterChange item { id } }
    }
    userErrors { code field message }
  }"""

# cost: 10 + payload. API 2026-01 and later: with an idempotency key.
SET_QUANTITIES_IDEMPOTENT = (
    """
mutation ConnexSetStock($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) """
    + _SET_SELECTION
    + "\n}\n"
)

# cost: 10 + payload. API versions before 2026-01, which have no @idempotent directive.
SET_QUANTITIES = (
    """
mutation ConnexSetStock($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) """
    + _SET_SELECTION
    + "\n}\n"
)
SET_COST = 14  # 10 + group 1 + changes 1 x (change 1 + item 1) + userErrors 1

STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})


def _version_key(version: str) -> str:
    return "9999-99" if version == "unstable" else version


def _search_value(value: str) -> str:
    """A value for Shopify's search syntax, quoted so spaces and colons stay part of it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utc_iso(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------- untrusted numbers


def _count(value: Any, what: str, *, signed: bool = False) -> int:
    """A whole count: an int, or a float that is exactly one; never a bool, NaN, infinity or string."""
    number = numbers.whole(value)
    if number is numbers.Flaw.NOT_A_NUMBER:
        raise BadValue(f"{what} is {value!r}, not a number")
    if number is numbers.Flaw.NOT_FINITE:
        raise BadValue(f"{what} is {value!r}")
    if number is numbers.Flaw.FRACTION:
        raise BadValue(f"{what} is {value!r}, not a whole number")
    if abs(number) > MAX_COUNT:
        raise BadValue(f"{what} is {number}, beyond any real count")
    if number < 0 and not signed:
        raise BadValue(f"{what} is {number}, below zero")
    return number


def _amount(value: Any, what: str) -> Decimal | None:
    """A money amount (Shopify sends decimal strings), at most `numbers.MAX_AMOUNT`; None when absent."""
    if value is None:
        return None
    amount = numbers.amount(value)
    if amount is numbers.Flaw.NOT_A_NUMBER:
        raise BadValue(f"{what} is {value!r}, not an amount")
    if isinstance(amount, numbers.Flaw) or abs(amount) > numbers.MAX_AMOUNT:
        raise BadValue(f"{what} is {value!r}")
    return amount


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _nodes(parent: dict[str, Any], connection: str) -> list[dict[str, Any]]:
    """The object nodes of a GraphQL connection field of `parent` (none when it is absent or null)."""
    return [node for node in ((parent.get(connection) or {}).get("nodes")) or [] if isinstance(node, dict)]


def _node_id(node: dict[str, Any], what: str) -> str:
    """A node's gid; a node without one is a BadValue ("a refund has no id")."""
    node_id = node.get("id")
    if not isinstance(node_id, str) or not node_id:
        raise BadValue(f"{what} has no id")
    return node_id


def _line_gid(item: dict[str, Any]) -> str:
    """The gid of the order LineItem a refund line or an order edit's sale is about ("" if none)."""
    return _text((item.get("lineItem") or {}).get("id"))


_UNKNOWN_LINE = StoreLine(sku="", quantity=Decimal(0))  # a refund or edit line of no line read


def _header(headers: Any, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


# --------------------------------------------------------------------------------- pacing


@dataclass
class CostBudget:
    """The client's picture of Shopify's leaky bucket, from the last throttleStatus and the clock."""

    maximum: float = 0.0
    available: float = 0.0
    restore_rate: float = 0.0
    stamp: float = 0.0
    known: bool = False
    # Points of calls sent and not yet answered. Shopify charges them only when it receives them,
    # and a full bucket does not fill while they travel, so until they are answered the bucket can
    # hold at most `maximum - in_flight` after charging them: refill counted on our clock from the
    # moment we sent them would run ahead of Shopify's bucket (THROTTLED under load, when calls
    # take longer to arrive).
    in_flight: float = 0.0

    def seed(self, *, maximum: float, available: float, restore_rate: float, now: float) -> None:
        self.maximum, self.available, self.restore_rate, self.stamp, self.known = (
            float(maximum),
            float(available),
            float(restore_rate),
            now,
            True,
        )

    def estimate(self, now: float) -> float:
        if not self.known:
            return float("inf")
        ceiling = self.maximum - self.in_flight
        return min(ceiling, self.available + max(0.0, now - self.stamp) * self.restore_rate)

    def cap(self) -> float:
        """The most one call may cost: Shopify's single-query limit, or the bucket if smaller."""
        return min(MAX_QUERY_COST, self.maximum) if self.known else MAX_QUERY_COST

    def wait_for(self, cost: float, now: float) -> float:
        if not self.known or self.restore_rate <= 0:
            return 0.0
        short = min(cost, self.maximum) - self.estimate(now)
        return short / self.restore_rate + WAIT_MARGIN if short > 0 else 0.0

    def spend(self, cost: float, now: float) -> None:
        if self.known:
            self.available = self.estimate(now) - cost
            self.stamp = now

    def lower(self, status: dict[str, Any], now: float, reserved: float) -> None:
        """An answer while other calls are under way: their `reserved` cost may not be in its
        status yet, so it can only lower the estimate (which holds their reservations)."""
        try:
            reported = float(status["currentlyAvailable"]) - reserved
        except (KeyError, TypeError, ValueError):
            return
        if self.known and math.isfinite(reported) and reported < self.estimate(now):
            self.available, self.stamp = reported, now

    def update(self, status: dict[str, Any], now: float) -> bool:
        """Take Shopify's word for the bucket; a status with bad numbers is ignored (False)."""
        try:
            maximum = float(status["maximumAvailable"])
            available = float(status["currentlyAvailable"])
            rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return False
        if not all(math.isfinite(x) for x in (maximum, available, rate)) or maximum <= 0 or rate < 0:
            return False
        self.seed(maximum=maximum, available=max(0.0, min(available, maximum)), restore_rate=rate, now=now)
        return True


@dataclass
class CostLine:
    """requestedQueryCost = base + first x per_node for one document shape, learned from answers."""

    base: float
    per_node: float
    seen: dict[int, int] = field(default_factory=dict)  # first -> requestedQueryCost reported

    def learn(self, first: int, requested: int) -> None:
        self.seen[first] = requested
        if len(self.seen) >= 2:
            (f1, c1), (f2, c2) = sorted(self.seen.items())[-2:]
            self.per_node = max(0.0, (c2 - c1) / (f2 - f1))
            self.base = max(0.0, c2 - f2 * self.per_node)
        elif first > 0:
            self.per_node = max(0.0, (requested - self.base) / first)

    def cost(self, first: int) -> float:
        return self.base + first * self.per_node

    def most(self, cap: float, limit: int = MAX_PAGE) -> int:
        """The largest page whose requested cost fits under `cap` (at least 1)."""
        if self.per_node <= 0:
            return limit
        return max(1, min(limit, int((cap - self.base) // self.per_node)))


Plan = Callable[[float], tuple[dict[str, Any], float]]  # cap -> (variables, expected requested cost)


class ShopifyPacer:
    """Every decision about Shopify's query cost, in one place: how big a page may be, how long to
    wait before a call, what a THROTTLED answer means. One pacer per shop and app (Shopify's bucket
    is per app and store). A call reserves its expected cost under the lock (waiting there until the
    bucket affords it), then goes out without the lock, so calls run side by side as far as the
    bucket affords them (how many at once is the StoreGate's business, storefronts.limiter)."""

    def __init__(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]], stats: RequestStats
    ) -> None:
        self.budget = CostBudget()
        self.stats = stats
        self.lines: dict[tuple[str, Any], CostLine] = {}
        self.clock = clock
        self.sleep = sleep
        self.lock = asyncio.Lock()  # held while a call reserves its cost, not while it is sent
        self.calls = 0
        self.requested_points = 0
        self.actual_points = 0

    def line(self, operation: str, shape: Any, base: float, per_node: float) -> CostLine:
        key = (operation, shape)
        if key not in self.lines:
            self.lines[key] = CostLine(base, per_node)
        return self.lines[key]

    @property
    def reserved(self) -> float:
        """The cost reserved by calls sent and not yet answered (the budget caps its estimate by it)."""
        return self.budget.in_flight

    @reserved.setter
    def reserved(self, points: float) -> None:
        self.budget.in_flight = points

    async def before(self, expected: float) -> None:
        """Wait until the bucket can afford `expected` points, then count them as spent. The bucket
        is looked at again after every wait: an answer that came in meanwhile may have lowered the
        estimate, and sending on the old one is answered THROTTLED."""
        while (wait := self.budget.wait_for(expected, self.clock())) > 0:
            self.stats.waited_seconds += wait
            await self.sleep(wait)
        self.budget.spend(expected, self.clock())

    def after(self, cost: dict[str, Any]) -> None:
        """Learn from an answer's extensions.cost: the bucket as Shopify left it after refunding
        (only ever lower while other calls' reservations may not be in it yet)."""
        self.calls += 1
        requested, actual = cost.get("requestedQueryCost"), cost.get("actualQueryCost")
        if isinstance(requested, int | float) and math.isfinite(requested):
            self.requested_points += int(requested)
        if isinstance(actual, int | float) and math.isfinite(actual):
            self.actual_points += int(actual)
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            if self.reserved > 0:
                self.budget.lower(status, self.clock(), self.reserved)
            else:
                self.budget.update(status, self.clock())

    def retry_after(self) -> float | None:
        return self.budget.wait_for(self.budget.maximum, self.clock()) or None


# --------------------------------------------------------------------------------- client


@dataclass
class _Order:
    """An order read from a page, before its refunds and edits are known."""

    data: StoreOrder
    node: dict[str, Any]
    lines_by_gid: dict[str, StoreLine]  # LineItem gid -> the order's line (its SKU, unit price, name)
    gone: dict[str, int]  # LineItem gid -> units off the order (quantity - currentQuantity), when any
    line_count: int

    @property
    def needs_returns(self) -> bool:
        return bool(self.gone)


class ShopifyClient:
    platform = "shopify"
    batch_limit = MAX_PAGE

    def __init__(
        self,
        url: str,
        access_token: str,
        location_id: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        session: aiohttp.ClientSession | None = None,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ssl: Any = None,
        concurrency: int = 8,
        gate: StoreGate | None = None,
    ) -> None:
        base = url.rstrip("/")
        if "://" not in base:
            base = "https://" + base
        self.api_version = api_version
        self.served_version: str | None = None  # what Shopify's last answer said it served
        self.endpoint = f"{base}/admin/api/{api_version}/graphql.json"
        self.location_id = location_id
        self.policy = policy
        self.stats = RequestStats()
        self.throttled_answers = 0
        self.pacer = ShopifyPacer(clock, sleep, self.stats)
        self.location_found: bool | None = None
        self.read_all_orders: bool | None = None  # None: not known yet
        self.lines_per_order = 5  # lineItems(first:) on an order page; follows the orders seen
        self._line_counts: Counter[int] = Counter()  # orders seen, by their number of lines
        self.notices: list[str] = []  # said once each, for the log and the dashboard
        self._token = access_token
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._ssl = ssl  # None: verify with the system's CAs; an SSLContext: e.g. a proxy's CA bundle
        # Calls go out side by side while the bucket affords them (each reserves its cost first),
        # and never more at once than the adaptive limit (storefronts.limiter) allows.
        self.gate = gate or StoreGate(maximum=max(1, concurrency), clock=clock, sleep=sleep)

    def __repr__(self) -> str:  # never the token
        return f"ShopifyClient({self.endpoint!r}, location={self.location_id!r})"

    @property
    def budget(self) -> CostBudget:
        return self.pacer.budget

    @property
    def version(self) -> str:
        """The API version whose rules apply: the one Shopify serves, once an answer said so."""
        return self.served_version or self.api_version

    @property
    def idempotent(self) -> bool:
        return _version_key(self.version) >= IDEMPOTENT_FROM

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)
            self.stats.notice = "; ".join(self.notices)
            log.warning("%s", text)

    # ------------------------------------------------------------------ transport

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _post(self, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        before = self.stats.throttled
        try:
            result = await request_with_retry(
                self._http(),
                "POST",
                self.endpoint,
                what=f"Shopify {operation}",
                policy=self.policy,
                stats=self.stats,
                sleep=self.pacer.sleep,
                gate=self.gate,
                json={"query": query, "variables": variables},
                **({"ssl": self._ssl} if self._ssl is not None else {}),
                headers={"X-Shopify-Access-Token": self._token, "Accept": "application/json"},
            )
        finally:
            self.throttled_answers += self.stats.throttled - before  # HTTP 429s
        self._served(result)
        if result.status == 404:
            raise StorefrontError(
                f"Shopify {operation}: the shop answered 404; check the shop address and the API version "
                f"({self.api_version})"
            )
        if result.status != 200:
            raise StorefrontError(f"Shopify {operation}: unexpected HTTP {result.status}")
        try:
            body = result.json()
        except (UnicodeDecodeError, ValueError) as exc:
            raise StorefrontError(f"Shopify {operation}: the answer was not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise StorefrontError(f"Shopify {operation}: unexpected answer")
        return body

    def _served(self, result: HTTPResult) -> None:
        """Every answer names the version that produced it; a retired version is served by the
        oldest supported one, whose rules (mutation shape) then apply."""
        served = _header(result.headers, "X-Shopify-API-Version")
        if not served:
            return
        self.served_version = served
        if served != self.api_version:
            self._notice(
                f"Shopify serves API version {served}, not the configured {self.api_version}"
                f" (retired or unknown); set api_version to {served} or newer"
            )

    async def _ensure_budget(self) -> None:
        if self.budget.known:
            return
        body = await self._post("probe", PROBE, {"locationId": self.location_id})
        self.pacer.after((body.get("extensions") or {}).get("cost") or {})
        data = body.get("data") or {}
        self.location_found = bool(data.get("location")) if "location" in data else None
        scopes = ((data.get("currentAppInstallation") or {}).get("accessScopes")) or None
        if isinstance(scopes, list):
            self.read_all_orders = any(
                isinstance(scope, dict) and scope.get("handle") == "read_all_orders" for scope in scopes
            )
        if not self.budget.known:  # no cost extension: assume the standard plan, and learn later
            self.budget.seed(maximum=2000, available=1000, restore_rate=100, now=self._clock())

    async def _call(self, operation: str, query: str, plan: Plan, learner: CostLine | None = None) -> dict[str, Any]:
        """One GraphQL call that the bucket can afford, retried on THROTTLED; returns `data`.
        `learner` is told the requestedQueryCost Shopify reports for the page size sent."""
        for _ in range(THROTTLE_ATTEMPTS):
            async with self.pacer.lock:
                await self._ensure_budget()
                variables, expected = plan(self.budget.cap())
                await self.pacer.before(expected)
                self.pacer.reserved += expected
            try:
                body = await self._post(operation, query, variables)
            finally:
                self.pacer.reserved -= expected
            cost = (body.get("extensions") or {}).get("cost") or {}
            if isinstance(cost, dict):
                self.pacer.after(cost)
            errors = body.get("errors") or []
            if not isinstance(errors, list):
                errors = [errors]
            errors = [error if isinstance(error, dict) else {"message": str(error)} for error in errors]
            if any((error.get("extensions") or {}).get("code") == "THROTTLED" for error in errors):
                self.throttled_answers += 1
                self.stats.throttled += 1
                log.info("Shopify %s throttled (cost %s)", operation, cost.get("requestedQueryCost"))
                continue  # the next round waits what the throttleStatus implies
            if errors:
                messages = "; ".join(str(error.get("message", error)) for error in errors[:3])
                raise StorefrontError(f"Shopify {operation} failed: {messages}")
            warnings = _search_warnings(body)
            if warnings:
                # Shopify ran the search without the parts it could not read: the answer is not
                # what was asked for, so it is not used.
                raise StorefrontError(f"Shopify {operation}: the search was not understood: {warnings}")
            data = body.get("data")
            if not isinstance(data, dict):
                raise StorefrontError(f"Shopify {operation}: the answer had no data")
            first = variables.get("first")
            requested = cost.get("requestedQueryCost") if isinstance(cost, dict) else None
            if learner is not None and isinstance(first, int) and isinstance(requested, int):
                learner.learn(first, requested)
            return data
        raise StoreUnavailable(
            f"Shopify {operation}: still throttled after {THROTTLE_ATTEMPTS} tries",
            retry_after=self.pacer.retry_after(),
        )

    # ------------------------------------------------------------------ orders

    async def list_orders(self, modified_since: datetime | None) -> list[StoreOrder]:
        # Only documented filters: no status filter at all reads every order, cancelled and closed
        # ones included (`status:any` is REST's parameter, not a value of the GraphQL filter).
        search = f"updated_at:>='{_utc_iso(modified_since)}'" if modified_since is not None else None
        await self._ensure_budget()
        if self.read_all_orders is False:
            self._notice(
                f"this app may read only the last {ORDER_WINDOW_DAYS} days of Shopify orders: refunds and"
                " cancellations of older orders cannot reach QuickBooks until it is given read_all_orders"
            )
        found: dict[str, _Order | StoreOrder] = {}  # read, or failed with a reason
        after: str | None = None
        while True:
            lines = self.lines_per_order
            learner = self.pacer.line("orders", lines, 2, 3 + lines * 3)

            def plan(
                cap: float, after: str | None = after, lines: int = lines, learner: CostLine = learner
            ) -> tuple[dict[str, Any], float]:
                first = learner.most(cap)
                return {"first": first, "after": after, "query": search, "lines": lines}, learner.cost(first)

            data = await self._call("orders", ORDERS, plan, learner)
            connection = data.get("orders") or {}
            nodes = connection.get("nodes") if isinstance(connection, dict) else None
            if not isinstance(nodes, list):
                raise StorefrontError("Shopify orders: the answer had no order list")
            for order in await self._page_orders([node for node in nodes if isinstance(node, dict)]):
                store_id = _store_id(order)
                known = found.get(store_id)
                if known is None or _modified(order) >= _modified(known):
                    found[store_id] = order
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                break
            after = info["endCursor"]
        # The refunds and edits of every order that has some, read together after the pages.
        parsed = [order for order in found.values() if isinstance(order, _Order)]
        returns = await self._returns_of([order for order in parsed if order.needs_returns])
        orders = [order for order in found.values() if isinstance(order, StoreOrder)]
        for order in parsed:
            outcome = returns.get(order.data.store_id, ())
            if isinstance(outcome, str):
                orders.append(_failed_order(order.node, order.data.store_id, outcome))
            else:
                orders.append(replace(order.data, refunds=outcome))
        return sorted(orders, key=lambda order: (order.modified_at, order.store_id))

    async def _page_orders(self, nodes: list[dict[str, Any]]) -> list[_Order | StoreOrder]:
        """One page's orders, read; or failed, with the reason."""
        out: list[_Order | StoreOrder] = []
        for node in nodes:
            store_id = node.get("id")
            if not isinstance(store_id, str) or not store_id:
                log.warning("Shopify sent an order without an id; skipped")
                continue
            try:
                out.append(await self._parse_order(node, store_id))
            except BadValue as exc:
                out.append(_failed_order(node, store_id, str(exc)))
        self._follow_line_counts([order.line_count for order in out if isinstance(order, _Order)])
        return out

    def _follow_line_counts(self, counts: list[int]) -> None:
        """Size lineItems(first:) on the orders seen so far: the size with the fewest calls per
        order, counting the order pages (each line costs 3 points on every order of a page, so
        fewer orders fit under the 1000-point ceiling) and the follow-up query of each order with
        more lines than that."""
        self._line_counts.update(counts)
        seen = sum(self._line_counts.values())
        if not seen:
            return
        cap = self.budget.cap()

        def calls_per_order(lines: int) -> float:
            per_page = max(1, int((cap - 2) // (3 + 3 * lines)))
            longer = sum(n for count, n in self._line_counts.items() if count > lines)
            return 1 / per_page + longer / seen

        self.lines_per_order = min(range(1, MAX_LINES_PER_ORDER + 1), key=calls_per_order)

    async def _parse_order(self, node: dict[str, Any], store_id: str) -> _Order:
        modified_at = node.get("updatedAt")
        if not isinstance(modified_at, str) or not modified_at:
            raise BadValue("updatedAt is missing")
        line_nodes = list(((node.get("lineItems") or {}).get("nodes")) or [])
        line_info = (node.get("lineItems") or {}).get("pageInfo") or {}
        if line_info.get("hasNextPage"):
            line_nodes += await self._more_lines(store_id, line_info.get("endCursor"))
        lines: list[StoreLine] = []
        lines_by_gid: dict[str, StoreLine] = {}
        gone: dict[str, int] = {}
        for position, line in enumerate(line_nodes, start=1):
            if not isinstance(line, dict):
                raise BadValue(f"line {position} is not an object")
            what = f"line {position} ({_text(line.get('sku')) or 'no SKU'})"
            quantity = _count(line.get("quantity"), f"{what} quantity")
            current = _count(line.get("currentQuantity"), f"{what} currentQuantity")
            if current > quantity:
                raise BadValue(f"{what} has currentQuantity {current} above its quantity {quantity}")
            if current != quantity:
                gone[_text(line.get("id"))] = quantity - current
            money = ((line.get("discountedUnitPriceAfterAllDiscountsSet") or {}).get("shopMoney")) or {}
            price = _amount(money.get("amount"), f"{what} unit price")
            store_line = StoreLine(
                sku=_text(line.get("sku")), quantity=Decimal(quantity), price=price, name=_text(line.get("name"))
            )
            lines_by_gid[_text(line.get("id"))] = store_line
            lines.append(store_line)
        data = StoreOrder(
            store_id=store_id,
            number=_text(node.get("name")).lstrip("#"),
            status=_text(node.get("displayFinancialStatus")).lower(),
            modified_at=modified_at,
            lines=tuple(lines),
            created_at=_text(node.get("createdAt")),
            customer=_text(node.get("email")),
            cancelled=node.get("cancelledAt") is not None,
            raw=dict(node),
        )
        return _Order(data, node, lines_by_gid, gone, len(lines))

    async def _more_lines(self, order_id: str, after: str | None) -> list[Any]:
        lines: list[Any] = []
        learner = self.pacer.line("orderLines", None, 3, 3)
        while after:

            def plan(cap: float, after: str | None = after) -> tuple[dict[str, Any], float]:
                first = learner.most(cap, MORE_LINES_PAGE)
                return {"id": order_id, "first": first, "after": after}, learner.cost(first)

            data = await self._call("orderLines", ORDER_LINES, plan, learner)
            order = data.get("order")
            if not isinstance(order, dict):
                raise BadValue("its lines could not be read (the order is gone or hidden)")
            lines += list((order.get("lineItems") or {}).get("nodes") or [])
            info = (order.get("lineItems") or {}).get("pageInfo") or {}
            after = info.get("endCursor") if info.get("hasNextPage") else None
        return lines

    async def _returns_of(self, orders: list[_Order]) -> dict[str, tuple[StoreRefund, ...] | str]:
        """What went back on the shelf for each order: its refunds and edits as StoreRefunds, or the
        reason they could not be read. Orders are read in batches (`orders(query: "id:1 OR id:2")`,
        a documented filter) sized so the requested cost fits; an order with more refunds or edits
        than a batch reads is read again alone, with room for more."""
        outcome: dict[str, tuple[StoreRefund, ...] | str] = {}
        # Fewest lines first: a batch asks for as many refund lines and edit lines as its longest
        # order has lines, so orders of a size travel together.
        pending = sorted(orders, key=lambda order: order.line_count)
        while pending:
            batch, sizes, learner = self._returns_batch(pending)
            pending = pending[len(batch) :]
            search = " OR ".join(f"id:{order.data.store_id.rsplit('/', 1)[-1]}" for order in batch)

            def plan(
                cap: float,
                n: int = len(batch),
                search: str = search,
                sizes: dict[str, int] = sizes,
                learner: CostLine = learner,
            ) -> tuple[dict[str, Any], float]:
                return {"first": n, "query": search, **sizes}, learner.cost(n)

            data = await self._call("orderRefunds", ORDERS_REFUNDS, plan, learner)
            nodes = {
                node.get("id"): node
                for node in ((data.get("orders") or {}).get("nodes") or [])
                if isinstance(node, dict)
            }
            for order in batch:
                node = nodes.get(order.data.store_id)
                try:
                    if node is None or _returns_truncated(node, sizes):
                        node = await self._returns_alone(order.data.store_id)
                    returned = self._stock_returns(node, order.lines_by_gid)  # checks every number first
                    if "agreements" not in node and _edited(node, order.gone):
                        returned = self._stock_returns(
                            await self._returns_alone(order.data.store_id), order.lines_by_gid
                        )
                    outcome[order.data.store_id] = returned
                except BadValue as exc:
                    outcome[order.data.store_id] = str(exc)
        return outcome

    def _returns_batch(self, pending: list[_Order]) -> tuple[list[_Order], dict[str, int], CostLine]:
        """The next batch: as many of `pending` as fit under the cost cap and the search's terms."""
        cap = self.budget.cap()
        taken = 1
        while taken < min(len(pending), SEARCH_TERMS):
            sizes = _returns_sizes(pending[taken].line_count)
            learner = self.pacer.line("orderRefunds", tuple(sizes.values()), 2, _refunds_cost(sizes))
            if learner.cost(taken + 1) > cap:
                break
            taken += 1
        sizes = _returns_sizes(pending[taken - 1].line_count)
        return pending[:taken], sizes, self.pacer.line("orderRefunds", tuple(sizes.values()), 2, _refunds_cost(sizes))

    async def _returns_alone(self, order_id: str) -> dict[str, Any]:
        sizes = {"refunds": 8, "refundLines": 10, "agreements": 10, "sales": 10}  # 497 points
        while True:

            def plan(cap: float, sizes: dict[str, int] = sizes) -> tuple[dict[str, Any], float]:
                return {"id": order_id, **sizes}, _returns_cost(sizes)

            data = await self._call("orderReturns", ORDER_RETURNS, plan)
            order = data.get("order")
            if not isinstance(order, dict):
                if self.read_all_orders is False:
                    self._notice(
                        f"a refund or cancellation refers to Shopify order {order_id}, which this app cannot"
                        f" read (older than {ORDER_WINDOW_DAYS} days): give the app read_all_orders"
                    )
                raise BadValue("its refunds could not be read (the order is gone or hidden)")
            if not _returns_truncated(order, sizes):
                return order
            bigger = {key: min(MAX_PAGE, value * 2) for key, value in sizes.items()}
            if bigger == sizes or _returns_cost(bigger) > self.budget.cap():
                raise BadValue("it has more refunds or edits than one query can read")
            sizes = bigger

    def _stock_returns(self, order: dict[str, Any], lines_by_gid: dict[str, StoreLine]) -> tuple[StoreRefund, ...]:
        returned: list[StoreRefund] = []
        for refund in order.get("refunds") or []:
            if isinstance(refund, dict):
                returned.append(self._refund(refund, lines_by_gid))
        for agreement in _nodes(order, "agreements"):
            if agreement.get("reason") == "ORDER_EDIT":
                returned.append(self._edit(agreement, lines_by_gid))
        return tuple(returned)

    def _refund(self, refund: dict[str, Any], lines_by_gid: dict[str, StoreLine]) -> StoreRefund:
        refund_id = _node_id(refund, "a refund")
        lines: list[StoreLine] = []
        for item in _nodes(refund, "refundLineItems"):
            line = lines_by_gid.get(_line_gid(item), _UNKNOWN_LINE)
            quantity = _count(item.get("quantity"), f"refund {refund_id} quantity of {line.sku or 'a line'}")
            location = (item.get("location") or {}).get("id")
            # Only units that came back onto the shelf we keep in step with QuickBooks count:
            # RefundLineItem.restocked, at RefundLineItem.location ("The inventory restock location").
            if item.get("restocked") is True and location == self.location_id and quantity > 0:
                lines.append(replace(line, quantity=Decimal(quantity)))
        return StoreRefund(refund_id=refund_id, lines=tuple(lines), created_at=_text(refund.get("createdAt")))

    def _edit(self, agreement: dict[str, Any], lines_by_gid: dict[str, StoreLine]) -> StoreRefund:
        agreement_id = _node_id(agreement, "an order edit")
        lines: list[StoreLine] = []
        for sale in _nodes(agreement, "sales"):
            if sale.get("actionType") != "RETURN" or sale.get("lineType") != "PRODUCT":
                continue
            line = lines_by_gid.get(_line_gid(sale), _UNKNOWN_LINE)
            # "The number of units either ordered or intended to be returned": the sign is not
            # documented, so the size is what counts.
            quantity = abs(
                _count(sale.get("quantity"), f"order edit {agreement_id} quantity of {line.sku}", signed=True)
            )
            if quantity:
                lines.append(replace(line, quantity=Decimal(quantity)))
        return StoreRefund(refund_id=agreement_id, lines=tuple(lines), created_at=_text(agreement.get("happenedAt")))

    # ------------------------------------------------------------------ catalog

    async def catalog(self) -> list[CatalogEntry]:
        return await self._variants(None)

    async def _variants(self, search: str | None) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        after: str | None = None
        learner = self.pacer.line("catalog", None, *CATALOG_SHAPE)
        while True:

            def plan(cap: float, after: str | None = after) -> tuple[dict[str, Any], float]:
                first = learner.most(cap)
                variables = {"first": first, "after": after, "query": search, "locationId": self.location_id}
                return variables, learner.cost(first)

            data = await self._call("catalog", CATALOG, plan, learner)
            connection = data.get("productVariants") or {}
            for node in connection.get("nodes") or []:
                entry = self._catalog_entry(node)
                if entry is not None:
                    entries.append(entry)
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                break
            after = info["endCursor"]
        return entries

    def _catalog_entry(self, node: Any) -> CatalogEntry | None:
        if not isinstance(node, dict):
            return None
        sku = _text(node.get("sku")).strip()
        if not sku:
            return None  # a variant without a SKU cannot be matched to a QuickBooks item
        item = node.get("inventoryItem") or {}
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            log.warning("Shopify variant %s has no inventory item; left out", sku)
            return None
        level = item.get("inventoryLevel")
        quantity = None
        if isinstance(level, dict):
            raw = next(
                (
                    q.get("quantity")
                    for q in level.get("quantities") or []
                    if isinstance(q, dict) and q.get("name") == "available"
                ),
                None,
            )
            if raw is not None:
                try:
                    quantity = _count(raw, f"available stock of {sku}", signed=True)
                except BadValue as exc:
                    # The stock is unknown, not the item: it can still be set (without a compare).
                    log.warning("Shopify SKU %s: %s", sku, exc)
        return CatalogEntry(sku=sku, item_id=item_id, quantity=quantity, managed=item.get("tracked") is True)

    async def _current_levels(self, updates: Sequence[StockUpdate]) -> dict[str, int | None]:
        """Re-read `available` for these items (by SKU search, matched on the InventoryItem gid)."""
        levels: dict[str, int | None] = {}
        skus = sorted({update.sku for update in updates})
        for start in range(0, len(skus), SKUS_PER_LOOKUP):
            search = " OR ".join(f"sku:{_search_value(sku)}" for sku in skus[start : start + SKUS_PER_LOOKUP])
            for entry in await self._variants(search):
                levels[entry.item_id] = entry.quantity
        return levels

    # ------------------------------------------------------------------ stock

    async def set_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        results: list[StockResult | None] = [None] * len(updates)
        indexed = list(enumerate(updates))
        await self._ensure_budget()  # learns the served version, whose mutation shape applies
        for start in range(0, len(indexed), self.batch_limit):
            await self._set_batch(indexed[start : start + self.batch_limit], results)
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    def _set_variables(
        self, pending: list[tuple[int, StockUpdate]], expected: dict[int, int | None], key: str
    ) -> dict[str, Any]:
        quantities: list[dict[str, Any]] = []
        for index, update in pending:
            quantity: dict[str, Any] = {
                "inventoryItemId": update.entry.item_id,
                "locationId": self.location_id,
                "quantity": int(update.quantity),
            }
            if self.idempotent:
                quantity["changeFromQuantity"] = expected[index]
            quantities.append(quantity)
        data: dict[str, Any] = {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://connex-tui/StockPush/{key}",
            "quantities": quantities,
        }
        if not self.idempotent:
            data["ignoreCompareQuantity"] = True
        variables: dict[str, Any] = {"input": data}
        if self.idempotent:
            variables["key"] = key
        return variables

    async def _send_set(
        self, pending: list[tuple[int, StockUpdate]], expected: dict[int, int | None]
    ) -> dict[str, Any]:
        """One inventorySetQuantities call. Its key is reused by the HTTP retries of the call; a key
        whose first attempt failed on Shopify's side gets IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED ("Retry
        with a new idempotency key", the real schema's description), so then a fresh key is made."""
        payload: dict[str, Any] = {}
        for _ in range(KEY_ATTEMPTS):
            key = str(uuid.uuid4())
            variables = self._set_variables(pending, expected, key)
            document = SET_QUANTITIES_IDEMPOTENT if self.idempotent else SET_QUANTITIES

            def plan(cap: float, variables: dict[str, Any] = variables) -> tuple[dict[str, Any], float]:
                return variables, SET_COST

            data = await self._call("setStock", document, plan)
            payload = data.get("inventorySetQuantities") or {}
            codes = {error.get("code") for error in payload.get("userErrors") or [] if isinstance(error, dict)}
            if "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED" not in codes:
                return payload
            log.info("Shopify setStock: the previous attempt with this key failed; sending with a new key")
        return payload

    async def _set_batch(self, pending: list[tuple[int, StockUpdate]], results: list[StockResult | None]) -> None:
        expected: dict[int, int | None] = {index: update.entry.quantity for index, update in pending}
        reread = False

        def fail(index: int, update: StockUpdate, reason: str, permanent: bool) -> None:
            results[index] = StockResult(update.sku, False, expected[index], None, reason, permanent)

        for _round in range(4):
            if not pending:
                return
            try:
                payload = await self._send_set(pending, expected)
            except CredentialsError:
                raise
            except StorefrontError as exc:
                for index, update in pending:
                    fail(index, update, str(exc), permanent=False)
                return
            errors = [error for error in payload.get("userErrors") or [] if isinstance(error, dict)]
            if not errors:
                befores = self._befores(payload)
                for index, update in pending:
                    before = befores.get(update.entry.item_id, expected[index])
                    if before is None:
                        before = int(update.quantity)
                    results[index] = StockResult(update.sku, True, before, int(update.quantity))
                return
            by_position: dict[int, list[dict[str, Any]]] = {}
            general: list[dict[str, Any]] = []
            for error in errors:
                position = _position(error.get("field"))
                if position is None or position >= len(pending):
                    general.append(error)
                else:
                    by_position.setdefault(position, []).append(error)
            if general:
                reason, permanent = _explain(general[0], None)
                for index, update in pending:
                    fail(index, update, reason, permanent)
                return
            keep: list[tuple[int, StockUpdate]] = []
            stale: list[tuple[int, StockUpdate]] = []
            for position, (index, update) in enumerate(pending):
                found = by_position.get(position)
                if not found:
                    keep.append((index, update))  # nothing wrong with it: not applied (all or nothing), send again
                    continue
                other = [error for error in found if error.get("code") not in STALE_CODES]
                if not other:
                    stale.append((index, update))
                    continue
                reason, permanent = _explain(other[0], update)
                fail(index, update, reason, permanent)
            if stale and not reread:
                reread = True
                levels = await self._current_levels([update for _, update in stale])
                for index, update in stale:
                    expected[index] = levels.get(update.entry.item_id, expected[index])
                keep += stale
            else:
                for index, update in stale:
                    fail(
                        index,
                        update,
                        "the stock in Shopify kept changing while we set it; it will be set on the next run",
                        permanent=False,
                    )
            pending = sorted(keep, key=lambda pair: pair[0])
        for index, update in pending:
            fail(index, update, "Shopify kept rejecting the batch; will retry", permanent=False)

    @staticmethod
    def _befores(payload: dict[str, Any]) -> dict[str, int]:
        """Each item's stock before the change, from the answer; an item whose numbers make no sense
        is left out (its result then uses the quantity we expected)."""
        befores: dict[str, int] = {}
        group = payload.get("inventoryAdjustmentGroup") or {}
        for change in group.get("changes") or []:
            if not isinstance(change, dict) or change.get("name") != "available":
                continue
            item_id = (change.get("item") or {}).get("id")
            if not isinstance(item_id, str):
                continue
            try:
                after = _count(change.get("quantityAfterChange"), "quantityAfterChange", signed=True)
                delta = _count(change.get("delta"), "delta", signed=True)
            except BadValue as exc:
                log.warning("Shopify setStock answer for %s: %s", item_id, exc)
                continue
            befores[item_id] = after - delta
        return befores


def _returns_sizes(lines: int) -> dict[str, int]:
    """What to read of one order's refunds in a batch: most orders with any have one or two (a
    cancellation is one), each with at most a line per order line; an order with more is read
    again alone (`_returns_truncated`)."""
    return {"refunds": 2, "refundLines": max(1, min(MAX_LINES_PER_ORDER, lines))}


def _refunds_cost(sizes: dict[str, int]) -> float:
    return 1 + sizes["refunds"] * (1 + 2 + sizes["refundLines"] * 3)


def _edited(node: dict[str, Any], gone: dict[str, int]) -> bool:
    """Whether some line lost more units than its refunds account for: an order edit removed them."""
    refunded: Counter[str] = Counter()
    for refund in node.get("refunds") or []:
        for item in _nodes(refund or {}, "refundLineItems"):
            quantity = item.get("quantity")
            if isinstance(quantity, int) and not isinstance(quantity, bool):
                refunded[_line_gid(item)] += quantity
    return any(units > refunded[line_id] for line_id, units in gone.items())


def _returns_cost(sizes: dict[str, int]) -> float:
    refunds = sizes["refunds"] * (1 + 2 + sizes["refundLines"] * 3)
    agreements = 2 + sizes["agreements"] * (1 + 2 + sizes["sales"] * 2)
    return 1 + refunds + agreements


def _returns_truncated(order: dict[str, Any], sizes: dict[str, int]) -> bool:
    """Whether some refund, refund line, edit or edit line may be missing from what was read (the
    sales of the order's own ORDER agreement do not matter)."""
    refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict)]
    if len(refunds) >= sizes["refunds"]:
        return True
    if any(((r.get("refundLineItems") or {}).get("pageInfo") or {}).get("hasNextPage") for r in refunds):
        return True
    if "agreements" not in sizes:
        return False
    agreements = order.get("agreements") or {}
    if (agreements.get("pageInfo") or {}).get("hasNextPage"):
        return True
    return any(
        ((a.get("sales") or {}).get("pageInfo") or {}).get("hasNextPage")
        for a in agreements.get("nodes") or []
        if isinstance(a, dict) and a.get("reason") == "ORDER_EDIT"
    )


def _store_id(order: _Order | StoreOrder) -> str:
    return order.data.store_id if isinstance(order, _Order) else order.store_id


def _modified(order: _Order | StoreOrder) -> str:
    return order.data.modified_at if isinstance(order, _Order) else order.modified_at


def _failed_order(node: dict[str, Any], store_id: str, problem: str) -> StoreOrder:
    """An order whose data could not be read: it reaches the engine to wait as failed, with why."""
    number = _text(node.get("name")).lstrip("#")
    reason = f"Shopify order {number or store_id}: {problem}"
    log.warning("%s", reason)
    return StoreOrder(
        store_id=store_id,
        number=number,
        status=_text(node.get("displayFinancialStatus")).lower(),
        modified_at=_text(node.get("updatedAt")),
        lines=(),
        created_at=_text(node.get("createdAt")),
        customer=_text(node.get("email")),
        cancelled=node.get("cancelledAt") is not None,
        raw=dict(node),
        problem=reason,
    )


def _search_warnings(body: dict[str, Any]) -> str:
    """extensions.search warnings as one message ("status: Input `any` is not an accepted value.")."""
    searches = (body.get("extensions") or {}).get("search")
    if not isinstance(searches, list):
        return ""
    messages = []
    for search in searches:
        for warning in (search.get("warnings") if isinstance(search, dict) else None) or []:
            if isinstance(warning, dict):
                field_name = warning.get("field")
                text = str(warning.get("message") or warning)
                messages.append(f"{field_name}: {text}" if field_name else text)
    return "; ".join(messages)


def _position(field: Any) -> int | None:
    """["input", "quantities", "3", "inventoryItemId"] -> 3."""
    if not isinstance(field, list):
        return None
    for name, value in zip(field, field[1:], strict=False):
        if name == "quantities":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


_PERMANENT_REASONS = {
    "INVALID_INVENTORY_ITEM": (
        "Shopify has no such inventory item (was the product or variant deleted?); refresh the catalog"
    ),
    "ITEM_NOT_STOCKED_AT_LOCATION": "the item is not stocked at the Shopify location set up for sync",
    "INVALID_LOCATION": "the Shopify location set up for sync was not found; check the location in the settings",
    "NON_MUTABLE_INVENTORY_ITEM": "Shopify does not let apps set the stock of this item (a bundle?)",
    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR": "the same Shopify item appeared twice in one update",
    "INVALID_QUANTITY_TOO_HIGH": "Shopify refused the quantity as too high",
    "INVALID_QUANTITY_TOO_LOW": "Shopify refused the quantity as too low",
    "INVALID_QUANTITY_NEGATIVE": "Shopify refused a negative quantity",
}


def _explain(error: dict[str, Any], update: StockUpdate | None) -> tuple[str, bool]:
    """A userError as a plain reason, and whether sending the same update again could ever help."""
    code = error.get("code") or ""
    if code in _PERMANENT_REASONS:
        return _PERMANENT_REASONS[code], True
    if code == "IDEMPOTENCY_CONCURRENT_REQUEST":
        return "Shopify was still busy with the same update; it will be sent again", False
    if code == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED":
        return "Shopify kept failing the update; it will be sent again", False
    message = str(error.get("message") or code or "unknown error")
    if code in (
        "INVALID_NAME",
        "INVALID_REASON",
        "INVALID_REFERENCE_DOCUMENT",
        "COMPARE_QUANTITY_REQUIRED",
        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
    ):
        return f"Shopify rejected the update: {message}", True
    return f"Shopify rejected the update: {message}", False
