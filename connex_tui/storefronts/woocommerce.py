"""WooCommerce REST API v3 client (``/wp-json/wc/v3/``), implementing `storefronts.base.Storefront`.

Address: the store's address ("https://shop.example.com", or a WordPress in a folder,
"https://example.com/shop"); ``/wp-json/wc/v3`` is added unless the address already ends in it.

Authentication
--------------
* https: HTTP Basic, consumer key as user name and consumer secret as password. Some hosts (Apache
  with PHP as CGI) drop the Authorization header, and WooCommerce then answers 401
  ``woocommerce_rest_cannot_view``; the client then switches, once, to WooCommerce's documented
  fallback: ``consumer_key``/``consumer_secret`` in the query string (over https only).
* http: OAuth 1.0a one-legged, HMAC-SHA1, as query parameters, signed the way WooCommerce checks
  them. Every attempt, retries included, gets a fresh nonce and timestamp (WooCommerce refuses a
  nonce twice and a timestamp more than 15 minutes off): the signing is an aiohttp client
  middleware (`WooCommerceClient._signing`), run for each request that goes out.
* `auth="basic" | "query" | "oauth"` forces one (tests, proxies that terminate TLS).
* Neither the secret nor a signed URL ever reaches an exception message: errors name the method
  and the path only, and anything quoted from elsewhere is scrubbed of URLs' query strings and of
  the key and secret. Redirects are not followed (a signed URL must not be sent elsewhere; an
  http -> https redirect is reported with the address to use instead).

Reading
-------
* `list_orders`: ``GET orders?status=any&orderby=id&order=asc&per_page=100&page=N`` and, when a
  time is given, ``modified_after=<that second - 1 s>&dates_are_gmt=true``: WooCommerce's date
  filters are exclusive and to the second, so the client asks from one second earlier and keeps
  the orders modified at or after the floor of `modified_since` itself. Pages are counted from
  ``X-WP-TotalPages`` (page 1 first, then the rest in parallel, bounded); when a proxy strips
  that header the client reads on until a short page. Orders are deduplicated by id (paging an
  offset list that changes underneath can repeat one). ``Link`` is not followed: WooCommerce
  echoes the request's query (oauth_* included) in it.
* For an order whose ``refunds`` is not empty, ``GET orders/{id}/refunds`` (paginated too).
  Restocks are read where WooCommerce keeps them (see `woo_parse`): the running total
  ``_restock_refunded_items`` in the order's own ``line_items[].meta_data``, shared out over the
  refunds of that line (tied by their lines' ``_refunded_item_id``); a cancelled order whose
  line lost its ``_reduced_stock`` meta had the rest put back, reported as the refund "cancel".
  Only restocked units become `StoreRefund.lines` (positive quantities, the order line's price).
* A line item's ``sku`` is null in WooCommerce when its product was deleted; it becomes "".
* Numbers are checked (`woo_parse`): NaN, Infinity, fractions or words where WooCommerce has a
  count, absurd sizes give that order a `problem` (or that catalog entry one), never fail the
  page; an order without a usable id is left out.
* `catalog`: ``GET products`` (all pages, per_page 100, orderby id) and, for each variable
  product with variations, ``GET products/{id}/variations`` (all pages), in parallel, bounded.
  Variations get ``parent_id``. ``manage_stock: "parent"`` (the parent keeps the stock): the
  entry is the parent itself, so a push sets the parent's stock and never gives the variation a
  stock of its own; a variation showing its parent's SKU (it has none) is then left out. One
  that shows its parent's SKU but keeps its own stock claims that SKU as well (the engine then
  finds it on several products and pushes to none). Entries without a SKU are skipped.

Writing
-------
* `set_stock`: at most `batch_limit` (100) updates, else ValueError. Simple products go in one
  ``POST products/batch``, each parent's variations in one ``POST products/{parent}/variations/batch``,
  all as ``{"update": [{"id", "manage_stock": true, "stock_quantity"}]}`` (absolute, so a retry
  cannot apply twice), the requests in parallel (bounded). One `StockResult` per update, in order:
  ``before`` is the catalog's quantity, ``after`` the answer's ``stock_quantity``. An inline item
  error, or an answer whose stock is not what was asked, fails that SKU alone (permanent for 4xx
  codes such as ``woocommerce_rest_product_invalid_id``); a request that ran out of retries fails
  its SKUs for now (not permanent); a 413 or another 4xx on the whole request fails its SKUs
  permanently; `CredentialsError` propagates.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import ssl as ssl_module
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from . import woo_parse
from .base import (
    CatalogEntry,
    CredentialsError,
    RequestStats,
    StockResult,
    StockUpdate,
    StorefrontError,
    StoreOrder,
    StoreUnavailable,
    as_utc,
)
from .limiter import StoreGate
from .retry import HTTPResult, RetryPolicy, request_with_retry

API_PATH = "/wp-json/wc/v3"
PER_PAGE = 100
PERMANENT_CODES = frozenset(
    {
        "woocommerce_rest_product_invalid_id",
        "woocommerce_rest_product_variation_invalid_id",
        "woocommerce_rest_invalid_product_id",
        "product_invalid_sku",
        "woocommerce_rest_product_invalid_sku",
        "woocommerce_rest_cannot_edit",
        "rest_invalid_param",
    }
)


class WooCommerceError(StorefrontError):
    """The store answered with an error that retrying does not fix (4xx other than 401/403/429)."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def rfc3986(value: str) -> str:
    return quote(value, safe="~")


