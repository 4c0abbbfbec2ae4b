"""Shopify, over the Admin GraphQL API (REST is legacy there since 2024-10).

* Orders: `orders(query: "updated_at:>='…' status:any", sortKey: UPDATED_AT)` with cursor pages; an
  order whose line items or refunds do not fit the page's nested sizes is completed with
  `order(id:)` follow-up queries.
* Catalog: `productVariants` pages, each variant's InventoryItem gid, `tracked` and the `available`
  quantity at the configured location.
* Stock: `inventorySetQuantities(name: "available")`, at most 250 quantities a call, one
  `@idempotent` key per call (reused when that same call is retried), compare-and-swap by API version
  (`changeFromQuantity` from 2026-01, `ignoreCompareQuantity: true` before), userErrors mapped back to
  the SKU by the index in their field path.
* Cost: Shopify charges every call its requested query cost from a leaky bucket. The client keeps an
  estimate of the bucket from each answer's `extensions.cost.throttleStatus` (refilled by elapsed
  time at restoreRate), sizes pages so that a call never costs more than the bucket holds or 1000,
  and sleeps before a call exactly as long as the bucket needs to afford it, so it is not throttled.
  A THROTTLED answer anyway (another app of the same shop, a wrong estimate) is retried after the
  wait the answer implies, a bounded number of times.
* HTTP: 429/5xx/timeouts/dropped connections are retried by `request_with_retry`; 401/403 raise
  CredentialsError. The access token never appears in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from .base import (
    CatalogEntry,
    CredentialsError,
    RequestStats,
    StockResult,
    StockUpdate,
    StoreLine,
    StoreOrderData,
    StoreRefund,
    StorefrontError,
    StoreUnavailable,
)
from .limiter import StoreGate
from .retry import RetryPolicy, request_with_retry

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2025-07"
MAX_QUERY_COST = 1000  # Shopify refuses a single query that costs more (MAX_COST_EXCEEDED)
MAX_PAGE = 250  # the most nodes a connection returns, and the most entries an input list takes
MUTATION_COST = 10
THROTTLE_ATTEMPTS = 6  # THROTTLED answers tolerated for one call before giving up
WAIT_MARGIN = 0.002  # seconds added to a computed wait against float rounding
SKUS_PER_LOOKUP = 50  # `sku:A OR sku:B …` terms in one re-read query

# --------------------------------------------------------------------------------- documents
# Each document states its declared cost: what Shopify's calculation gives before anything runs
# (objects 1, scalars and enums 0, connections 2 + first x one node, mutations 10).

# cost: 1 (Location object). Learns the bucket size and restore rate before the first real call.
PROBE = """
query ConnexProbe($locationId: ID!) {
  location(id: $locationId) { id }
}
"""

# cost: 2 + first x 4 (ProductVariant, InventoryItem, InventoryLevel, InventoryQuantity list);
# first 249 -> 998.
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
CATALOG_NODE_COST = 4
CATALOG_BASE_COST = 2

ORDER_LINES_PER_PAGE = 10
ORDER_REFUNDS_PER_PAGE = 2
ORDER_REFUND_LINES_PER_PAGE = 10

# cost: 2 + first x 79, where one Order is 1 + lineItems (2 + 10 x 3: LineItem, MoneyBag, MoneyV2)
# + refunds (2 x (1 Refund + refundLineItems (2 + 10 x 2: RefundLineItem, LineItem))); first 12 -> 950.
ORDERS = """
query ConnexOrders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id
      name
      createdAt
      updatedAt
      cancelledAt
      displayFinancialStatus
      email
      lineItems(first: 10) {
        nodes { sku name quantity originalUnitPriceSet { shopMoney { amount currencyCode } } }
        pageInfo { hasNextPage endCursor }
      }
      refunds(first: 2) {
        id
        createdAt
        refundLineItems(first: 10) {
          nodes { quantity restockType lineItem { sku name } }
          pageInfo { hasNextPage }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
ORDER_NODE_COST = (
    1 + (2 + ORDER_LINES_PER_PAGE * 3) + ORDER_REFUNDS_PER_PAGE * (1 + 2 + ORDER_REFUND_LINES_PER_PAGE * 2)
)
ORDER_BASE_COST = 2
ORDERS_PER_PAGE = 12

# cost: 1 + 2 + first x 3 (Order, lineItems connection, LineItem + MoneyBag + MoneyV2); first 250 -> 753.
ORDER_LINES = """
query ConnexOrderLines($id: ID!, $first: Int!, $after: String) {
  order(id: $id) {
    lineItems(first: $first, after: $after) {
      nodes { sku name quantity originalUnitPriceSet { shopMoney { amount currencyCode } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

ORDER_REFUND_LINES_FULL = 40
# cost: 1 + first x (1 + 2 + 40 x 2) = 1 + first x 83 (Order, Refund, refundLineItems, RefundLineItem,
# LineItem); first 12 -> 997.
ORDER_REFUNDS = """
query ConnexOrderRefunds($id: ID!, $first: Int!) {
  order(id: $id) {
    refunds(first: $first) {
      id
      createdAt
      refundLineItems(first: 40) {
        nodes { quantity restockType lineItem { sku name } }
        pageInfo { hasNextPage }
      }
    }
  }
}
"""
ORDER_REFUND_COST = 1 + 2 + ORDER_REFUND_LINES_FULL * 2

_SET_SELECTION = """{
    inventoryAdjustmentGroup {
      id
      changes(quantityNames: ["available"]) { name delta quantityAfterChange item { id } }
    }
    userErrors { code field message }
  }"""

# cost: 10 (mutation). API 2026-01 and later: with an idempotency key.
SET_QUANTITIES_IDEMPOTENT = (
    """
mutation ConnexSetStock($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) """
    + _SET_SELECTION
    + "\n}\n"
)

# cost: 10 (mutation). API versions before 2026-01, which have no @idempotent directive.
SET_QUANTITIES = (
    """
mutation ConnexSetStock($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) """
    + _SET_SELECTION
    + "\n}\n"
)

STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})


def _version_key(version: str) -> str:
    return "9999-99" if version == "unstable" else version


def _search_value(value: str) -> str:
    """A value for Shopify's search syntax, quoted so spaces and colons stay part of it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass
class CostBudget:
    """The client's picture of Shopify's leaky bucket, from the last throttleStatus and the clock."""

    maximum: float = 0.0
    available: float = 0.0
    restore_rate: float = 0.0
    stamp: float = 0.0
    known: bool = False

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
        return min(self.maximum, self.available + max(0.0, now - self.stamp) * self.restore_rate)

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
        with contextlib.suppress(KeyError, TypeError, ValueError):
            reported = float(status["currentlyAvailable"]) - reserved
            if self.known and reported < self.estimate(now):
                self.available, self.stamp = reported, now

    def update(self, status: dict[str, Any], now: float) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self.seed(
                maximum=float(status["maximumAvailable"]),
                available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
                now=now,
            )


Plan = Callable[[float], tuple[dict[str, Any], int]]  # cap -> (variables, declared cost)


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
        self.endpoint = f"{base}/admin/api/{api_version}/graphql.json"
        self.location_id = location_id
        self.policy = policy
        self.stats = RequestStats()
        self.throttled_answers = 0
        self.budget = CostBudget()
        self.location_found: bool | None = None
        self.last_cost: dict[tuple[str, Any], int] = {}  # (operation, first) -> last requestedQueryCost
        self._token = access_token
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._sleep = sleep
        self._ssl = ssl  # None: verify with the system's CAs; an SSLContext: e.g. a proxy's CA bundle
        self._lock = asyncio.Lock()  # held while a call reserves its cost, not while it is sent
        self._reserved = 0.0  # the cost reserved by calls sent and not yet answered
        # Calls go out side by side while the bucket affords them (each reserves its cost first),
        # and never more at once than the adaptive limit (storefronts.limiter) allows.
        self.gate = gate or StoreGate(maximum=max(1, concurrency), clock=clock, sleep=sleep)

    def __repr__(self) -> str:  # never the token
        return f"ShopifyClient({self.endpoint!r}, location={self.location_id!r})"

    @property
    def idempotent(self) -> bool:
        return _version_key(self.api_version) >= "2026-01"

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
                sleep=self._sleep,
                gate=self.gate,
                json={"query": query, "variables": variables},
                **({"ssl": self._ssl} if self._ssl is not None else {}),
                headers={"X-Shopify-Access-Token": self._token, "Accept": "application/json"},
            )
        finally:
            self.throttled_answers += self.stats.throttled - before  # HTTP 429s
        if result.status == 404:
            raise StorefrontError(
                f"Shopify {operation}: the shop answered 404; check the shop address and that API version "
                f"{self.api_version} is still supported"
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

    def _absorb(self, operation: str, first: Any, body: dict[str, Any]) -> dict[str, Any] | None:
        cost = (body.get("extensions") or {}).get("cost") or {}
        requested = cost.get("requestedQueryCost")
        if isinstance(requested, int | float):
            self.last_cost[(operation, first)] = int(requested)
        status = cost.get("throttleStatus")
        if isinstance(status, dict):
            if self._reserved > 0:
                self.budget.lower(status, self._clock(), self._reserved)
            else:
                self.budget.update(status, self._clock())
        return cost or None

    async def _ensure_budget(self) -> None:
        if self.budget.known:
            return
        body = await self._post("probe", PROBE, {"locationId": self.location_id})
        self._absorb("probe", None, body)
        data = body.get("data") or {}
        self.location_found = bool(data.get("location")) if "location" in data else None
        if not self.budget.known:  # no cost extension: assume the standard plan, and learn later
            self.budget.seed(maximum=2000, available=1000, restore_rate=100, now=self._clock())

    async def _call(self, operation: str, query: str, plan: Plan) -> dict[str, Any]:
        """One GraphQL call that the bucket can afford, retried on THROTTLED; returns `data`."""
        for _ in range(THROTTLE_ATTEMPTS):
            async with self._lock:
                await self._ensure_budget()
                variables, declared = plan(self.budget.cap())
                first = variables.get("first")
                expected = self.last_cost.get((operation, first), declared)
                wait = self.budget.wait_for(expected, self._clock())
                if wait > 0:
                    self.stats.waited_seconds += wait
                    await self._sleep(wait)
                self.budget.spend(expected, self._clock())
                self._reserved += expected
            try:
                body = await self._post(operation, query, variables)
            finally:
                self._reserved -= expected
            cost = self._absorb(operation, first, body)
            errors = body.get("errors") or []
            if not isinstance(errors, list):
                errors = [errors]
            errors = [error if isinstance(error, dict) else {"message": str(error)} for error in errors]
            if any((error.get("extensions") or {}).get("code") == "THROTTLED" for error in errors):
                self.throttled_answers += 1
                self.stats.throttled += 1
                log.info("Shopify %s throttled (cost %s)", operation, (cost or {}).get("requestedQueryCost"))
                continue  # the next round waits what the throttleStatus implies
            if errors:
                messages = "; ".join(str(error.get("message", error)) for error in errors[:3])
                raise StorefrontError(f"Shopify {operation} failed: {messages}")
            data = body.get("data")
            if not isinstance(data, dict):
                raise StorefrontError(f"Shopify {operation}: the answer had no data")
            return data
        raise StoreUnavailable(
            f"Shopify {operation}: still throttled after {THROTTLE_ATTEMPTS} tries",
            retry_after=self.budget.wait_for(self.budget.maximum, self._clock()) or None,
        )

    # ------------------------------------------------------------------ orders

    async def list_orders(self, modified_since: datetime | None) -> list[StoreOrderData]:
        search = "status:any"
        if modified_since is not None:
            search = f"updated_at:>='{_utc_iso(modified_since)}' status:any"
        found: dict[str, StoreOrderData] = {}
        after: str | None = None
        while True:

            def plan(cap: float, after: str | None = after) -> tuple[dict[str, Any], int]:
                first = max(1, min(ORDERS_PER_PAGE, int((cap - ORDER_BASE_COST) // ORDER_NODE_COST)))
                return {"first": first, "after": after, "query": search}, ORDER_BASE_COST + first * ORDER_NODE_COST

            data = await self._call("orders", ORDERS, plan)
            connection = data["orders"]
            for node in connection["nodes"]:
                order = await self._order_data(node)
                known = found.get(order.store_id)
                if known is None or order.modified_at >= known.modified_at:
                    found[order.store_id] = order
            info = connection["pageInfo"]
            if not info["hasNextPage"] or not info["endCursor"]:
                break
            after = info["endCursor"]
        return sorted(found.values(), key=lambda order: (order.modified_at, order.store_id))

    async def _order_data(self, node: dict[str, Any]) -> StoreOrderData:
        line_nodes = list(node["lineItems"]["nodes"])
        line_info = node["lineItems"]["pageInfo"]
        if line_info["hasNextPage"]:
            line_nodes += await self._more_lines(node["id"], line_info["endCursor"])
        refunds = list(node["refunds"])
        truncated = False
        if len(refunds) >= ORDER_REFUNDS_PER_PAGE or any(
            refund["refundLineItems"]["pageInfo"]["hasNextPage"] for refund in refunds
        ):
            refunds, truncated = await self._all_refunds(node["id"])
        lines = tuple(
            StoreLine(
                sku=line.get("sku") or "",
                quantity=Decimal(line["quantity"]),
                price=_decimal(((line.get("originalUnitPriceSet") or {}).get("shopMoney") or {}).get("amount")),
                name=line.get("name") or "",
            )
            for line in line_nodes
        )
        store_refunds = tuple(
            StoreRefund(
                refund_id=refund["id"],
                created_at=refund.get("createdAt") or "",
                lines=tuple(
                    StoreLine(
                        sku=(item.get("lineItem") or {}).get("sku") or "",
                        quantity=Decimal(item["quantity"]),
                        name=(item.get("lineItem") or {}).get("name") or "",
                    )
                    for item in refund["refundLineItems"]["nodes"]
                    if item.get("restockType") != "NO_RESTOCK"
                ),
            )
            for refund in refunds
        )
        raw = dict(node)
        if truncated:
            raw["connex_truncated_refunds"] = True
            log.warning("Shopify order %s has more refunds or refund lines than were read", node.get("name"))
        return StoreOrderData(
            store_id=node["id"],
            number=(node.get("name") or "").lstrip("#"),
            status=(node.get("displayFinancialStatus") or "").lower(),
            modified_at=node["updatedAt"],
            lines=lines,
            created_at=node.get("createdAt") or "",
            customer=node.get("email") or "",
            cancelled=node.get("cancelledAt") is not None,
            refunds=store_refunds,
            raw=raw,
        )

    async def _more_lines(self, order_id: str, after: str | None) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        while after:

            def plan(cap: float, after: str | None = after) -> tuple[dict[str, Any], int]:
                first = max(1, min(MAX_PAGE, int((cap - 3) // 3)))
                return {"id": order_id, "first": first, "after": after}, 3 + first * 3

            data = await self._call("orderLines", ORDER_LINES, plan)
            order = data.get("order")
            if not order:
                break
            lines += order["lineItems"]["nodes"]
            info = order["lineItems"]["pageInfo"]
            after = info["endCursor"] if info["hasNextPage"] else None
        return lines

    async def _all_refunds(self, order_id: str) -> tuple[list[dict[str, Any]], bool]:
        asked = 0

        def plan(cap: float) -> tuple[dict[str, Any], int]:
            nonlocal asked
            asked = max(1, int((cap - 1) // ORDER_REFUND_COST))
            return {"id": order_id, "first": asked}, 1 + asked * ORDER_REFUND_COST

        data = await self._call("orderRefunds", ORDER_REFUNDS, plan)
        refunds = list((data.get("order") or {}).get("refunds") or [])
        truncated = len(refunds) >= asked or any(r["refundLineItems"]["pageInfo"]["hasNextPage"] for r in refunds)
        return refunds, truncated

    # ------------------------------------------------------------------ catalog

    async def catalog(self) -> list[CatalogEntry]:
        return await self._variants(None)

    async def _variants(self, search: str | None) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        after: str | None = None
        while True:

            def plan(cap: float, after: str | None = after) -> tuple[dict[str, Any], int]:
                first = max(1, min(MAX_PAGE, int((cap - CATALOG_BASE_COST) // CATALOG_NODE_COST)))
                variables = {"first": first, "after": after, "query": search, "locationId": self.location_id}
                return variables, CATALOG_BASE_COST + first * CATALOG_NODE_COST

            data = await self._call("catalog", CATALOG, plan)
            connection = data["productVariants"]
            for node in connection["nodes"]:
                sku = (node.get("sku") or "").strip()
                if not sku:
                    continue  # a variant without a SKU cannot be matched to a QuickBooks item
                item = node["inventoryItem"]
                level = item.get("inventoryLevel")
                quantity = None
                if level:
                    quantity = next((q["quantity"] for q in level["quantities"] if q["name"] == "available"), None)
                entries.append(
                    CatalogEntry(sku=sku, item_id=item["id"], quantity=quantity, managed=bool(item["tracked"]))
                )
            info = connection["pageInfo"]
            if not info["hasNextPage"] or not info["endCursor"]:
                break
            after = info["endCursor"]
        return entries

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

    async def _set_batch(self, pending: list[tuple[int, StockUpdate]], results: list[StockResult | None]) -> None:
        expected: dict[int, int | None] = {index: update.entry.quantity for index, update in pending}
        reread = False
        document = SET_QUANTITIES_IDEMPOTENT if self.idempotent else SET_QUANTITIES
        for _round in range(4):
            if not pending:
                return
            key = str(uuid.uuid4())  # one key per call; the retries of this call reuse it
            variables = self._set_variables(pending, expected, key)
            try:
                data = await self._call("setStock", document, lambda cap: (variables, MUTATION_COST))  # noqa: B023 (awaited now)
            except CredentialsError:
                raise
            except StorefrontError as exc:
                for index, update in pending:
                    results[index] = StockResult(update.sku, False, expected[index], None, str(exc), permanent=False)
                return
            payload = data.get("inventorySetQuantities") or {}
            errors = payload.get("userErrors") or []
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
                    results[index] = StockResult(update.sku, False, expected[index], None, reason, permanent)
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
                results[index] = StockResult(update.sku, False, expected[index], None, reason, permanent)
            if stale and not reread:
                reread = True
                levels = await self._current_levels([update for _, update in stale])
                for index, update in stale:
                    expected[index] = levels.get(update.entry.item_id, expected[index])
                keep += stale
            else:
                for index, update in stale:
                    results[index] = StockResult(
                        update.sku,
                        False,
                        expected[index],
                        None,
                        "the stock in Shopify kept changing while we set it; it will be set on the next run",
                        permanent=False,
                    )
            pending = sorted(keep, key=lambda pair: pair[0])
        for index, update in pending:
            results[index] = StockResult(
                update.sku,
                False,
                expected[index],
                None,
                "Shopify kept rejecting the batch; will retry",
                permanent=False,
            )

    @staticmethod
    def _befores(payload: dict[str, Any]) -> dict[str, int]:
        befores: dict[str, int] = {}
        group = payload.get("inventoryAdjustmentGroup") or {}
        for change in group.get("changes") or []:
            if change.get("name") != "available" or change.get("quantityAfterChange") is None:
                continue
            item_id = (change.get("item") or {}).get("id")
            if item_id:
                befores[item_id] = int(change["quantityAfterChange"]) - int(change["delta"])
        return befores


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
