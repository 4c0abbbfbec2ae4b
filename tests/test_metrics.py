"""`GET /metrics`: a running engine, the store emulators and the Web Connector simulator over real
HTTP, scraped over real HTTP like Prometheus does."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from connex_tui.engine.config import ConfigError
from connex_tui.engine.metrics import MetricFamily, render
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import WebConnectorSim

from .clocks import ManualClock, use_clock
from .conftest import PASSWORD, make_config

# One sample line of the text exposition format: name, optional {labels}, value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')


def parse(text: str) -> dict[str, float]:
    """Every sample as 'name{labels}' -> value; fails on any line the format does not allow."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge", "histogram"), line
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name = match.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no # TYPE line before it"
        samples[name + (match.group(2) or "")] = float(match.group(3))
    return samples


@pytest.fixture
async def world(tmp_path, http: aiohttp.ClientSession) -> AsyncIterator[tuple[Engine, EmulatedStore, WebConnectorSim]]:
    store = EmulatedStore("woocommerce")
    await store.start()
    store.seed({"redwine": 20})
    qb = QuickBooksSim()
    qb.add_item("redwine", 20)
    qb.add_item("qb-only", 3)  # not on the store: one push fails for good
    config = make_config(
        tmp_path,
        storefront=store.storefront_config(),
        orders={"poll_seconds": 3600},
        qbwc={"read_min_interval_seconds": 0},
        metrics={"port": 0},
    )
    engine = Engine(config)
    await engine.start()
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    try:
        yield engine, store, wc
    finally:
        await engine.stop()
        await store.stop()


async def scrape(http: aiohttp.ClientSession, engine: Engine) -> tuple[str, str]:
    async with http.get(f"http://127.0.0.1:{engine.metrics_port}/metrics") as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


async def drain(engine: Engine, seconds: float = 20) -> None:
    assert engine.db is not None and engine.scheduler is not None
    deadline = time.monotonic() + seconds
    while await engine.db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
        assert time.monotonic() < deadline, "the queue did not drain"
        engine.scheduler.wake("inventory")
        await asyncio.sleep(0.05)


async def test_metrics_count_a_whole_sync(world, http: aiohttp.ClientSession) -> None:
    engine, store, wc = world
    assert engine.scheduler is not None
    store.order([("redwine", 5)])
    await engine.scheduler.run_and_wait("orders")
    run = await wc.run_once()
    assert run.status == "ok", run
    await drain(engine)

    content_type, text = await scrape(http, engine)
    assert content_type.startswith("text/plain; version=0.0.4")
    m = parse(text)
    assert m['connex_qbwc_sessions_total{result="ok"}'] == 1
    assert m["connex_orders_posted_total"] == 1
    assert m["connex_orders_failed_total"] == 0
    assert m["connex_stock_pushes_total"] == 1  # redwine: 15
    assert m["connex_stock_push_failures_total"] == 1  # qb-only: not on the store
    assert m['connex_pending_queue_depth{state="failed"}'] == 1
    assert m['connex_pending_queue_depth{state="pending"}'] == 0
    assert m["connex_pending_oldest_age_seconds"] == 0
    assert m['connex_orders{qb_state="posted"}'] == 1
    assert m["connex_pushing_paused"] == 0
    assert m["connex_store_outage_streak"] == 0
    assert "connex_store_cost_points_available" not in text  # WooCommerce has no cost bucket
    assert m["connex_qbwc_login_locked_addresses"] == 0

    # The store's side, from the client that did the work: every answer is one round trip.
    assert engine.store is not None
    requests = m['connex_store_requests_total{platform="woocommerce"}']
    assert requests == engine.store.stats.requests >= 3  # orders, catalog, the stock batch
    assert m['connex_store_throttled_total{platform="woocommerce"}'] == 0
    assert m['connex_store_round_trip_seconds_count{platform="woocommerce"}'] == requests
    buckets = [(key, value) for key, value in m.items() if key.startswith("connex_store_round_trip_seconds_bucket")]
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "histogram buckets must be cumulative"
    assert buckets[-1] == ('connex_store_round_trip_seconds_bucket{platform="woocommerce",le="+Inf"}', requests)
    assert 0 < m['connex_store_round_trip_seconds_sum{platform="woocommerce"}'] < requests * 60


