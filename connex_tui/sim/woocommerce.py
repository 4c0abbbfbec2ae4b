"""A WooCommerce store (REST API v3, ``/wp-json/wc/v3/``) in memory, answering over real HTTP.

Written from the WooCommerce REST API documentation and WooCommerce's own PHP (the REST controllers,
``WC_REST_Authentication``, ``wc-stock-functions.php``), not from our client: a mistake in the
client shows up as a failure against the emulator. It shares no code with
``connex_tui.storefronts.woocommerce``.

Test hooks (Python, no HTTP): `add_product`, `add_variable_product` (variations with or without
their own SKU and stock, the parent keeping stock or not), `stock`, `stock_of` and
`manage_stock_of` (by id, as the REST API shows them), `set_stock` (an edit by hand in wp-admin),
`place_order`, `set_order_status`, `refund` (its ``restock`` is the write-only ``api_restock``),
`mangle` (rewrite answers to feed a client values no healthy store sends: NaN, words for numbers),
`faults` (a `FaultPlan`; routes are ``"GET /wp-json/wc/v3/orders"``,
``"POST /wp-json/wc/v3/products/{id}/variations/batch"``: every number in the path becomes
``{id}``), `counters` (requests per route) and `start`/`stop`.

Authentication (``WC_REST_Authentication``)
-------------------------------------------
* A request is "over TLS" when it came over TLS, or (``trust_forwarded_proto=True``, the default;
  a proxy setup that ``wp-config.php`` commonly honours) carries ``X-Forwarded-Proto: https``.
* Over TLS: ``?consumer_key=…&consumer_secret=…`` first, else HTTP Basic (key : secret). An
  unknown key is simply "not logged in"; a known key with a wrong secret is 401
  ``woocommerce_rest_authentication_error`` "Consumer secret is invalid.".
* Otherwise (and over TLS when Basic did not log in): OAuth 1.0a one-legged, parameters from the
  query string or an ``Authorization: OAuth …`` header. Some but not all of oauth_consumer_key,
  oauth_timestamp, oauth_nonce, oauth_signature, oauth_signature_method -> 401
  ``woocommerce_rest_authentication_missing_parameter``. Unknown key -> "Consumer key is
  invalid.". The signature is checked exactly as WooCommerce does: every query parameter (PHP
  semantics: the last of repeated names wins, ``+`` is a space) plus the header's oauth ones,
  without oauth_signature, sorted by name (strcmp), each name and value RFC 3986 encoded, joined
  ``name=value`` and encoded again, joined with ``%26``; string to sign =
  ``METHOD&rawurlencode(scheme://host/path)&that``; key = ``consumer_secret&``; HMAC-SHA1 or
  HMAC-SHA256, base64. Mismatch -> "Invalid signature - provided signature does not match.";
  another method -> "Invalid signature - signature method is invalid.". Then the timestamp
  must be within 15 minutes of the wall clock (``time.time()``, not the data `clock`) either way
  ("Invalid timestamp.") and the nonce unused ("Invalid nonce - nonce has already been used.").
  A failed signature does not use up the nonce. Quirk kept from WooCommerce: used nonces are
  stored keyed by their timestamp, so only the last nonce of each second is remembered.
* HTTP Basic over plain http is ignored (so it is "not logged in"), as are consumer_key /
  consumer_secret query parameters.
* Not logged in -> the route's own 401: ``woocommerce_rest_cannot_view`` "Sorry, you cannot list
  resources." (lists) / "Sorry, you cannot view this resource." (one object),
  ``woocommerce_rest_cannot_batch``, ``woocommerce_rest_cannot_edit``. As in WordPress, parameter
  validation (``per_page`` …) runs before this permission check, but a credentials error (bad
  signature, wrong key) is answered before anything else, even on an unknown route.
* Key permissions (``permissions="read"``/``"write"``/``"read_write"``): a write with a read key ->
  401 "The API key provided does not have write permissions." (and the reverse).

Collections
-----------
* ``page`` (>= 1), ``per_page`` (1..100, default 10, else 400 ``rest_invalid_param`` "Invalid
  parameter(s): per_page" with ``data.params.per_page`` "per_page must be between 1 (inclusive)
  and 100 (inclusive)" and WordPress 5.6+'s ``data.details``), ``offset``, ``order`` (asc|desc,
  default desc), ``orderby`` (date, id, include, title, slug, modified; default date; ties break
  on id). Headers ``X-WP-Total``, ``X-WP-TotalPages`` (0 for an empty result) and ``Link`` with
  ``prev``/``next`` only, built from the request's own query string (so, like WooCommerce, it
  echoes oauth_* and consumer_* parameters back; never follow it with a signed request). A page
  past the end is ``[]``.
* ``GET orders``: ``status`` (comma list; ``any`` = everything but trash; default any),
  ``after``/``before`` (created), ``modified_after``/``modified_before`` (RFC 3339, else 400
  "Invalid date."), ``dates_are_gmt``, ``include``, ``exclude``. Date filters are **exclusive**
  (``WP_Date_Query`` with inclusive=false) at one-second precision: ``modified_after=10:00:00``
  does not return an order modified at 10:00:00. The site's timezone is UTC, so local and GMT
  dates agree; an offset in the parameter is converted to UTC.
* Order JSON: id, parent_id, number, order_key, status, currency, date_created(_gmt),
  date_modified(_gmt), date_paid(_gmt), date_completed(_gmt), total, billing
  {first_name, last_name, email, …}, line_items [{id, name, product_id (the parent for a
  variation), variation_id, quantity, subtotal, total, sku, price (a JSON number: total/quantity),
  meta_data}], refunds [{id, reason, total (negative string)}], meta_data. As in WooCommerce a
  line item's ``sku`` is looked up live from the product: it follows a SKU change and is
  ``null`` when the product was deleted (a variation without its own SKU shows its parent's,
  ``WC_Product_Variation::get_sku`` in view context). Line items carry every meta of the item,
  hidden ``_`` keys included, each ``{id, key, value, display_key, display_value}`` with the
  value as stored (a string) (``WC_REST_Orders_V2_Controller::get_order_item_data`` reads
  ``$item->get_data()['meta_data']``). The stock meta, from ``wc-stock-functions.php`` and
  ``wc-order-functions.php``: ``_reduced_stock`` is set to the line's quantity when the order
  takes stock (``wc_reduce_stock_levels``); a refund with restock lowers it by the refunded
  quantity (kept, even at "0") and raises ``_restock_refunded_items``, a running total
  (``wc_restock_refunded_items``); a cancel (or a move back to pending) puts back what
  ``_reduced_stock`` says and **deletes** that meta (``wc_increase_stock_levels``), leaving
  ``_restock_refunded_items`` as it was.
* ``GET orders/{id}`` (404 ``woocommerce_rest_shop_order_invalid_id``), ``PUT orders/{id}``
  (``status`` only), ``GET orders/{id}/refunds`` (paginated like every list, newest first).
* Refund JSON (``WC_REST_Order_Refunds_V2_Controller::get_item_schema``, view context): id,
  date_created(_gmt), amount, reason, refunded_by, refunded_payment, meta_data and line_items
  [{id, name, product_id, variation_id, quantity (negative), subtotal, total (negative strings),
  sku, price, meta_data}]. A refund line's only meta is ``_refunded_item_id`` (the order line it
  refunds; ``wc_create_refund``). Whether it was restocked is **not** on the refund:
  ``api_restock`` (v3) and ``api_refund`` are write-only (context "edit") arguments of
  ``POST orders/{id}/refunds``, and the restock is recorded on the order's line item only (see
  above). The `refund` test hook's ``restock`` is that argument.
* Variations (``WC_Product_Variation``, view context, as the REST controllers read it): a
  variation without a SKU of its own shows its parent's (``get_sku``); one that keeps no stock
  while its parent does shows ``manage_stock: "parent"`` (``get_manage_stock``, through
  ``managing_stock()``) and the parent's ``stock_quantity`` (``get_stock_quantity``); orders and
  restocks of it move the parent's stock (``wc_update_product_stock`` through
  ``get_stock_managed_by_id``).
* ``GET products``: ``sku`` (comma list, exact, case-insensitive like MySQL; the whole string is
  also tried as one SKU; **with a sku filter variations are searched too**, as WooCommerce does,
  and come back with type "variation" and their parent_id), ``type``, ``status``, ``include``,
  ``exclude``, ``search``, ``modified_after``/``modified_before``. Product JSON: id, name, slug,
  type (simple|variable|variation), status, sku, price, regular_price, manage_stock,
  stock_quantity (null when not managed), stock_status, backorders, parent_id, variations (ids),
  attributes, date_created(_gmt), date_modified(_gmt), meta_data. ``GET products/{id}`` (404
  ``woocommerce_rest_product_invalid_id``), ``GET products/{id}/variations`` (an unknown parent
  lists nothing, as a WP_Query on post_parent does), ``GET products/{id}/variations/{vid}``.
* SKUs are unique across products and variations, case-insensitively (``product_invalid_sku``
  "Invalid or duplicated SKU."); the check is on each one's own SKU, so inherited ones repeat.

Writes
------
* ``POST products/batch`` and ``POST products/{id}/variations/batch`` take ``{"create": [],
  "update": [], "delete": []}``. More than `batch_limit` objects in all -> 413
  ``woocommerce_rest_request_entity_too_large`` "Unable to accept more than 100 items for this
  request.". A key that is not an array -> 400 ``rest_invalid_param``. Each item runs on its own
  and the answer keeps the request's order: ``{"create": […], "update": […], "delete": […]}``
  (only the keys that were sent), each element the full object or inline
  ``{"id": <id as sent, 0 when missing>, "error": {"code", "message", "data": {"status": 400}}}``
  inside a **200**. Unknown id -> ``woocommerce_rest_product_invalid_id`` (products) /
  ``woocommerce_rest_product_variation_invalid_id`` (variations), "Invalid ID.". A variation id
  sent to ``products/batch`` is refused the same way (variations go to their parent's endpoint;
  some WooCommerce versions would quietly update it), and so is a variation sent to another
  parent's endpoint. Deletes are forced (no trash), as WooCommerce's batch does.
* ``PUT products/{id}`` and ``PUT products/{id}/variations/{vid}``: one update, errors as HTTP
  400 with the same codes.
* Stock, as ``WC_REST_Products_Controller::prepare_object_for_database``: ``manage_stock`` is
  applied first; ``stock_quantity`` is applied only if the product then manages stock and is
  **silently ignored otherwise** (200, stock_quantity null); it is converted with PHP's intval.
  Turning management off clears stock_quantity. For a variation the check is
  ``$variation->get_manage_stock()`` in view context: ``manage_stock: true`` sent to a variation
  whose parent keeps the stock switches it to a stock of its own (the parent's is no longer
  used), and a ``stock_quantity`` sent without it is stored on the variation but hidden behind
  the parent's (200, the parent's quantity shown)
  (``WC_REST_Product_Variations_Controller::prepare_object_for_database``). A managed stock of 0 or less is "outofstock"
  ("onbackorder" when backorders are allowed), else "instock"; a variable parent's stock_status
  follows its variations.
* Orders move stock like ``wc-stock-functions.php``: becoming processing, completed or on-hold
  reduces each managed line's stock once (``_reduced_stock``); becoming cancelled or pending
  puts back what is still reduced; a refund with restock puts its quantities back (managed,
  reduced lines only) and lowers ``_reduced_stock``, so a later cancel does not restore twice.
  A refund that brings the refunded amount to the order total turns the order "refunded".
* Every change (stock edits, orders taking stock, status changes, refunds) bumps
  ``date_modified_gmt`` of what changed, to the second, from `clock`.
* Ids of products, variations, orders and refunds come from one counter (they are all WordPress
  posts), so order ids are not consecutive when products are created in between.

Other answers
-------------
* Unknown route or method -> 404 ``rest_no_route`` "No route was found matching the URL and request
  method.". A body that is not JSON -> 400 ``rest_invalid_json`` "Invalid JSON body passed.".
* No rate limit by default (WooCommerce core has none). ``rate_limit=(n, seconds)`` answers 429
  with ``Retry-After`` once more than n requests arrive within the sliding window.
* Faults from `faults` are answered with a WordPress-style JSON body for that status (500 is
  WordPress's "critical error" answer).

Left out: creating orders or refunds over HTTP, coupons, taxes, shipping, customers, webhooks,
``context=edit``, ``_fields``, ``?rest_route=`` (plain permalinks), HPOS order ids, and the
``/wc/v3/variations`` endpoint of recent versions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from .capacity import ServerCapacity
from .faults import FaultPlan, fault_middleware

PREFIX = "/wp-json/wc/v3"
ORDER_STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash")
REDUCING_STATUSES = frozenset({"processing", "completed", "on-hold"})
RESTORING_STATUSES = frozenset({"cancelled", "pending"})
ORDERBY = ("date", "id", "include", "title", "slug", "modified")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$")
OAUTH_PARAMS = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature", "oauth_signature_method")
NONCE_WINDOW = 15 * 60
CENT = Decimal("0.01")

ERROR_BODIES: dict[int, tuple[str, str]] = {
    400: ("rest_invalid_request", "Invalid request."),
    401: ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    403: ("rest_forbidden", "Sorry, you are not allowed to do that."),
    404: ("rest_no_route", "No route was found matching the URL and request method."),
    413: ("woocommerce_rest_request_entity_too_large", "Unable to accept more than 100 items for this request."),
    429: ("woocommerce_rest_too_many_requests", "Too many requests. Please wait and try again."),
    500: (
        "internal_server_error",
        '<p>There has been a critical error on this website.</p><p><a href="https://wordpress.org/'
        'documentation/article/faq-troubleshooting/">Learn more about troubleshooting WordPress.</a></p>',
    ),
    502: ("http_502", "Bad Gateway"),
    503: ("http_503", "Service Unavailable"),
    504: ("http_504", "Gateway Timeout"),
}


class WPError(Exception):
    """A WP_Error on its way to the client."""

    def __init__(self, code: str, message: str, status: int, **data: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.data = code, message, status, data

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}}


def _wp_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="UTF-8",
        headers=headers,
    )


def _error_response(error: WPError) -> web.Response:
    return _wp_json(error.body(), error.status)


def _invalid_param(name: str, message: str, detail_code: str = "rest_invalid_param") -> WPError:
    return WPError(
        "rest_invalid_param",
        f"Invalid parameter(s): {name}",
        400,
        params={name: message},
        details={name: {"code": detail_code, "message": message, "data": None}},
    )


def _rfc3986(value: str) -> str:
    """PHP's rawurlencode (what wc_rest_urlencode_rfc3986 wraps)."""
    return quote(value, safe="~")


