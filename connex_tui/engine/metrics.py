"""`GET /metrics` in the Prometheus text format (version 0.0.4), on its own small aiohttp site.

Off unless `[metrics] port` is set; it listens on 127.0.0.1 unless `[metrics] host` says otherwise
(the numbers say how busy a merchant is; they are nobody else's business).

Counters that only the running process sees (sessions, orders, pushes) come from engine events;
what the database knows (the queue, orders by state) is read at scrape time, so a scrape after a
restart still shows the queue; the store's request counts and round-trip histogram come from the
storefront client's `RequestStats`. Hand-written rather than `prometheus_client`: a dozen series,
no global registry to reset between engines in one test process, one dependency fewer.

Format reference: https://prometheus.io/docs/instrumenting/exposition_formats/ (text format:
`# HELP`, `# TYPE`, label values escaped `\\`, `"` and newline; histogram `_bucket{le}`
cumulative with `+Inf`, `_sum`, `_count`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from ..storefronts.base import RoundTrips, Storefront
from .auth_throttle import AuthThrottle
from .admin_commands import PAUSE_KEY
from .clock import parse_stamp_or_none
from .db import Database
from .events import Event, OrderFailed, OrderPosted, SessionEnded, StockPushed
from .pusher import OUTAGE_KEY

log = structlog.get_logger("connex.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "connex_"

Labels = Mapping[str, str]
Sample = tuple[str, Labels, float]  # (name suffix, labels, value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


@dataclass
class MetricFamily:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, labels: Labels | None = None, suffix: str = "") -> None:
        self.samples.append((suffix, dict(labels or {}), value))

    def render(self) -> str:
        full = PREFIX + self.name
        lines = [f"# HELP {full} {_escape_help(self.help)}", f"# TYPE {full} {self.kind}"]
        lines += [f"{full}{suffix}{_labels(labels)} {_number(value)}" for suffix, labels, value in self.samples]
        return "\n".join(lines)


def render(families: Iterable[MetricFamily]) -> str:
    return "\n".join(family.render() for family in families) + "\n"


def histogram(name: str, help_text: str, trips: RoundTrips, labels: Labels) -> MetricFamily:
    family = MetricFamily(name, "histogram", help_text)
    for bound, count in trips.cumulative():
        family.add(count, {**labels, "le": _number(bound)}, "_bucket")
    family.add(trips.total_seconds, labels, "_sum")
    family.add(trips.count, labels, "_count")
    return family


class EngineCounters:
    """Counts engine events since this process started (Prometheus handles the restarts)."""

    def __init__(self) -> None:
        self.sessions: dict[str, int] = {}
        self.orders_posted = 0
        self.orders_failed = 0
        self.pushes = 0
        self.push_failures = 0
        self.push_retries = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, SessionEnded):
            self.sessions[event.result] = self.sessions.get(event.result, 0) + 1
        elif isinstance(event, OrderPosted):
            self.orders_posted += 1
        elif isinstance(event, OrderFailed):
            self.orders_failed += 1
        elif isinstance(event, StockPushed):
            self.pushes += event.pushed
            self.push_failures += event.failed
            self.push_retries += event.retrying


@dataclass
class MetricsSource:
    """Everything a scrape reads; times against the engine's clock (`db.clock`)."""

    db: Database
    counters: EngineCounters
    store: Storefront | None = None
    auth_throttle: AuthThrottle | None = None

    async def families(self) -> list[MetricFamily]:
        families = self._event_counters()
        families += await self._database_gauges()
        families += self._store_metrics()
        if self.auth_throttle is not None:
            locked = MetricFamily(
                "qbwc_login_locked_addresses", "gauge", "User and address pairs whose wrong logins are slowed down"
            )
            locked.add(self.auth_throttle.locked_addresses())
            families.append(locked)
        return families

    def _event_counters(self) -> list[MetricFamily]:
        c = self.counters
        sessions = MetricFamily("qbwc_sessions_total", "counter", "Web Connector sessions ended, by result")
        for result in sorted(c.sessions):
            sessions.add(c.sessions[result], {"result": result})
        if not c.sessions:
            sessions.add(0, {"result": "ok"})
        posted = MetricFamily("orders_posted_total", "counter", "Store orders posted to QuickBooks")
        posted.add(c.orders_posted)
        failed = MetricFamily("orders_failed_total", "counter", "Store orders QuickBooks refused")
        failed.add(c.orders_failed)
        pushes = MetricFamily("stock_pushes_total", "counter", "Stock updates the store accepted")
        pushes.add(c.pushes)
        push_failures = MetricFamily("stock_push_failures_total", "counter", "Stock updates that failed for good")
        push_failures.add(c.push_failures)
        retries = MetricFamily("stock_push_retries_total", "counter", "Stock updates put back to retry")
        retries.add(c.push_retries)
        return [sessions, posted, failed, pushes, push_failures, retries]

    async def _database_gauges(self) -> list[MetricFamily]:
        depth = MetricFamily("pending_queue_depth", "gauge", "SKUs waiting to be pushed to the store, by state")
        by_state = {"pending": 0, "in_flight": 0, "failed": 0}
        for row in await self.db.fetchall("SELECT state, COUNT(*) FROM pending GROUP BY state"):
            by_state[str(row[0])] = int(row[1])
        for state, count in by_state.items():
            depth.add(count, {"state": state})
        oldest = MetricFamily(
            "pending_oldest_age_seconds", "gauge", "Age of the oldest SKU still waiting for the store (0: none)"
        )
        first = await self.db.fetchone("SELECT MIN(updated_at) FROM pending WHERE state != 'failed'")
        since = parse_stamp_or_none(first[0]) if first is not None else None
        oldest.add(max(0.0, (self.db.clock.now() - since).total_seconds()) if since else 0.0)
        orders = MetricFamily("orders", "gauge", "Store orders known, by QuickBooks state")
        for row in await self.db.fetchall("SELECT qb_state, COUNT(*) FROM orders GROUP BY qb_state ORDER BY 1"):
            orders.add(int(row[1]), {"qb_state": str(row[0])})
        paused = MetricFamily("pushing_paused", "gauge", "1 while stock pushes are paused from the interface")
        paused.add(1 if await self.db.get_meta(PAUSE_KEY) == "1" else 0)
        outages = MetricFamily(
            "store_outage_streak", "gauge", "Stock batches in a row the store was down for (0: it answers)"
        )
        streak = await self.db.get_meta(OUTAGE_KEY)
        outages.add(int(streak) if streak and streak.isdigit() else 0)
        return [depth, oldest, orders, paused, outages]

    def _store_metrics(self) -> list[MetricFamily]:
        store = self.store
        if store is None:
            return []
        labels = {"platform": store.platform}
        stats = store.stats
        requests = MetricFamily("store_requests_total", "counter", "HTTP requests sent to the store, retries included")
        requests.add(stats.requests, labels)
        retries = MetricFamily("store_retries_total", "counter", "Store requests retried (429, 5xx, timeouts)")
        retries.add(stats.retries, labels)
        throttled = MetricFamily("store_throttled_total", "counter", "Answers in which the store throttled us")
        throttled.add(stats.throttled, labels)
        waited = MetricFamily(
            "store_throttle_wait_seconds_total", "counter", "Seconds spent waiting for the store's rate limits"
        )
        waited.add(stats.waited_seconds, labels)
        trips = histogram(
            "store_round_trip_seconds",
            "Time from sending a request to the store to its full answer",
            stats.round_trips,
            labels,
        )
        return [requests, retries, throttled, waited, trips, *self._cost_bucket(store, labels)]

    @staticmethod
    def _cost_bucket(store: Storefront, labels: Labels) -> list[MetricFamily]:
        """Shopify's leaky bucket as its last answer reported it (throttleStatus), when known."""
        budget = getattr(store, "budget", None)
        if budget is None or not getattr(budget, "known", False):
            return []
        available = MetricFamily(
            "store_cost_points_available", "gauge", "Shopify query cost points left, at its last answer"
        )
        available.add(float(budget.available), labels)
        maximum = MetricFamily("store_cost_points_maximum", "gauge", "Shopify's query cost bucket size")
        maximum.add(float(budget.maximum), labels)
        return [available, maximum]


async def _handler(source: MetricsSource, _request: web.Request) -> web.Response:
    try:
        text = render(await source.families())
    except Exception as exc:  # a scrape must never take the engine down; the log says why
        log.error("metrics_failed", error=type(exc).__name__, detail=str(exc))
        return web.Response(status=500, text="metrics unavailable; see the log\n")
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})


def make_metrics_app(source: MetricsSource) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return await _handler(source, request)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def start_metrics_site(source: MetricsSource, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve /metrics; returns the runner (to clean up) and the bound port (`port` 0: any free)."""
    runner = web.AppRunner(make_metrics_app(source), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    if sockets:
        bound = int(sockets[0].getsockname()[1])
    return runner, bound
