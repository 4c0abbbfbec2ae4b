"""`monitor`: the interface in this process, attached to the database of a headless engine running
in another; a retry pressed on the Pending screen is carried out by that engine."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import WebConnectorSim

from .test_concurrency import spawn_headless, wait_ready
from .test_headless import free_port
from .test_tui_keys import cells, go, table
from .tui_fixtures import make_app, wait_for

PASSWORD = "monitor-Pa55"


async def test_monitor_retries_a_failed_sku_through_an_engine_in_another_process(tmp_path: Path) -> None:
    store = EmulatedStore("woocommerce")
    await store.start()
    store.seed({"redwine": 20})
    qb = QuickBooksSim()
    qb.add_item("redwine", 20)
    qb.add_item("NEW-WINE", 6)  # in QuickBooks, not yet on the store
    port = free_port()
    config = tmp_path / "connex.toml"
    config.write_text(
        f'[database]\npath = "connex.db"\n[qbwc]\nport = {port}\npassword_env = "QBWC_PW"\nread_min_interval_seconds = 0\n'
        f'[storefront]\nplatform = "woocommerce"\nurl = "{store.url}"\nconsumer_key = "ck_test"\nconsumer_secret = "cs_test"\n'
    )
    engine = await spawn_headless(config, password=PASSWORD)
    url = f"http://127.0.0.1:{port}/qbwc"
    try:
        await wait_ready(url, engine)
        async with aiohttp.ClientSession() as http:
            await WebConnectorSim(url, "qbwc", PASSWORD, qb, http=http).run_once()
        app = make_app(tmp_path / "connex.db")
        async with app.run_test(size=(100, 30)) as pilot:
            await go(pilot, "2", "pending")
            await wait_for(
                pilot,
                lambda: table(app).raw("NEW-WINE") is not None and cells(app, "NEW-WINE")[2] == "failed",
                timeout=15,
                what="the engine to fail NEW-WINE",
            )
            store.seed({"NEW-WINE": 0})  # the merchant adds the product to the store
            table(app).move_cursor(row=table(app).keys.index("NEW-WINE"))
            await pilot.pause()
            await pilot.press("r")
            await wait_for(pilot, lambda: store.stock("NEW-WINE") == 6, timeout=10, what="the engine to push NEW-WINE")
            await wait_for(
                pilot, lambda: table(app).raw("NEW-WINE") is None, timeout=5, what="the row to leave the queue"
            )
            await go(pilot, "3", "sku_log")
            await wait_for(
                pilot,
                lambda: any(cells(app, key)[2] == "NEW-WINE" and cells(app, key)[5] == "ok" for key in table(app).keys),
                timeout=5,
            )
    finally:
        engine.terminate()
        await engine.wait()
        await store.stop()
    assert engine.returncode == 0