def _php_intval(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    match = re.match(r"\s*[+-]?\d+", str(value))
    return int(match.group(0)) if match else 0


def _php_bool(value: Any) -> bool:
    """wc_string_to_bool."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "yes", "true", "on")


def _gmt(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment is not None else None


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def _number(amount: Decimal) -> int | float:
    """WooCommerce's line `price` is a PHP float in the JSON (e.g. 6 or 6.5)."""
    value = float(amount)
    return int(value) if value.is_integer() else value


@dataclass
class _Product:
    id: int
    name: str
    sku: str
    type: str  # simple | variable | variation
    created: datetime
    modified: datetime
    parent_id: int = 0
    manage_stock: bool = False
    stock_quantity: int | None = None
    stock_status: str = "instock"
    backorders: str = "no"
    price: str = "10.00"
    status: str = "publish"
    variations: list[int] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _LineItem:
    id: int
    product_id: int  # the product; for a variation, its parent
    variation_id: int
    name: str
    quantity: int
    total: Decimal
    # meta _reduced_stock: None while the line has no such meta (never reduced, or restored by a
    # cancel, which deletes it), else the units still taken off the shelf ("0" is kept as a value).
    reduced_stock: int | None = None
    reduced_meta_id: int = 0
    restocked: int | None = None  # meta _restock_refunded_items, a running total; None: no meta yet
    restocked_meta_id: int = 0
    refunded: int = 0  # units refunded so far


@dataclass
class _RefundLine:
    id: int
    item: _LineItem
    quantity: int  # units refunded (shown negative)
    total: Decimal


@dataclass
class _Refund:
    id: int
    created: datetime
    amount: Decimal
    reason: str
    lines: list[_RefundLine]


@dataclass
class _Order:
    id: int
    number: str
    status: str
    created: datetime
    modified: datetime
    first_name: str
    last_name: str
    email: str
    lines: list[_LineItem]
    currency: str = "USD"
    paid: datetime | None = None
    completed: datetime | None = None
    stock_reduced: bool = False
    refunds: list[_Refund] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal("0"))