async def test_queue_age_comes_from_the_engine_clock(world, http: aiohttp.ClientSession) -> None:
    engine, _, _ = world
    assert engine.db is not None and engine.sessions is not None
    if engine.scheduler is not None:
        await engine.scheduler.stop()  # nothing may push the row away while we look
        engine.scheduler = None
    queued = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    async with engine.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO pending(sku, quantity, state, next_attempt, updated_at) VALUES ('x', '4', 'pending', ?, ?)",
            (queued.isoformat(), queued.isoformat()),
        )
    use_clock(engine, ManualClock(queued + timedelta(seconds=95)))
    m = parse((await scrape(http, engine))[1])
    assert m["connex_pending_oldest_age_seconds"] == 95
    assert m['connex_pending_queue_depth{state="pending"}'] == 1


async def test_failed_logins_show_as_locked_addresses(world, http: aiohttp.ClientSession) -> None:
    engine, _, _ = world
    assert engine.sessions is not None
    for _ in range(engine.sessions.auth_throttle.max_failures):
        engine.sessions.auth_throttle.failed("qbwc", "192.0.2.7")
    m = parse((await scrape(http, engine))[1])
    assert m["connex_qbwc_login_locked_addresses"] == 1


async def test_metrics_listen_on_localhost_only_by_default(world) -> None:
    engine, _, _ = world
    assert engine.config.metrics.host == "127.0.0.1"
    assert engine._metrics_runner is not None
    assert [address[0] for address in engine._metrics_runner.addresses] == ["127.0.0.1"]


async def test_metrics_are_off_unless_configured(tmp_path, http: aiohttp.ClientSession) -> None:
    async with Engine(make_config(tmp_path)) as engine:
        assert engine.metrics_port is None and engine._metrics_runner is None


def test_metrics_config_is_validated(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"\[metrics\] port: expected an integer from 0 to 65535, got 70000"):
        make_config(tmp_path, metrics={"port": 70000})
    with pytest.raises(ConfigError, match=r"\[metrics\] port: expected an integer"):
        make_config(tmp_path, metrics={"port": "9464"})
    with pytest.raises(ConfigError, match=r"\[metrics\].*prot"):
        make_config(tmp_path, metrics={"prot": 9464})


def test_label_values_and_help_are_escaped() -> None:
    family = MetricFamily("demo_total", "counter", "a \\ help\nline")
    family.add(3, {"reason": 'quote " backslash \\ newline \n end'})
    text = render([family])
    assert text == (
        "# HELP connex_demo_total a \\\\ help\\nline\n"
        "# TYPE connex_demo_total counter\n"
        'connex_demo_total{reason="quote \\" backslash \\\\ newline \\n end"} 3\n'
    )
    assert parse(text) == {'connex_demo_total{reason="quote \\" backslash \\\\ newline \\n end"}': 3.0}


async def test_shopify_cost_bucket_is_exported(tmp_path, http: aiohttp.ClientSession) -> None:
    store = EmulatedStore("shopify")
    await store.start()
    store.seed({"redwine": 20})
    config = make_config(tmp_path, storefront=store.storefront_config(), metrics={"port": 0})
    try:
        async with Engine(config) as engine:
            assert engine.scheduler is not None
            await engine.scheduler.run_and_wait("catalog")
            m = parse((await scrape(http, engine))[1])
            assert m['connex_store_cost_points_maximum{platform="shopify"}'] == store.emulator.maximum_available
            assert 0 < m['connex_store_cost_points_available{platform="shopify"}'] <= store.emulator.maximum_available
    finally:
        await store.stop()


async def test_a_store_outage_shows_as_a_streak(world, http: aiohttp.ClientSession) -> None:
    engine, _, _ = world
    assert engine.db is not None
    async with engine.db.transaction() as conn:
        await engine.db.set_meta(conn, "store.outages", "3")
    m = parse((await scrape(http, engine))[1])
    assert m["connex_store_outage_streak"] == 3