def oauth_signature(
    method: str, base_url: str, params: Iterable[tuple[str, str]], secret: str, algorithm: str = "HMAC-SHA1"
) -> str:
    """OAuth 1.0a HMAC signature over `params` (without oauth_signature), key ``secret&``."""
    encoded = sorted((rfc3986(k), rfc3986(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in encoded)
    text = "&".join((method.upper(), rfc3986(base_url), rfc3986(normalized)))
    digest = hashlib.sha256 if algorithm == "HMAC-SHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(f"{secret}&".encode(), text.encode(), digest).digest()).decode()


def _normalized_base(url: str) -> str:
    """scheme://host[:port]/path as OAuth signs it: lower-case scheme and host, no default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def _plain(text: Any, limit: int = 300) -> str:
    """A server message as plain words: no HTML tags, one line, bounded."""
    words = re.sub(r"<[^>]*>", " ", str(text or ""))
    words = re.sub(r"\s+", " ", words).strip()
    return words if len(words) <= limit else words[: limit - 1] + "…"


class _Probe:
    """What the last 401/403 said (its JSON), so the credentials error can say why."""

    def __init__(self) -> None:
        self.body: bytes | None = None


class WooCommerceClient:
    platform = "woocommerce"
    batch_limit = 100

    def __init__(
        self,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        session: aiohttp.ClientSession | None = None,
        policy: RetryPolicy = RetryPolicy(),
        concurrency: int = 8,
        ssl: ssl_module.SSLContext | bool | None = None,
        auth: str | None = None,
        gate: StoreGate | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` counts elapsed seconds (the adaptive limit's round trips), `wall_clock` gives
        Unix time (OAuth timestamps); the engine passes its own clock's two faces."""
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("the store address must start with https:// (or http://) and name the store")
        path = parts.path.rstrip("/")
        if path.endswith("/wp-json"):
            path += "/wc/v3"
        elif not path.endswith(API_PATH):
            path += API_PATH
        self._api = urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))
        self.store_url = urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))
        self._https = parts.scheme.lower() == "https"
        if auth is None:
            auth = "basic" if self._https else "oauth"
        if auth not in ("basic", "query", "oauth"):
            raise ValueError("auth must be 'basic', 'query' or 'oauth'")
        if auth == "query" and not self._https:
            raise ValueError("WooCommerce accepts keys in the query string over https only")
        self._auth = auth
        self._auto_fallback = auth == "basic" and self._https
        self._key = consumer_key
        self._secret = consumer_secret
        self._session = session
        self._own_session = session is None
        self.policy = policy
        # Every request, reads and stock batches alike, takes a slot of one adaptive limit
        # (storefronts.limiter): `concurrency` is the most it may grow to.
        self.gate = gate or StoreGate(maximum=max(1, concurrency), clock=clock)
        self._wall_clock = wall_clock
        self._ssl = ssl
        self.stats = RequestStats()

    def __repr__(self) -> str:
        return f"WooCommerceClient({self.store_url!r})"

    # ------------------------------------------------------------------ plumbing
    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None if self._own_session else self._session

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    def _signing(self, url: str, probe: _Probe) -> aiohttp.ClientMiddlewareType:
        """An aiohttp client middleware for one call to `url`: every attempt that goes out (each
        retry of `request_with_retry`, and aiohttp's own resend over a dropped kept-alive
        connection) is authorized afresh by `_authorize` (a new OAuth nonce and timestamp), and
        the body of a 401/403 is kept in `probe` for the credentials error."""

        async def sign(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
            signed_url, headers = self._authorize(request.method, url)
            request.url = URL(signed_url)
            request.headers.update(headers)
            response = await handler(request)
            if response.status in (401, 403):
                try:
                    probe.body = await response.read()  # kept by the response: the caller reads it again
                except BaseException:
                    response.close()  # the caller never gets it to release
                    raise
            return response

        return sign

    def _authorize(self, method: str, url: str) -> tuple[str, dict[str, str]]:
        """The URL to send and the headers to add, for one attempt."""
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        if self._auth == "basic":
            token = base64.b64encode(f"{self._key}:{self._secret}".encode()).decode()
            return self._url(parts, params), {"Authorization": f"Basic {token}"}
        if self._auth == "query":
            params += [("consumer_key", self._key), ("consumer_secret", self._secret)]
            return self._url(parts, params), {}
        oauth = [
            ("oauth_consumer_key", self._key),
            ("oauth_nonce", secrets.token_hex(16)),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", str(int(self._wall_clock()))),
        ]
        signature = oauth_signature(method, _normalized_base(url), params + oauth, self._secret)
        return self._url(parts, params + oauth + [("oauth_signature", signature)]), {}

    @staticmethod
    def _url(parts: SplitResult, params: list[tuple[str, str]]) -> str:
        query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in params)
        return str(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")))

    def _scrub(self, text: str) -> str:
        text = re.sub(r"(https?://[^\s?'\"<>]*)\?[^\s'\"<>\]]*", r"\1", text)
        for secret in (self._secret, self._key):
            if secret:
                text = text.replace(secret, "***")
                text = text.replace(rfc3986(secret), "***")
        return text

    def _credentials_message(self, what: str, probe: _Probe) -> str:
        code, message = "", ""
        if probe.body:
            try:
                data = json.loads(probe.body.decode("utf-8-sig"))
                code, message = str(data.get("code", "")), _plain(data.get("message", ""))
            except (ValueError, AttributeError):
                pass
        lowered = message.lower()
        if "consumer key is invalid" in lowered:
            hint = "the store does not know this consumer key"
        elif "signature" in lowered or "consumer secret is invalid" in lowered:
            hint = "the consumer secret does not match the consumer key"
        elif "timestamp" in lowered:
            hint = "this computer's clock is more than 15 minutes off the store's; fix the clock"
        elif "write permissions" in lowered or "read permissions" in lowered:
            kind = "read-only" if "write permissions" in lowered else "write-only"
            hint = f"the key is {kind}: give it Read/Write permissions in WooCommerce > Settings > Advanced > REST API"
        elif code.startswith("woocommerce_rest_cannot"):
            hint = "the store did not accept the key (it may have been revoked, or belongs to a user without rights)"
        else:
            hint = ""
        said = f" ({message})" if message else ""
        text = f"{what}: WooCommerce refused our credentials{said}"
        if hint:
            text += f"; {hint}"
        return self._scrub(text + "; check your credentials")

    async def _call(
        self, method: str, path: str, params: Sequence[tuple[str, str]] = (), body: Any = None
    ) -> tuple[HTTPResult, Any]:
        """One API call with retries; the decoded JSON, or a StorefrontError in plain words."""
        what = f"WooCommerce {method} /{path}"
        url = f"{self._api}/{path}"
        if params:
            url += "?" + "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in params)
        kwargs: dict[str, Any] = {"allow_redirects": False}
        if body is not None:
            kwargs["json"] = body
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
        nonce_retry = True
        while True:
            probe = _Probe()
            session = self._get_session()
            # Middlewares given with a request replace the session's (aiohttp ClientSession._request),
            # so a handed-in session's own run too, after the signing: they see the signed request.
            middlewares = (self._signing(url, probe), *getattr(session, "_middlewares", ()))
            try:
                result = await request_with_retry(
                    session,
                    method,
                    url,
                    what=what,
                    policy=self.policy,
                    stats=self.stats,
                    gate=self.gate,
                    middlewares=middlewares,
                    **kwargs,
                )
            except CredentialsError:
                if nonce_retry and self._auth == "oauth" and b"nonce has already been used" in (probe.body or b""):
                    # Not a credentials problem: the same signed request reached the store twice
                    # (resent by something between us and the store; aiohttp's own resend over a
                    # dropped kept-alive connection is signed afresh by `_signing`). Go again, once.
                    nonce_retry = False
                    continue
                if self._auto_fallback and self._auth == "basic" and self._cannot_view(probe):
                    # Not logged in at all: the host likely dropped the Authorization header.
                    # WooCommerce's documented fallback, tried once per client.
                    self._auth = "query"
                    self._auto_fallback = False
                    continue
                raise CredentialsError(self._credentials_message(what, probe)) from None
            except StoreUnavailable as exc:
                raise StoreUnavailable(self._scrub(str(exc)), exc.retry_after) from None
            except (aiohttp.ClientError, ValueError) as exc:
                raise StorefrontError(f"{what}: the request could not be sent ({type(exc).__name__})") from None
            return result, self._decode(what, result)

    @staticmethod
    def _cannot_view(probe: _Probe) -> bool:
        try:
            data = json.loads((probe.body or b"").decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(data, dict) and str(data.get("code", "")).startswith("woocommerce_rest_cannot_")

    def _decode(self, what: str, result: HTTPResult) -> Any:
        status = result.status
        if 300 <= status < 400:
            location = self._scrub(result.headers.get("Location", ""))
            target = urlsplit(location)
            if target.scheme == "https" and not self._https:
                raise WooCommerceError(
                    f"{what}: the store redirects to https; set the store address to "
                    f"https://{target.netloc}{target.path.split(API_PATH)[0]}",
                    status,
                )
            raise WooCommerceError(
                f"{what}: the store answered with a redirect (HTTP {status}) to {location or 'another address'}; "
                "check the store address",
                status,
            )
        data = self._json(result.body)
        if status >= 400:
            code, message = "", ""
            if isinstance(data, dict):
                code, message = str(data.get("code", "")), _plain(data.get("message", ""))
            if status == 404 and (code in ("", "rest_no_route")):
                raise WooCommerceError(
                    f"{what}: the WooCommerce REST API was not found at {self._scrub(self.store_url)} (HTTP 404"
                    f"{' ' + code if code else ''}); check the store address, that WooCommerce is active and "
                    "that WordPress permalinks are not set to Plain",
                    status,
                    code,
                )
            detail = f"{code}: {message}" if code else (message or "no explanation")
            raise WooCommerceError(
                self._scrub(f"{what}: the store refused the request (HTTP {status} {detail})"), status, code
            )
        if data is _NOT_JSON:
            kind = result.headers.get("Content-Type", "unknown content").split(";")[0]
            raise StorefrontError(
                f"{what}: the store answered with something that is not WooCommerce JSON ({kind}); a security or "
                "caching plugin may be in the way"
            )
        return data

    @staticmethod
    def _json(body: bytes) -> Any:
        text = body.decode("utf-8-sig", errors="replace").strip()
        if not text:
            return _NOT_JSON
        try:
            return json.loads(text, **woo_parse.JSON_HOOKS)  # NaN and the like fail their item, later
        except ValueError:
            pass
        # PHP notices printed before the JSON are a classic on WordPress sites.
        starts = [i for i in (text.find("{"), text.find("[")) if i > 0]
        for start in sorted(starts):
            try:
                return json.loads(text[start:], **woo_parse.JSON_HOOKS)
            except ValueError:
                continue
        return _NOT_JSON

    async def _all_pages(
        self,
        path: str,
        params: Sequence[tuple[str, str]],
        keep: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row,
    ) -> list[dict[str, Any]]:
        """Every row of a paginated list. `keep` trims each row as its page arrives, so a catalog of
        100,000 products is never held as 100,000 full product documents (nor their raw bodies)."""
        base = [*params, ("per_page", str(PER_PAGE))]

        async def page(number: int) -> tuple[str | None, list[dict[str, Any]]]:
            result, rows = await self._page(path, base, number)
            return result.headers.get("X-WP-TotalPages"), [keep(row) for row in rows]

        total_pages, rows = await page(1)
        if total_pages is not None and total_pages.strip().isdigit():
            for _, more in await asyncio.gather(*(page(n) for n in range(2, int(total_pages) + 1))):
                rows.extend(more)
            return rows
        number, last = 1, rows  # no pagination headers (stripped by a proxy): read until a short page
        while len(last) >= PER_PAGE:
            number += 1
            _, last = await page(number)
            rows.extend(last)
        return rows

    async def _page(self, path: str, params: Sequence[tuple[str, str]], page: int) -> tuple[HTTPResult, list[Any]]:
        result, data = await self._call("GET", path, [*params, ("page", str(page))])
        if not isinstance(data, list):
            raise StorefrontError(f"WooCommerce GET /{path}: the store answered with something other than a list")
        return result, [row for row in data if isinstance(row, dict)]

    # ------------------------------------------------------------------ orders
    async def list_orders(self, modified_since: datetime | None) -> list[StoreOrder]:
        params = [("status", "any"), ("orderby", "id"), ("order", "asc")]
        floor: datetime | None = None
        if modified_since is not None:
            floor = as_utc(modified_since).replace(microsecond=0)
            after = (floor - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
            params += [("modified_after", after), ("dates_are_gmt", "true")]
        rows = await self._all_pages("orders", params)
        newest: dict[Any, dict[str, Any]] = {}
        for row in rows:
            key = row.get("id")
            seen = newest.get(key)
            if seen is None or str(row.get("date_modified_gmt") or "") >= str(seen.get("date_modified_gmt") or ""):
                newest[key] = row
        orders = list(newest.values())
        if floor is not None:
            orders = [o for o in orders if (woo_parse.parse_gmt(o.get("date_modified_gmt")) or floor) >= floor]
        orders = [o for o in orders if _has_id(o)]  # an order without an id cannot be kept
        refunds = await asyncio.gather(*(self._refunds(o) for o in orders))
        return [woo_parse.order(o, r) for o, r in zip(orders, refunds)]

    async def _refunds(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        if not order.get("refunds"):
            return []
        return await self._all_pages(f"orders/{order['id']}/refunds", [])

    # ------------------------------------------------------------------ catalog
    async def catalog(self) -> list[CatalogEntry]:
        keep = woo_parse.catalog_fields
        products = await self._all_pages("products", [("orderby", "id"), ("order", "asc")], keep=keep)
        # A variable product lists its variation ids; fetch only those that have some (or when the
        # field is missing altogether). A parent whose id is unusable cannot be asked.
        variable = [
            p
            for p in products
            if p.get("type") == "variable" and ("variations" not in p or p["variations"]) and _has_id(p)
        ]
        by_id = [("orderby", "id"), ("order", "asc")]
        variations = await asyncio.gather(
            *(self._all_pages(f"products/{p['id']}/variations", by_id, keep=keep) for p in variable)
        )
        entries = [woo_parse.product_entry(p) for p in products]
        for parent, rows in zip(variable, variations):
            entries.extend(woo_parse.variation_entry(v, parent) for v in rows)
        return [e for e in entries if e is not None]

    # ------------------------------------------------------------------ stock
    async def set_stock(self, updates: Sequence[StockUpdate]) -> list[StockResult]:
        if len(updates) > self.batch_limit:
            raise ValueError(f"at most {self.batch_limit} stock updates per call, got {len(updates)}")
        results: list[StockResult | None] = [None] * len(updates)
        groups: dict[str | None, list[int]] = {}
        for index, update in enumerate(updates):
            entry = update.entry
            if not str(entry.item_id).isdigit() or (entry.parent_id and not str(entry.parent_id).isdigit()):
                results[index] = StockResult(
                    update.sku,
                    ok=False,
                    before=entry.quantity,
                    permanent=True,
                    reason=f"{update.sku} has no WooCommerce product id; refresh the catalog",
                )
                continue
            groups.setdefault(entry.parent_id or None, []).append(index)
        outcomes = await asyncio.gather(
            *(self._push(parent, indexes, updates, results) for parent, indexes in groups.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, CredentialsError):
                raise outcome
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [
            r
            if r is not None
            else StockResult(u.sku, ok=False, before=u.entry.quantity, reason="no answer from WooCommerce for this SKU")
            for r, u in zip(results, updates)
        ]

    async def _push(
        self, parent: str | None, indexes: list[int], updates: Sequence[StockUpdate], results: list[StockResult | None]
    ) -> None:
        path = "products/batch" if parent is None else f"products/{parent}/variations/batch"
        body = {
            "update": [
                {"id": int(updates[i].entry.item_id), "manage_stock": True, "stock_quantity": int(updates[i].quantity)}
                for i in indexes
            ]
        }

        def fail_all(reason: str, permanent: bool) -> None:
            for i in indexes:
                results[i] = StockResult(
                    updates[i].sku, ok=False, before=updates[i].entry.quantity, reason=reason, permanent=permanent
                )

        try:
            _, data = await self._call("POST", path, body=body)
        except CredentialsError:
            raise
        except StoreUnavailable as exc:
            fail_all(f"{exc}; will try again", permanent=False)
            return
        except WooCommerceError as exc:
            if exc.status == 413:
                fail_all(f"{exc} (the batch was larger than this store accepts)", permanent=True)
            else:
                fail_all(str(exc), permanent=400 <= exc.status < 500)
            return
        except StorefrontError as exc:
            fail_all(str(exc), permanent=False)
            return
        answers = data.get("update") if isinstance(data, dict) else None
        if not isinstance(answers, list):
            fail_all(f"WooCommerce POST /{path}: the answer had no 'update' list", permanent=False)
            return
        for position, i in enumerate(indexes):
            results[i] = self._result(updates[i], self._answer_for(answers, position, int(updates[i].entry.item_id)))

    @staticmethod
    def _answer_for(answers: list[Any], position: int, item_id: int) -> dict[str, Any] | None:
        def same(answer: Any) -> bool:
            return isinstance(answer, dict) and str(answer.get("id")) == str(item_id)

        candidates = [answers[position]] if position < len(answers) else []
        found = next((a for a in [*candidates, *answers] if same(a)), None)
        return found if isinstance(found, dict) else None

    @staticmethod
    def _result(update: StockUpdate, answer: dict[str, Any] | None) -> StockResult:
        sku, before = update.sku, update.entry.quantity
        if answer is None:
            return StockResult(
                sku, ok=False, before=before, reason="WooCommerce did not answer for this SKU in the batch"
            )
        error = answer.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            message = _plain(error.get("message"))
            raw_data = error.get("data")
            data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
            status = data.get("status") if isinstance(data.get("status"), int) else None
            permanent = code in PERMANENT_CODES or (status is not None and 400 <= status < 500)
            if code.endswith("_invalid_id"):
                reason = (
                    f"WooCommerce has no product or variation with id {update.entry.item_id} for {sku} "
                    f"(deleted, or moved to another product); refresh the catalog [{code}: {message}]"
                )
            elif "sku" in code:
                reason = f"WooCommerce refused the SKU {sku} [{code}: {message}]"
            else:
                reason = f"WooCommerce refused the stock update for {sku} [{code or 'error'}: {message}]"
            return StockResult(sku, ok=False, before=before, reason=reason, permanent=permanent)
        after = answer.get("stock_quantity")
        try:
            after_int = (
                None if after is None else woo_parse.count(after, "stock_quantity", minimum=-woo_parse.MAX_UNITS)
            )
        except woo_parse.BadValue as exc:
            return StockResult(sku, ok=False, before=before, reason=f"WooCommerce answered for {sku}: {exc}")
        if after_int != update.quantity:
            return StockResult(
                sku,
                ok=False,
                before=before,
                after=after_int,
                permanent=True,
                reason=(
                    f"WooCommerce kept the stock of {sku} at {after_int if after_int is not None else 'untracked'} "
                    f"instead of {update.quantity}"
                ),
            )
        return StockResult(sku, ok=True, before=before, after=after_int)


_NOT_JSON = object()


def _has_id(row: dict[str, Any]) -> bool:
    try:
        woo_parse.identifier(row.get("id"), "id")
    except woo_parse.BadValue:
        return False
    return True
