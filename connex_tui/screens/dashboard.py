"""Dashboard: the last Web Connector session, the store, today's orders, the stock queue,
pushes per minute, the store's pace (concurrency, round trip, updates per second), the drain of the
queue, and the latest failures."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Label, ProgressBar, Sparkline, Static

from ..engine.throughput import Throughput
from ..engine.views import Dashboard
from ..textsafe import short
from ..widgets import fmt
from .base import DataScreen

STORE_ROLE = {"ok": "$text-success", "not configured": "dim", "unknown": "dim"}


def _line(label: str, value: str, style: str = "", width: int = 9) -> Content:
    return Content.assemble((label.ljust(width), "dim"), (value, style) if style else value)


def _lines(*lines: Content) -> Content:
    return Content("\n").join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _pace(figures: Throughput | None) -> str:
    """The store's pace in the last drain: requests at once, round trip, updates per second."""
    if figures is None:
        return "store: nothing pushed yet"
    rate = f"{figures.updates_per_second:,.0f} updates/s" if figures.updates_per_second else "– updates/s"
    return (
        f"store: {figures.concurrency} at once (max {figures.maximum}) · round trip p50 "
        f"{_seconds(figures.rtt_p50)}, p95 {_seconds(figures.rtt_p95)} · {rate}"
    )


def _what(what: str, width: int = 18, most: int = 30) -> str:
    """The failure's subject ("SKU redwine", "order 1042") in its column; a longer one is cut at
    `most` characters and still followed by a space before the reason."""
    text = short(what, most)
    return text.ljust(width) if len(text) < width else text + " "


class Panel(Static):
    """A bordered box whose content is replaced only when it changed."""

    def __init__(self, title: str, *, id: str, classes: str = "") -> None:
        super().__init__("", id=id, classes=f"panel {classes}".strip())
        self.border_title = title
        self._shown: Content | None = None

    def show(self, content: Content) -> None:
        if content != self._shown:
            self._shown = content
            self.update(content)


class DashboardScreen(DataScreen):
    MODE = "dashboard"
    TITLE = "Dashboard"
    BINDINGS = DataScreen.BINDINGS + []

    def compose_body(self) -> Iterable[Widget]:
        with Grid(id="dash-top"):
            yield Panel("Web Connector", id="dash-session", classes="nowrap")
            yield Panel("Store", id="dash-store")
            yield Panel("Orders today", id="dash-orders", classes="nowrap")
            yield Panel("Stock queue", id="dash-queue", classes="nowrap")
        with Vertical(id="dash-rate", classes="box") as box:
            box.border_title = "Pushes per minute, last 30 min"
            yield Sparkline([0] * 30, summary_function=max, id="dash-spark")
            yield Label("", id="dash-rate-label")
            yield Label("", id="dash-pace-label")
        with Horizontal(id="dash-drain", classes="box") as drain:
            drain.border_title = "Queue drain"
            yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="dash-progress")
            yield Label("", id="dash-drain-label")
        yield Panel("Latest failures", id="dash-failures")

    async def fetch(self, params: Any) -> Dashboard:
        return await self.backend.dashboard()

    def apply(self, data: Dashboard) -> None:
        now = self.now
        session = data.last_session
        if session is None:
            wc = _lines(Content.from_markup("[dim]no session yet[/]"))
        else:
            result = short(session.result, 30) if session.result else "running"
            role = "$text-success" if result in ("ok", "none") else ("" if result == "running" else "$text-error")
            wc = _lines(
                _line("when", fmt.relative(session.ended or session.started, now), width=7),
                _line("took", fmt.duration(session.seconds) if session.ended else "running", width=7),
                Content(f"{session.requests:,} request{'s' if session.requests != 1 else ''}"),
                _line(
                    "result",
                    result if not session.error else f"{result}: {fmt.one_line(session.error, 200)}",
                    role,
                    width=7,
                ),
            )
        self.query_one("#dash-session", Panel).show(wc)

        store = data.store
        store_role = STORE_ROLE.get(store.state, "$text-error")
        self.query_one("#dash-store", Panel).show(
            _lines(
                _line("state", short(store.state, 30), f"bold {store_role}"),
                Content(fmt.one_line(store.detail, 120)) if store.detail else Content(""),
            )
        )
        self.query_one("#dash-orders", Panel).show(
            _lines(
                _line("imported", fmt.count(data.orders_imported_today)),
                _line(
                    "posted", fmt.count(data.orders_posted_today), "$text-success" if data.orders_posted_today else ""
                ),
                _line("failed", fmt.count(data.orders_failed), "bold $text-error" if data.orders_failed else ""),
            )
        )
        self.query_one("#dash-queue", Panel).show(
            _lines(
                _line("pending", fmt.count(data.pending)),
                _line("sending", fmt.count(data.in_flight)),
                _line("failed", fmt.count(data.failed_skus), "bold $text-error" if data.failed_skus else ""),
                _line(
                    "pushing",
                    "PAUSED" if data.paused else "on",
                    "bold $text-warning" if data.paused else "$text-success",
                ),
            )
        )

        spark = self.query_one("#dash-spark", Sparkline)
        series = list(data.pushes_per_minute) or [0]
        if list(spark.data or []) != series:
            spark.data = series
        rate = f"peak {max(series):,}/min · {sum(series):,} in the last 30 min"
        label = self.query_one("#dash-rate-label", Label)
        if str(label.content) != rate:
            label.update(rate)

        pace = self.query_one("#dash-pace-label", Label)
        pace_text = _pace(data.throughput)
        if str(pace.content) != pace_text:
            pace.update(pace_text)

        bar = self.query_one("#dash-progress", ProgressBar)
        drain_label = self.query_one("#dash-drain-label", Label)
        if data.drain_total:
            bar.display = True
            if bar.total != data.drain_total or bar.progress != data.drain_done:
                bar.update(total=data.drain_total, progress=data.drain_done)
            text = f"{data.drain_done:,} of {data.drain_total:,} pushed"
        else:
            bar.display = False
            text = "queue is empty" if not data.failed_skus else f"nothing waiting ({data.failed_skus:,} failed)"
        if str(drain_label.content) != text:
            drain_label.update(text)

        if data.latest_failures:
            lines = [
                Content.assemble(
                    (fmt.clock_time(failure.at, now).ljust(12), "dim"),
                    (_what(failure.what), "bold"),
                    (fmt.one_line(failure.reason, 200), "$text-error"),
                )
                for failure in data.latest_failures
            ]
            failures = _lines(*lines)
        else:
            failures = Content.from_markup("[$text-success]no failures[/]")
        self.query_one("#dash-failures", Panel).show(failures)