@dataclass
class _Auth:
    logged_in: bool = False
    error: WPError | None = None


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]
    denied: tuple[str, str]  # the WP_Error when not logged in


class WooCommerceEmulator:
    def __init__(
        self,
        *,
        consumer_key: str = "ck_test",
        consumer_secret: str = "cs_test",
        batch_limit: int = 100,
        clock: Callable[[], datetime] | None = None,
        rate_limit: tuple[int, float] | None = None,
        permissions: str = "read_write",
        trust_forwarded_proto: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.batch_limit = batch_limit
        self.rate_limit = rate_limit
        self.permissions = permissions
        self.trust_forwarded_proto = trust_forwarded_proto
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._wall = wall_clock
        self.faults = FaultPlan()
        self.capacity = ServerCapacity()  # latency, per-item cost, PHP workers (sim/capacity.py)
        self._products: dict[int, _Product] = {}
        self._orders: dict[int, _Order] = {}
        self._post_ids = 100  # WordPress posts: products, variations, orders and refunds share ids
        self._item_ids = 0  # woocommerce_order_items
        self._meta_ids = 0  # woocommerce_order_itemmeta
        # Test hook: (kind, json) -> json, applied to every "order", "refund", "product",
        # "variation" and "batch" ({"update": [...]}) answer, to feed a client what some plugin or
        # a broken database could put there (NaN, strings for numbers...).
        self.mangle: Callable[[str, Any], Any] | None = None
        self._nonces: dict[int, str] = {}  # timestamp -> nonce, as WooCommerce stores them
        self._hits: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._routes = self._route_table()

    # ------------------------------------------------------------------ test hooks
    @property
    def counters(self) -> Any:
        return self.faults.counters

    def _now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None)

    def _next_post_id(self) -> int:
        self._post_ids += 1
        return self._post_ids

    def _by_sku(self, sku: str) -> _Product | None:
        wanted = sku.casefold()
        for product in self._products.values():
            if product.sku and product.sku.casefold() == wanted:
                return product
        return None

    def _check_unique_sku(self, sku: str, exclude: int = 0) -> None:
        found = self._by_sku(sku) if sku else None
        if found is not None and found.id != exclude:
            raise WPError("product_invalid_sku", "Invalid or duplicated SKU.", 400, resource_id=found.id, unique_sku="")

    def add_product(
        self, sku: str, stock: int | None, *, name: str | None = None, manage_stock: bool = True, price: str = "10.00"
    ) -> int:
        try:
            self._check_unique_sku(sku)
        except WPError as exc:
            raise ValueError(f"SKU {sku!r} is already used on this store") from exc
        now = self._now()
        managed = manage_stock and stock is not None
        product = _Product(
            id=self._next_post_id(),
            name=name or f"Product {sku}",
            sku=sku,
            type="simple",
            created=now,
            modified=now,
            manage_stock=managed,
            stock_quantity=int(stock) if managed and stock is not None else None,
            price=price,
        )
        self._sync_stock_status(product)
        self._products[product.id] = product
        return product.id

    def add_variable_product(
        self,
        name: str,
        variations: dict[str, int | None] | list[tuple[str, int | None]],
        *,
        sku: str = "",
        price: str = "10.00",
        stock: int | None = None,
    ) -> tuple[int, dict[str, int]]:
        """A variable product. `variations` maps each variation's own SKU ("" for none: it then
        shows its parent's, `WC_Product_Variation::get_sku`) to its own stock, or None for a
        variation that keeps no stock of its own. `stock` makes the parent keep stock (its
        "Manage stock?" box): variations without their own then report ``manage_stock: "parent"``
        and the parent's quantity, and orders take from the parent. The ids are keyed by SKU, or
        ``"#n"`` (n from 1) for a variation without one."""
        pairs = list(variations.items()) if isinstance(variations, dict) else list(variations)
        for each in [sku, *(s for s, _ in pairs)]:
            if each and self._by_sku(each) is not None:
                raise ValueError(f"SKU {each!r} is already used on this store")
        now = self._now()
        parent = _Product(
            id=self._next_post_id(),
            name=name,
            sku=sku,
            type="variable",
            created=now,
            modified=now,
            price=price,
            manage_stock=stock is not None,
            stock_quantity=stock,
            attributes=[
                {
                    "id": 0,
                    "name": "Option",
                    "position": 0,
                    "visible": True,
                    "variation": True,
                    "options": [s or f"#{n}" for n, (s, _) in enumerate(pairs, start=1)],
                }
            ],
        )
        self._products[parent.id] = parent
        ids: dict[str, int] = {}
        for number, (var_sku, var_stock) in enumerate(pairs, start=1):
            label = var_sku or f"#{number}"
            variation = _Product(
                id=self._next_post_id(),
                name=f"{name} - {label}",
                sku=var_sku,
                type="variation",
                created=now,
                modified=now,
                parent_id=parent.id,
                manage_stock=var_stock is not None,
                stock_quantity=var_stock,
                price=price,
                attributes=[{"id": 0, "name": "Option", "option": label}],
            )
            self._products[variation.id] = variation
            self._sync_stock_status(variation)
            parent.variations.append(variation.id)
            ids[label] = variation.id
        self._sync_parent(parent, touch=False)
        return parent.id, ids

    def product_id(self, sku: str) -> int:
        product = self._by_sku(sku)
        if product is None:
            raise KeyError(sku)
        return product.id

    def stock(self, sku: str) -> int | None:
        product = self._by_sku(sku)
        if product is None:
            raise KeyError(sku)
        holder = self._holder(product)
        return holder.stock_quantity if holder is not None else None

    def stock_of(self, product_id: int) -> int | None:
        """The stock a product or variation shows (a variation kept by its parent: the parent's)."""
        holder = self._holder(self._products[product_id])
        return holder.stock_quantity if holder is not None else None

    def manage_stock_of(self, product_id: int) -> bool | str:
        """``manage_stock`` as the REST API shows it: true, false or "parent"."""
        return self._view_manage(self._products[product_id])

    def set_stock(self, sku: str, quantity: int | None) -> None:
        """An edit by hand in wp-admin; None turns stock management off."""
        product = self._by_sku(sku)
        if product is None:
            raise KeyError(sku)
        product.manage_stock = quantity is not None
        product.stock_quantity = quantity
        self._touch_product(product)

    def place_order(
        self,
        lines: list[tuple[str | int, int]],
        *,
        status: str = "processing",
        number: str | None = None,
        customer: str = "Jane Doe",
        email: str = "jane@example.com",
    ) -> int:
        if status not in ORDER_STATUSES:
            raise ValueError(f"unknown order status {status!r}")
        now = self._now()
        items: list[_LineItem] = []
        for sku, quantity in lines:
            # a product id (int) names a product without a SKU
            product = self._products.get(sku) if isinstance(sku, int) else self._by_sku(sku)
            if product is None:
                raise KeyError(sku)
            self._item_ids += 1
            items.append(
                _LineItem(
                    id=self._item_ids,
                    product_id=product.parent_id or product.id,
                    variation_id=product.id if product.type == "variation" else 0,
                    name=product.name,
                    quantity=int(quantity),
                    total=(Decimal(product.price) * int(quantity)).quantize(CENT),
                )
            )
        first, _, last = customer.partition(" ")
        order_id = self._next_post_id()
        order = _Order(
            id=order_id,
            number=number or str(order_id),
            status="pending",
            created=now,
            modified=now,
            first_name=first,
            last_name=last,
            email=email,
            lines=items,
        )
        self._orders[order_id] = order
        self._change_status(order, status)
        return order_id

    def order(self, order_id: int) -> dict[str, Any]:
        """The order as GET orders/{id} shows it."""
        return self._order_json(self._orders[order_id])

    def set_order_status(self, order_id: int, status: str) -> None:
        if status not in ORDER_STATUSES:
            raise ValueError(f"unknown order status {status!r}")
        self._change_status(self._orders[order_id], status)

    def refund(
        self,
        order_id: int,
        lines: list[tuple[str | int, int]],
        *,
        restock: bool = True,
        amount: str | None = None,
        reason: str = "",
    ) -> int:
        order = self._orders[order_id]
        now = self._now()
        refund_lines: list[_RefundLine] = []
        for sku, quantity in lines:
            item = self._find_item(order, sku)
            if quantity <= 0 or item.refunded + quantity > item.quantity:
                raise ValueError(f"cannot refund {quantity} of {sku!r} on order {order_id}")
            unit = item.total / item.quantity
            self._item_ids += 1
            refund_lines.append(_RefundLine(self._item_ids, item, quantity, (unit * quantity).quantize(CENT)))
        total = Decimal(amount) if amount is not None else sum((r.total for r in refund_lines), Decimal("0"))
        already = sum((r.amount for r in order.refunds), Decimal("0"))
        if total <= 0 or already + total > order.total:
            raise ValueError(f"invalid refund amount {total} for order {order_id}")
        for rline in refund_lines:
            rline.item.refunded += rline.quantity
        refund = _Refund(self._next_post_id(), now, total, reason, refund_lines)
        order.refunds.insert(0, refund)  # newest first, as WC_Order::get_refunds()
        if restock:  # wc_create_refund: after the refund is saved, wc_restock_refunded_items
            for rline in refund_lines:
                self._restock_line(rline.item, rline.quantity)
        order.modified = now
        if already + total >= order.total:
            self._change_status(order, "refunded")  # woocommerce_order_fully_refunded
        return refund.id

    # ------------------------------------------------------------------ stock and status mechanics
    def _view_sku(self, product: _Product) -> str:
        """WC_Product_Variation::get_sku (view context): a variation without a SKU of its own
        shows its parent's."""
        if product.sku or product.type != "variation":
            return product.sku
        parent = self._products.get(product.parent_id)
        return parent.sku if parent is not None else ""

    def _view_manage(self, product: _Product) -> bool | str:
        """WC_Product_Variation::get_manage_stock (view context): "parent" for a variation that
        keeps no stock of its own while its parent does (what ``managing_stock()`` hands the REST
        controllers)."""
        if product.manage_stock:
            return True
        parent = self._products.get(product.parent_id) if product.type == "variation" else None
        return "parent" if parent is not None and parent.manage_stock else False

    def _holder(self, product: _Product) -> _Product | None:
        """WC_Product::get_stock_managed_by_id: whose stock an order or a restock moves; None when
        nobody manages it (wc_update_product_stock then does nothing)."""
        manage = self._view_manage(product)
        if manage == "parent":
            return self._products[product.parent_id]
        return product if manage else None

    def _restock_line(self, item: _LineItem, quantity: int) -> None:
        """wc_restock_refunded_items (wc-order-functions.php), for one order line item: only when
        the line has a truthy ``_reduced_stock`` and its product manages stock; the stock goes up
        by the refunded quantity, ``_reduced_stock`` goes down by it (and stays, even at 0), and
        ``_restock_refunded_items`` (a running total on the *order's* line item) goes up by it."""
        product = self._products.get(item.variation_id or item.product_id)
        holder = self._holder(product) if product is not None else None
        if not item.reduced_stock or not quantity or holder is None:
            return
        self._adjust_stock(holder, quantity)
        item.reduced_stock -= quantity
        if item.restocked is None:
            item.restocked, item.restocked_meta_id = 0, self._next_meta_id()
        item.restocked += quantity

    def _next_meta_id(self) -> int:
        self._meta_ids += 1
        return self._meta_ids

    def _find_item(self, order: _Order, sku: str | int) -> _LineItem:
        """The order's line for a SKU (as the line shows it), or for a product/variation id."""
        for item in order.lines:
            if isinstance(sku, int):
                if sku in (item.variation_id, item.product_id):
                    return item
                continue
            product = self._products.get(item.variation_id or item.product_id)
            if product is not None and self._view_sku(product).casefold() == sku.casefold():
                return item
        raise KeyError(f"order {order.id} has no line for {sku!r}")

    def _sync_stock_status(self, product: _Product) -> None:
        if product.type == "variable":
            return
        if product.manage_stock:
            quantity = product.stock_quantity or 0
            if quantity > 0:
                product.stock_status = "instock"
            else:
                product.stock_status = "onbackorder" if product.backorders != "no" else "outofstock"
        elif product.stock_status not in ("instock", "outofstock", "onbackorder"):
            product.stock_status = "instock"

    def _sync_parent(self, parent: _Product, touch: bool = True) -> None:
        statuses = [self._products[v].stock_status for v in parent.variations if v in self._products]
        if "instock" in statuses:
            parent.stock_status = "instock"
        elif "onbackorder" in statuses:
            parent.stock_status = "onbackorder"
        else:
            parent.stock_status = "outofstock"
        if touch:
            parent.modified = self._now()

    def _touch_product(self, product: _Product) -> None:
        self._sync_stock_status(product)
        product.modified = self._now()
        if product.parent_id and product.parent_id in self._products:
            self._sync_parent(self._products[product.parent_id])

    def _adjust_stock(self, product: _Product, delta: int) -> None:
        product.stock_quantity = (product.stock_quantity or 0) + delta
        self._touch_product(product)

    def _change_status(self, order: _Order, status: str) -> None:
        now = self._now()
        if status != order.status:
            order.status = status
            order.modified = now
        if status in ("processing", "completed") and order.paid is None:
            order.paid = now
        if status == "completed" and order.completed is None:
            order.completed = now
        if status in REDUCING_STATUSES and not order.stock_reduced:  # wc_maybe_reduce_stock_levels
            for item in order.lines:  # wc_reduce_stock_levels: the line's quantity, once per line
                product = self._products.get(item.variation_id or item.product_id)
                holder = self._holder(product) if product is not None else None
                if item.reduced_stock or holder is None:
                    continue
                self._adjust_stock(holder, -item.quantity)
                item.reduced_stock, item.reduced_meta_id = item.quantity, self._next_meta_id()
            order.stock_reduced = True
        elif status in RESTORING_STATUSES and order.stock_reduced:  # wc_maybe_increase_stock_levels
            for item in order.lines:  # wc_increase_stock_levels: puts back _reduced_stock, deletes the meta
                product = self._products.get(item.variation_id or item.product_id)
                holder = self._holder(product) if product is not None else None
                if not item.reduced_stock or holder is None:
                    continue
                self._adjust_stock(holder, item.reduced_stock)
                item.reduced_stock = None
            order.stock_reduced = False

    # ------------------------------------------------------------------ JSON
    def _line_sku(self, item: _LineItem) -> str | None:
        """get_order_item_data: ``$item->get_product()->get_sku()`` (view: inherited), null
        when the product is gone."""
        product = self._products.get(item.variation_id or item.product_id)
        return self._view_sku(product) if product is not None else None

    def _render_json(self, kind: str, data: Any) -> Any:
        return self.mangle(kind, data) if self.mangle is not None else data

    def _product_json(self, p: _Product, base: str) -> dict[str, Any]:
        return self._render_json("variation" if p.type == "variation" else "product", self._product_data(p, base))

    def _product_data(self, p: _Product, base: str) -> dict[str, Any]:
        manage = self._view_manage(p)
        holder = self._holder(p)
        data: dict[str, Any] = {
            "id": p.id,
            "name": p.name,
            "slug": re.sub(r"[^a-z0-9]+", "-", p.name.lower()).strip("-"),
            "permalink": f"{base}/?p={p.id}",
            "date_created": _gmt(p.created),
            "date_created_gmt": _gmt(p.created),
            "date_modified": _gmt(p.modified),
            "date_modified_gmt": _gmt(p.modified),
            "type": p.type,
            "status": p.status,
            "featured": False,
            "catalog_visibility": "visible",
            "description": "",
            "short_description": "",
            "sku": self._view_sku(p),
            "price": p.price,
            "regular_price": p.price,
            "sale_price": "",
            "on_sale": False,
            "purchasable": True,
            "total_sales": 0,
            "virtual": False,
            "downloadable": False,
            "tax_status": "taxable",
            "tax_class": "",
            "manage_stock": manage,
            "stock_quantity": holder.stock_quantity if holder is not None else None,
            "stock_status": p.stock_status,
            "backorders": p.backorders,
            "backorders_allowed": p.backorders != "no",
            "backordered": False,
            "low_stock_amount": None,
            "parent_id": p.parent_id,
            "attributes": p.attributes,
            "variations": list(p.variations) if p.type == "variable" else [],
            "menu_order": 0,
            "meta_data": [],
            "_links": {"self": [{"href": f"{base}{PREFIX}/products/{p.id}"}]},
        }
        return data

    def _variation_json(self, v: _Product, base: str) -> dict[str, Any]:
        """WC_REST_Product_Variations_Controller::prepare_object_for_response: sku from get_sku(),
        manage_stock from managing_stock() (true, false or "parent"), stock_quantity from
        get_stock_quantity() (the parent's when "parent")."""
        data = self._product_data(v, base)
        for key in ("featured", "catalog_visibility", "short_description", "total_sales", "variations", "slug"):
            data.pop(key, None)
        data["image"] = None
        data["_links"] = {
            "self": [{"href": f"{base}{PREFIX}/products/{v.parent_id}/variations/{v.id}"}],
            "up": [{"href": f"{base}{PREFIX}/products/{v.parent_id}"}],
        }
        return self._render_json("variation", data)

    @staticmethod
    def _meta(meta_id: int, key: str, value: str) -> dict[str, Any]:
        """One meta entry as WC_REST_Orders_V2_Controller::get_order_item_data shows it (every
        meta of the item, hidden "_" keys included, values as stored: strings)."""
        return {"id": meta_id, "key": key, "value": value, "display_key": key, "display_value": value}

    def _item_json(self, item: _LineItem) -> dict[str, Any]:
        meta = []
        if item.reduced_stock is not None:
            meta.append(self._meta(item.reduced_meta_id, "_reduced_stock", str(item.reduced_stock)))
        if item.restocked is not None:
            meta.append(self._meta(item.restocked_meta_id, "_restock_refunded_items", str(item.restocked)))
        return {
            "id": item.id,
            "name": item.name,
            "product_id": item.product_id,
            "variation_id": item.variation_id,
            "quantity": item.quantity,
            "tax_class": "",
            "subtotal": _money(item.total),
            "subtotal_tax": "0.00",
            "total": _money(item.total),
            "total_tax": "0.00",
            "taxes": [],
            "meta_data": meta,
            "sku": self._line_sku(item),
            "price": _number(item.total / item.quantity) if item.quantity else 0,
        }

    def _order_json(self, o: _Order) -> dict[str, Any]:
        return self._render_json("order", self._order_data(o))

    def _order_data(self, o: _Order) -> dict[str, Any]:
        return {
            "id": o.id,
            "parent_id": 0,
            "number": o.number,
            "order_key": f"wc_order_{o.id:08x}",
            "created_via": "checkout",
            "version": "9.0.0",
            "status": o.status,
            "currency": o.currency,
            "date_created": _gmt(o.created),
            "date_created_gmt": _gmt(o.created),
            "date_modified": _gmt(o.modified),
            "date_modified_gmt": _gmt(o.modified),
            "discount_total": "0.00",
            "shipping_total": "0.00",
            "total": _money(o.total),
            "total_tax": "0.00",
            "prices_include_tax": False,
            "customer_id": 0,
            "billing": {
                "first_name": o.first_name,
                "last_name": o.last_name,
                "company": "",
                "address_1": "",
                "address_2": "",
                "city": "",
                "state": "",
                "postcode": "",
                "country": "",
                "email": o.email,
                "phone": "",
            },
            "shipping": {
                "first_name": o.first_name,
                "last_name": o.last_name,
                "company": "",
                "address_1": "",
                "address_2": "",
                "city": "",
                "state": "",
                "postcode": "",
                "country": "",
            },
            "payment_method": "bacs",
            "payment_method_title": "Direct bank transfer",
            "transaction_id": "",
            "date_paid": _gmt(o.paid),
            "date_paid_gmt": _gmt(o.paid),
            "date_completed": _gmt(o.completed),
            "date_completed_gmt": _gmt(o.completed),
            "meta_data": [],
            "line_items": [self._item_json(item) for item in o.lines],
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": [{"id": r.id, "reason": r.reason, "total": "-" + _money(r.amount)} for r in o.refunds],
        }

    def _refund_json(self, r: _Refund) -> dict[str, Any]:
        lines = []
        for line in r.lines:
            lines.append(
                {
                    "id": line.id,
                    "name": line.item.name,
                    "product_id": line.item.product_id,
                    "variation_id": line.item.variation_id,
                    "quantity": -line.quantity,
                    "tax_class": "",
                    "subtotal": "-" + _money(line.total),
                    "subtotal_tax": "0.00",
                    "total": "-" + _money(line.total),
                    "total_tax": "0.00",
                    "taxes": [],
                    # wc_create_refund: the refund's copy of the line carries _refunded_item_id, nothing
                    # about stock (restocking happens after, on the order's own line item).
                    "meta_data": [self._meta(line.id * 10 + 1, "_refunded_item_id", str(line.item.id))],
                    "sku": self._line_sku(line.item),
                    "price": _number(line.total / line.quantity),
                }
            )
        return self._render_json(
            "refund",
            {
                "id": r.id,
                "date_created": _gmt(r.created),
                "date_created_gmt": _gmt(r.created),
                "amount": _money(r.amount),
                "reason": r.reason,
                "refunded_by": 1,
                "refunded_payment": False,
                "meta_data": [],
                "line_items": lines,
                "shipping_lines": [],
                "tax_lines": [],
                "fee_lines": [],
            },
        )

    # ------------------------------------------------------------------ HTTP plumbing
    def _route_table(self) -> list[_Route]:
        list_denied = ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        view_denied = ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
        edit_denied = ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.")
        batch_denied = (
            "woocommerce_rest_cannot_batch",
            "Sorry, you are not allowed to batch manipulate this resource.",
        )
        table: list[tuple[str, str, Callable[..., Any], tuple[str, str]]] = [
            ("GET", r"orders", self._h_list_orders, list_denied),
            ("GET", r"orders/(?P<id>\d+)", self._h_get_order, view_denied),
            ("PUT", r"orders/(?P<id>\d+)", self._h_put_order, edit_denied),
            ("GET", r"orders/(?P<id>\d+)/refunds", self._h_list_refunds, list_denied),
            ("GET", r"products", self._h_list_products, list_denied),
            ("POST", r"products/batch", self._h_products_batch, batch_denied),
            ("GET", r"products/(?P<id>\d+)", self._h_get_product, view_denied),
            ("PUT", r"products/(?P<id>\d+)", self._h_put_product, edit_denied),
            ("GET", r"products/(?P<parent>\d+)/variations", self._h_list_variations, list_denied),
            ("POST", r"products/(?P<parent>\d+)/variations/batch", self._h_variations_batch, batch_denied),
            ("GET", r"products/(?P<parent>\d+)/variations/(?P<id>\d+)", self._h_get_variation, view_denied),
            ("PUT", r"products/(?P<parent>\d+)/variations/(?P<id>\d+)", self._h_put_variation, edit_denied),
        ]
        return [_Route(m, re.compile(rf"^{PREFIX}/{p}/?$"), h, d) for m, p, h, d in table]

    @staticmethod
    def route_of(request: web.Request) -> str:
        return f"{request.method} " + re.sub(r"/\d+(?=/|$)", "/{id}", request.path)

    @staticmethod
    def error_body(status: int) -> bytes:
        code, message = ERROR_BODIES.get(status, (f"http_{status}", f"HTTP {status}"))
        return json.dumps({"code": code, "message": message, "data": {"status": status}}).encode()

    def app(self) -> web.Application:
        @web.middleware
        async def rate_limiter(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.rate_limit is not None:
                limit, window = self.rate_limit
                now = time.monotonic()
                while self._hits and self._hits[0] <= now - window:
                    self._hits.popleft()
                if len(self._hits) >= limit:
                    wait = max(1, math.ceil(self._hits[0] + window - now))
                    return web.Response(
                        status=429,
                        body=self.error_body(429),
                        content_type="application/json",
                        headers={"Retry-After": str(wait)},
                    )
                self._hits.append(now)
            return await handler(request)

        app = web.Application(
            middlewares=[
                fault_middleware(self.faults, self.route_of, self.error_body),
                rate_limiter,
                self.capacity.middleware(),
            ]
        )
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None) -> str:
        """Serve on host:port (0: a free port); returns "http://127.0.0.1:PORT" (https with `ssl_context`)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        address = self._runner.addresses[0]
        scheme = "https" if ssl_context is not None else "http"
        self.base_url = f"{scheme}://{address[0]}:{address[1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _is_tls(self, request: web.Request) -> bool:
        if request.transport is not None and request.transport.get_extra_info("sslcontext") is not None:
            return True
        if self.trust_forwarded_proto:
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            return proto == "https"
        return False

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        auth = self._authenticate(request)
        if auth.error is not None:  # rest_authentication_errors: answered before routing
            return _error_response(auth.error)
        path = request.path
        for route in self._routes:
            match = route.pattern.match(path)
            if match and route.method == request.method:
                break
        else:
            return _error_response(
                WPError("rest_no_route", "No route was found matching the URL and request method.", 404)
            )
        try:
            return await route.handler(request, auth, route.denied, **{k: int(v) for k, v in match.groupdict().items()})
        except WPError as exc:
            return _error_response(exc)

    # ------------------------------------------------------------------ authentication
    def _authenticate(self, request: web.Request) -> _Auth:
        if not request.path.startswith(PREFIX + "/"):
            return _Auth()
        tls = self._is_tls(request)
        auth = _Auth()
        if tls:
            self._basic(request, auth)
        if not auth.logged_in:
            self._oauth(request, tls, auth)
        if auth.logged_in and auth.error is None:
            write = request.method in ("POST", "PUT", "PATCH", "DELETE")
            if write and self.permissions not in ("write", "read_write"):
                auth.error = WPError(
                    "woocommerce_rest_authentication_error",
                    "The API key provided does not have write permissions.",
                    401,
                )
            elif not write and self.permissions not in ("read", "read_write"):
                auth.error = WPError(
                    "woocommerce_rest_authentication_error", "The API key provided does not have read permissions.", 401
                )
        return auth

    def _basic(self, request: web.Request, auth: _Auth) -> None:
        key = request.query.getall("consumer_key", [""])[-1]
        secret = request.query.getall("consumer_secret", [""])[-1]
        if not (key and secret):
            key = secret = ""
            header = request.headers.get("Authorization", "")
            if header[:6].lower() == "basic ":
                try:
                    decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    decoded = ""
                key, _, secret = decoded.partition(":")
        if not (key and secret):
            return
        if not hmac.compare_digest(key.encode(), self.consumer_key.encode()):
            return  # an unknown key is just "not logged in"
        if not hmac.compare_digest(secret.encode(), self.consumer_secret.encode()):
            auth.error = WPError("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
            return
        auth.logged_in = True

    @staticmethod
    def _oauth_header(header: str) -> dict[str, str]:
        if not header.startswith("OAuth "):
            return {}
        params: dict[str, str] = {}
        for name, quoted, bare in re.findall(r'(oauth_[a-z_-]*)=(?:"([^"]*)"|([^,]*))', header):
            params[name] = unquote((quoted or bare).replace("+", " "))
        return params

    def _oauth(self, request: web.Request, tls: bool, auth: _Auth) -> None:
        params: dict[str, str] = {}
        for name in request.query:
            params[name] = request.query.getall(name)[-1]  # PHP: the last repeated name wins
        params.update(self._oauth_header(request.headers.get("Authorization", "").strip()))
        missing = [name for name in OAUTH_PARAMS if not params.get(name)]
        if len(missing) == len(OAUTH_PARAMS):
            return  # not even trying OAuth
        if missing:
            word = "parameter" if len(missing) == 1 else "parameters"
            auth.error = WPError(
                "woocommerce_rest_authentication_missing_parameter", f"Missing OAuth {word} {', '.join(missing)}", 401
            )
            return
        if params["oauth_consumer_key"] != self.consumer_key:
            auth.error = WPError("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
            return
        # check_oauth_signature
        scheme = "https" if tls else "http"
        base_url = f"{scheme}://{request.host}{request.raw_path.split('?', 1)[0]}"
        given = unquote(params.pop("oauth_signature").replace(" ", "+"))
        ordered = sorted(params.items(), key=lambda kv: kv[0].encode("utf-8"))
        pairs = [_rfc3986(f"{_rfc3986(k)}={_rfc3986(v)}") for k, v in ordered]
        string_to_sign = f"{request.method.upper()}&{_rfc3986(base_url)}&{'%26'.join(pairs)}"
        method = params["oauth_signature_method"]
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            auth.error = WPError(
                "woocommerce_rest_authentication_error", "Invalid signature - signature method is invalid.", 401
            )
            return
        digest = hashlib.sha1 if method == "HMAC-SHA1" else hashlib.sha256
        expected = base64.b64encode(
            hmac.new(f"{self.consumer_secret}&".encode(), string_to_sign.encode(), digest).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            auth.error = WPError(
                "woocommerce_rest_authentication_error", "Invalid signature - provided signature does not match.", 401
            )
            return
        # check_oauth_timestamp_and_nonce
        now = int(self._wall())
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            timestamp = -1
        if timestamp < now - NONCE_WINDOW or timestamp > now + NONCE_WINDOW:
            auth.error = WPError("woocommerce_rest_authentication_error", "Invalid timestamp.", 401)
            return
        nonce = params["oauth_nonce"]
        if nonce in self._nonces.values():
            auth.error = WPError(
                "woocommerce_rest_authentication_error", "Invalid nonce - nonce has already been used.", 401
            )
            return
        self._nonces[timestamp] = nonce
        for stamp in [s for s in self._nonces if s < now - NONCE_WINDOW]:
            del self._nonces[stamp]
        auth.logged_in = True

    # ------------------------------------------------------------------ parameters
    @staticmethod
    def _param(request: web.Request, name: str) -> str | None:
        values = request.query.getall(name, [])
        return values[-1] if values else None

    def _int_param(
        self,
        request: web.Request,
        name: str,
        default: int | None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        raw = self._param(request, name)
        if raw is None or raw == "":
            return default
        if not re.fullmatch(r"[+-]?\d+", raw.strip()):
            raise _invalid_param(name, f"{name} is not of type integer.", "rest_invalid_type")
        value = int(raw)
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            raise _invalid_param(
                name, f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)", "rest_out_of_bounds"
            )
        if minimum is not None and maximum is None and value < minimum:
            raise _invalid_param(name, f"{name} must be greater than or equal to {minimum}", "rest_out_of_bounds")
        return value

    def _enum_param(self, request: web.Request, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._param(request, name)
        if raw is None or raw == "":
            return default
        if raw not in choices:
            raise _invalid_param(name, f"{name} is not one of {', '.join(choices)}.", "rest_not_in_enum")
        return raw

    def _bool_param(self, request: web.Request, name: str) -> bool:
        raw = self._param(request, name)
        if raw is None or raw == "":
            return False
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise _invalid_param(name, f"{name} is not of type boolean.", "rest_invalid_type")

    def _date_param(self, request: web.Request, name: str) -> datetime | None:
        raw = self._param(request, name)
        if raw is None or raw == "":
            return None
        if not RFC3339.match(raw):
            raise _invalid_param(name, "Invalid date.", "rest_invalid_date")
        text = raw.replace("t", "T").replace(" ", "T")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        return parsed.replace(microsecond=0)

    def _ids_param(self, request: web.Request, name: str) -> set[int] | None:
        raw = self._param(request, name)
        if raw is None or raw == "":
            return None
        ids: set[int] = set()
        for part in raw.split(","):
            if part.strip():
                if not part.strip().isdigit():
                    raise _invalid_param(name, f"{name}[0] is not of type integer.", "rest_invalid_type")
                ids.add(int(part))
        return ids

    def _page(
        self,
        request: web.Request,
        rows: list[Any],
        sort_keys: dict[str, Callable[[Any], Any]],
        render: Callable[[Any], dict[str, Any]],
        denied: tuple[str, str],
        auth: _Auth,
        default_orderby: str = "date",
    ) -> web.Response:
        """Validate the collection parameters, check permission, sort, slice and add the headers."""
        page = self._int_param(request, "page", 1, 1)
        per_page = self._int_param(request, "per_page", 10, 1, 100)
        offset = self._int_param(request, "offset", None)
        order = self._enum_param(request, "order", "desc", ("asc", "desc"))
        orderby = self._enum_param(request, "orderby", default_orderby, ORDERBY)
        self._require(auth, denied)
        assert page is not None and per_page is not None
        key = sort_keys.get(orderby, sort_keys["id"])
        rows = sorted(rows, key=lambda row: (key(row), row.id), reverse=(order == "desc"))
        total = len(rows)
        start = offset if offset is not None else (page - 1) * per_page
        chunk = rows[start : start + per_page]
        max_pages = math.ceil(total / per_page) if total else 0
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(max_pages)}
        base = f"{self._scheme(request)}://{request.host}{request.path}"
        query = [(k, v) for k, v in request.query.items() if k != "page"]
        links = []
        if page > 1:
            links.append(f'<{base}?{urlencode(query + [("page", str(min(page - 1, max(max_pages, 1))))])}>; rel="prev"')
        if max_pages > page:
            links.append(f'<{base}?{urlencode(query + [("page", str(page + 1))])}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return _wp_json([render(row) for row in chunk], headers=headers)

    def _scheme(self, request: web.Request) -> str:
        return "https" if self._is_tls(request) else "http"

    def _base(self, request: web.Request) -> str:
        return f"{self._scheme(request)}://{request.host}"

    @staticmethod
    def _require(auth: _Auth, denied: tuple[str, str]) -> None:
        if not auth.logged_in:
            raise WPError(denied[0], denied[1], 401)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise WPError(
                "rest_invalid_json",
                "Invalid JSON body passed.",
                400,
                json_error_code=4,
                json_error_message="Syntax error",
            ) from None
        if not isinstance(data, dict):
            return {}
        return data

    # ------------------------------------------------------------------ order routes
    def _order_filters(self, request: web.Request) -> Callable[[_Order], bool]:
        statuses_raw = self._param(request, "status") or "any"
        statuses = [s.strip() for s in statuses_raw.split(",") if s.strip()]
        allowed = ("any", *ORDER_STATUSES)
        for index, status in enumerate(statuses):
            if status not in allowed:
                raise _invalid_param(
                    "status", f"status[{index}] is not one of {', '.join(allowed)}.", "rest_not_in_enum"
                )
        self._bool_param(request, "dates_are_gmt")  # validated; the site runs on UTC, so both agree
        after = self._date_param(request, "after")
        before = self._date_param(request, "before")
        modified_after = self._date_param(request, "modified_after")
        modified_before = self._date_param(request, "modified_before")
        include = self._ids_param(request, "include")
        exclude = self._ids_param(request, "exclude") or set()

        def keep(o: _Order) -> bool:
            if "any" in statuses:
                if o.status == "trash" and "trash" not in statuses:
                    return False
            elif o.status not in statuses:
                return False
            if after is not None and not o.created > after:
                return False
            if before is not None and not o.created < before:
                return False
            if modified_after is not None and not o.modified > modified_after:
                return False
            if modified_before is not None and not o.modified < modified_before:
                return False
            if include is not None and o.id not in include:
                return False
            return o.id not in exclude

        return keep

    async def _h_list_orders(self, request: web.Request, auth: _Auth, denied: tuple[str, str]) -> web.Response:
        keep = self._order_filters(request)
        rows = [o for o in self._orders.values() if keep(o)]
        keys = {
            "date": lambda o: o.created,
            "id": lambda o: o.id,
            "modified": lambda o: o.modified,
            "title": lambda o: o.created,
            "slug": lambda o: o.id,
            "include": lambda o: o.id,
        }
        return self._page(request, rows, keys, self._order_json, denied, auth)

    def _get_order(self, order_id: int) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise WPError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        return order

    async def _h_get_order(self, request: web.Request, auth: _Auth, denied: tuple[str, str], id: int) -> web.Response:
        self._require(auth, denied)
        return _wp_json(self._order_json(self._get_order(id)))

    async def _h_put_order(self, request: web.Request, auth: _Auth, denied: tuple[str, str], id: int) -> web.Response:
        body = await self._body(request)
        self._require(auth, denied)
        order = self._orders.get(id)
        if order is None:
            raise WPError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 400)
        if "status" in body:
            status = str(body["status"])
            if status not in ORDER_STATUSES:
                raise _invalid_param("status", f"status is not one of {', '.join(ORDER_STATUSES)}.", "rest_not_in_enum")
            self._change_status(order, status)
        return _wp_json(self._order_json(order))

    async def _h_list_refunds(
        self, request: web.Request, auth: _Auth, denied: tuple[str, str], id: int
    ) -> web.Response:
        order = self._orders.get(id)
        if order is None:
            self._require(auth, denied)
            raise WPError("woocommerce_rest_invalid_order_id", "Invalid order ID.", 404)
        keys = {
            "date": lambda r: r.created,
            "id": lambda r: r.id,
            "modified": lambda r: r.created,
            "title": lambda r: r.created,
            "slug": lambda r: r.id,
            "include": lambda r: r.id,
        }
        return self._page(request, list(order.refunds), keys, self._refund_json, denied, auth)

    # ------------------------------------------------------------------ product routes
    async def _h_list_products(self, request: web.Request, auth: _Auth, denied: tuple[str, str]) -> web.Response:
        sku_raw = self._param(request, "sku")
        type_raw = self._param(request, "type")
        if type_raw and type_raw not in ("simple", "grouped", "external", "variable"):
            raise _invalid_param("type", "type is not one of simple, grouped, external, variable.", "rest_not_in_enum")
        status_raw = self._param(request, "status") or "any"
        include = self._ids_param(request, "include")
        exclude = self._ids_param(request, "exclude") or set()
        search = (self._param(request, "search") or "").casefold()
        modified_after = self._date_param(request, "modified_after")
        modified_before = self._date_param(request, "modified_before")
        self._bool_param(request, "dates_are_gmt")
        skus: set[str] | None = None
        if sku_raw:
            parts = [s.strip() for s in sku_raw.split(",") if s.strip()]
            skus = {s.casefold() for s in parts}
            if len(parts) > 1:
                skus.add(sku_raw.casefold())  # "Include the current string as a SKU too."
        base = self._base(request)

        def keep(p: _Product) -> bool:
            if p.type == "variation" and skus is None:
                return False  # post_type product only, unless filtering by SKU
            if skus is not None and p.sku.casefold() not in skus:
                return False
            if type_raw and p.type != type_raw:
                return False
            if status_raw != "any" and p.status != status_raw:
                return False
            if include is not None and p.id not in include:
                return False
            if p.id in exclude:
                return False
            if search and search not in p.name.casefold() and search not in p.sku.casefold():
                return False
            if modified_after is not None and not p.modified > modified_after:
                return False
            return modified_before is None or p.modified < modified_before

        rows = [p for p in self._products.values() if keep(p)]
        keys = {
            "date": lambda p: p.created,
            "id": lambda p: p.id,
            "modified": lambda p: p.modified,
            "title": lambda p: p.name,
            "slug": lambda p: p.name.lower(),
            "include": lambda p: p.id,
        }
        return self._page(request, rows, keys, lambda p: self._product_json(p, base), denied, auth)

    async def _h_get_product(self, request: web.Request, auth: _Auth, denied: tuple[str, str], id: int) -> web.Response:
        self._require(auth, denied)
        product = self._products.get(id)
        if product is None:
            raise WPError("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        return _wp_json(self._product_json(product, self._base(request)))

    async def _h_list_variations(
        self, request: web.Request, auth: _Auth, denied: tuple[str, str], parent: int
    ) -> web.Response:
        sku_raw = self._param(request, "sku")
        base = self._base(request)
        rows = [p for p in self._products.values() if p.type == "variation" and p.parent_id == parent]
        if sku_raw:
            rows = [p for p in rows if p.sku.casefold() == sku_raw.casefold()]
        keys = {
            "date": lambda p: p.created,
            "id": lambda p: p.id,
            "modified": lambda p: p.modified,
            "title": lambda p: p.name,
            "slug": lambda p: p.name.lower(),
            "include": lambda p: p.id,
        }
        return self._page(request, rows, keys, lambda p: self._variation_json(p, base), denied, auth)

    async def _h_get_variation(
        self, request: web.Request, auth: _Auth, denied: tuple[str, str], parent: int, id: int
    ) -> web.Response:
        self._require(auth, denied)
        variation = self._products.get(id)
        if variation is None or variation.type != "variation" or variation.parent_id != parent:
            raise WPError("woocommerce_rest_product_variation_invalid_id", "Invalid ID.", 404)
        return _wp_json(self._variation_json(variation, self._base(request)))

    async def _h_put_product(self, request: web.Request, auth: _Auth, denied: tuple[str, str], id: int) -> web.Response:
        body = await self._body(request)
        self._require(auth, denied)
        body["id"] = id
        return _wp_json(self._update_item(body, None, self._base(request)))

    async def _h_put_variation(
        self, request: web.Request, auth: _Auth, denied: tuple[str, str], parent: int, id: int
    ) -> web.Response:
        body = await self._body(request)
        self._require(auth, denied)
        body["id"] = id
        variation = self._products.get(id)
        if variation is not None and variation.type == "variation" and variation.parent_id != parent:
            # update_item_permissions_check; rest_authorization_required_code() is 403 when logged in
            raise WPError("woocommerce_rest_cannot_edit", "Parent product does not match current variation.", 403)
        return _wp_json(self._update_item(body, parent, self._base(request)))

    async def _h_products_batch(self, request: web.Request, auth: _Auth, denied: tuple[str, str]) -> web.Response:
        return await self._batch(request, auth, denied, None)

    async def _h_variations_batch(
        self, request: web.Request, auth: _Auth, denied: tuple[str, str], parent: int
    ) -> web.Response:
        return await self._batch(request, auth, denied, parent)

    async def _batch(
        self, request: web.Request, auth: _Auth, denied: tuple[str, str], parent: int | None
    ) -> web.Response:
        body = await self._body(request)
        for key in ("create", "update", "delete"):
            if key in body and not isinstance(body[key], list):
                raise _invalid_param(key, f"{key} is not of type array.", "rest_invalid_type")
        self._require(auth, denied)
        total = sum(len(body.get(key) or []) for key in ("create", "update", "delete"))
        if total > self.batch_limit:  # check_batch_limit
            raise WPError(
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {self.batch_limit} items for this request.",
                413,
            )
        base = self._base(request)
        answer: dict[str, list[Any]] = {}
        if "create" in body:
            answer["create"] = [
                self._inline(partial(self._create_item, item, parent, base), item) for item in body["create"]
            ]
        if "update" in body:
            answer["update"] = [
                self._inline(partial(self._update_item, item, parent, base), item) for item in body["update"]
            ]
        if "delete" in body:
            answer["delete"] = [
                self._inline(partial(self._delete_item, item, parent, base), {"id": item}) for item in body["delete"]
            ]
        return _wp_json(self._render_json("batch", answer))

    @staticmethod
    def _inline(run: Callable[[], dict[str, Any]], item: Any) -> dict[str, Any]:
        try:
            return run()
        except WPError as exc:
            item_id = item.get("id", 0) if isinstance(item, dict) else 0
            return {
                "id": item_id,
                "error": {"code": exc.code, "message": exc.message, "data": {"status": exc.status, **exc.data}},
            }

    def _target(self, item_id: Any, parent: int | None) -> _Product:
        """The product an update or delete names, checked against the endpoint it came to."""
        code = (
            "woocommerce_rest_product_invalid_id" if parent is None else "woocommerce_rest_product_variation_invalid_id"
        )
        product = self._products.get(_php_intval(item_id)) if item_id is not None else None
        if product is None:
            raise WPError(code, "Invalid ID.", 400)
        if parent is None and product.type == "variation":
            raise WPError(code, "Invalid ID.", 400)  # variations go to products/{parent}/variations/batch
        if parent is not None and (product.type != "variation" or product.parent_id != parent):
            raise WPError(code, "Invalid ID.", 400)
        return product

    def _render(self, product: _Product, base: str) -> dict[str, Any]:
        if product.type == "variation":
            return self._variation_json(product, base)
        return self._product_json(product, base)

    def _apply(self, product: _Product, item: dict[str, Any]) -> None:
        """prepare_object_for_database, the parts this emulator models."""
        if "sku" in item:
            sku = str(item["sku"] or "")
            self._check_unique_sku(sku, exclude=product.id)
            product.sku = sku
        if "name" in item and product.type != "variation":
            product.name = str(item["name"])
        if "regular_price" in item:
            product.price = str(item["regular_price"])
        if "status" in item:
            product.status = str(item["status"])
        if "backorders" in item and item["backorders"] in ("no", "notify", "yes"):
            product.backorders = item["backorders"]
        if "manage_stock" in item:
            product.manage_stock = _php_bool(item["manage_stock"])
        # `if ( $variation->get_manage_stock() )` reads the view context: a variation whose parent
        # keeps the stock answers "parent", so a stock_quantity sent to it is stored on the
        # variation itself and stays hidden behind the parent's (200, the parent's quantity shown).
        if self._view_manage(product):
            if "stock_quantity" in item and item["stock_quantity"] is not None:
                product.stock_quantity = _php_intval(item["stock_quantity"])
            elif "inventory_delta" in item:
                product.stock_quantity = (product.stock_quantity or 0) + _php_intval(item["inventory_delta"])
            elif product.stock_quantity is None:
                product.stock_quantity = 0
        else:
            product.stock_quantity = None  # set_stock_quantity( '' ); stock_quantity is ignored
            if "stock_status" in item and item["stock_status"] in ("instock", "outofstock", "onbackorder"):
                product.stock_status = item["stock_status"]
        self._touch_product(product)

    def _update_item(self, item: dict[str, Any], parent: int | None, base: str) -> dict[str, Any]:
        product = self._target(item.get("id"), parent)
        self._apply(product, item)
        return self._render(product, base)

    def _create_item(self, item: dict[str, Any], parent: int | None, base: str) -> dict[str, Any]:
        if parent is not None and (parent not in self._products or self._products[parent].type != "variable"):
            raise WPError("woocommerce_rest_product_variation_invalid_parent", "Invalid parent product ID.", 404)
        sku = str(item.get("sku") or "")
        self._check_unique_sku(sku)
        now = self._now()
        kind = "variation" if parent is not None else str(item.get("type") or "simple")
        if kind not in ("simple", "variable", "variation"):
            kind = "simple"
        product = _Product(
            id=self._next_post_id(),
            name=str(item.get("name") or (f"{self._products[parent].name} - {sku}" if parent else "Product")),
            sku=sku,
            type=kind,
            created=now,
            modified=now,
            parent_id=parent or 0,
            price=str(item.get("regular_price") or "10.00"),
        )
        self._products[product.id] = product
        self._apply(product, item)
        if parent is not None:
            self._products[parent].variations.append(product.id)
            self._sync_parent(self._products[parent])
        return self._render(product, base)

    def _delete_item(self, item_id: Any, parent: int | None, base: str) -> dict[str, Any]:
        product = self._target(item_id, parent)
        rendered = self._render(product, base)
        del self._products[product.id]
        for child in list(product.variations):
            self._products.pop(child, None)
        if product.parent_id and product.parent_id in self._products:
            owner = self._products[product.parent_id]
            owner.variations = [v for v in owner.variations if v != product.id]
            self._sync_parent(owner)
        return rendered


async def serve_forever(emulator: WooCommerceEmulator, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run an emulator until cancelled (for trying a client by hand)."""
    await emulator.start(host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
