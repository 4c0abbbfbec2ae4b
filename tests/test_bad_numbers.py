"""Bad numbers from a store fail the one item that carried them, never a batch or a task.

The store's answers are real HTTP from the emulators, rewritten by their fault hook
(`Fault.rewrite`) the way a plugin or a proxy on a real store can rewrite them: NaN, Infinity,
fractions, words and absurd sizes where a count belongs. The real clients parse them; whatever
they return or raise, the engine must record the item at fault as failed with the reason, record
the rest normally, and leave no row in flight.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connex_tui.engine.db import Database, utcnow
from connex_tui.engine.items import queue_stock
from connex_tui.engine.numbers import BadNumber, line_quantity, stock_level, whole_number
from connex_tui.engine.pusher import InventoryPusher
from connex_tui.engine.queue import drop_skus, retry_skus
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.woocommerce import WooCommerceClient

KEY, SECRET = "ck_3f9a2b7c1d", "cs_9e8d7c6b5a4f3e2d1c"
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=5.0)
BATCH = "POST /wp-json/wc/v3/products/batch"
HYPOTHESIS = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# What a count must never be: non-finite, fractional, a word, absurdly large, the wrong type.
NOT_A_COUNT = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 2.5, 10**30, -(10**30), "NaN", "Infinity",
                     "12abc", "", True, [], {}, {"value": 1}]),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not (math.isfinite(f) and f == int(f))),
    st.text(max_size=12).filter(lambda t: not t.strip().lstrip("-").isdigit()),
)


def run(coro_factory: Callable[[Path], Any]) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(coro_factory(Path(folder)))


class Shop:
    """The WooCommerce emulator, a real client to it, and a real SQLite file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.emu = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)

    async def __aenter__(self) -> Shop:
        await self.emu.start()
        self.client = WooCommerceClient(self.emu.base_url, KEY, SECRET, policy=FAST)
        self.db = await Database.open(self.folder / "connex.db")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.db.close()
        await self.client.close()
        await self.emu.stop()

    async def queue(self, **quantities: int | str) -> None:
        async with self.db.transaction() as conn:
            await queue_stock(conn, {sku: Decimal(q) for sku, q in quantities.items()}, utcnow())

    async def pending(self) -> dict[str, tuple[str, str | None]]:
        rows = await self.db.fetchall("SELECT sku, state, last_error FROM pending ORDER BY sku")
        return {row[0]: (row[1], row[2]) for row in rows}


def answer_with(product_id: int, value: Any) -> Callable[[Any], Any]:
    """Rewrite a batch answer: the entry for `product_id` says its stock is `value`."""

    def rewrite(data: Any) -> Any:
        for entry in data.get("update", []):
            if entry.get("id") == product_id:
                entry["stock_quantity"] = value
        return data

    return rewrite


# ------------------------------------------------------------------ the validation helper


@given(value=NOT_A_COUNT)
@HYPOTHESIS
def test_whole_number_refuses_what_is_not_a_count(value: Any) -> None:
    try:
        whole_number(value, "stock")
    except BadNumber as exc:
        assert str(exc).startswith("stock is ")
    else:
        raise AssertionError(f"{value!r} was taken for a count")


@given(value=st.integers(min_value=-2_147_483_647, max_value=2_147_483_647))
@HYPOTHESIS
def test_whole_number_takes_every_count_in_bounds(value: int) -> None:
    assert whole_number(value, "stock") == value
    assert whole_number(str(value), "stock") == value
    assert whole_number(float(value), "stock") == value


def test_stock_level_and_line_quantity_limits() -> None:
    assert stock_level("12.7", "q") == 12 and stock_level("-3", "q") == 0
    for bad in ("NaN", "Infinity", "-Infinity", "1e30", "sNaN", "x"):
        for check in (stock_level, line_quantity):
            try:
                check(bad, "q")
            except BadNumber:
                continue
            raise AssertionError(f"{check.__name__} took {bad!r}")
    assert line_quantity("2.5", "q") == Decimal("2.5")
    try:
        line_quantity("0.000001", "q")
    except BadNumber as exc:
        assert "decimal places" in str(exc)
    else:
        raise AssertionError("a quantity finer than QuickBooks keeps was taken")


# ------------------------------------------------------------------ stock batch answers


@given(value=NOT_A_COUNT)
@HYPOTHESIS
def test_a_bad_number_in_a_batch_answer_fails_that_sku_only(value: Any) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            for n in range(5):
                shop.emu.add_product(f"SKU-{n}", 1)
            bad = shop.emu.product_id("SKU-2")
            shop.emu.faults.add(BATCH, rewrite=answer_with(bad, value), times=100)
            await shop.queue(**{f"SKU-{n}": 10 + n for n in range(5)})
            pusher = InventoryPusher(shop.db, shop.client)
            outcome = await pusher.push_once()
            left = await shop.pending()
            assert outcome.pushed == 4 and outcome.failed == 1, (value, outcome, left)
            assert list(left) == ["SKU-2"] and left["SKU-2"][0] == "failed", left
            assert "SKU-2" in (left["SKU-2"][1] or ""), left
            assert await shop.db.fetchval("SELECT count(*) FROM pending WHERE state = 'in_flight'") == 0
            assert [shop.emu.stock(f"SKU-{n}") for n in (0, 1, 3, 4)] == [10, 11, 13, 14]
            logged = await shop.db.fetchall("SELECT sku, ok FROM sku_log ORDER BY sku")
            assert [(r[0], r[1]) for r in logged] == [("SKU-0", 1), ("SKU-1", 1), ("SKU-2", 0), ("SKU-3", 1),
                                                      ("SKU-4", 1)]
            # Retry and drop work on what is left.
            shop.emu.faults.clear()
            assert await retry_skus(shop.db, ["SKU-2"]) == 1
            assert (await pusher.push_once()).pushed == 1 and await shop.pending() == {}
            await shop.queue(**{"SKU-2": 7})
            shop.emu.faults.add(BATCH, rewrite=answer_with(bad, value), times=100)
            await pusher.push_once()
            assert (await shop.pending())["SKU-2"][0] == "failed"
            assert await drop_skus(shop.db, ["SKU-2"]) == 1 and await shop.pending() == {}

    run(scenario)


def test_a_nan_quantity_from_quickbooks_is_never_pushed_as_zero(tmp_path: Path) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            shop.emu.add_product("GOOD", 1)
            shop.emu.add_product("ODD", 5)
            async with shop.db.transaction() as conn:
                await queue_stock(conn, {"GOOD": Decimal(3), "ODD": Decimal("NaN")}, utcnow())
            outcome = await InventoryPusher(shop.db, shop.client).push_once()
            left = await shop.pending()
            assert outcome.pushed == 1 and left["ODD"][0] == "failed" and "not a finite number" in left["ODD"][1]
            assert shop.emu.stock("ODD") == 5 and shop.emu.stock("GOOD") == 3

    run(scenario)


def test_a_failing_catalog_refresh_leaves_nothing_in_flight(tmp_path: Path) -> None:
    async def scenario(folder: Path) -> None:
        async with Shop(folder) as shop:
            shop.emu.faults.add("GET /wp-json/wc/v3/products", status=500, times=10)
            await shop.queue(NEW=4)
            pusher = InventoryPusher(shop.db, shop.client)
            try:
                await pusher.push_once()
            except Exception:  # noqa: BLE001 - the task reports it; what matters is the queue
                pass
            assert await shop.pending() == {"NEW": ("pending", None)}

    run(scenario)
