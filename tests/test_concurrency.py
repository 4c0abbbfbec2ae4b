"""One database, many users at once: the headless engine (a real process), admin commands (real
processes) and a monitor-style reader, while the store is slow. Nobody sees "database is locked",
and the Web Connector's calls are answered while the store takes its time."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp

from connex_tui.engine import views
from connex_tui.engine.db import Database
from connex_tui.engine.orders import add_order
from connex_tui.storefronts.base import StoreLine, StoreOrder
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.stores import EmulatedStore
from connex_tui.sim.webconnector import WebConnectorSim

from .test_headless import free_port

PASSWORD = "concurrency-Pa55"


async def wait_ready(url: str, proc: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            assert proc.returncode is None, "the engine exited"
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("engine did not start")


async def spawn_headless(
    config: Path, *, password: str = PASSWORD, stderr: int = asyncio.subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    """The headless engine in a process of its own, as on a merchant's server (its config names
    `password_env = "QBWC_PW"`)."""
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "connex_tui.cli", "run", "--headless", "--config", str(config)],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "QBWC_PW": password},
    )


async def admin(config: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connex_tui.cli",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "QBWC_PW": PASSWORD},
    )
    out, err = await proc.communicate()
    return proc.returncode, (out + err).decode()


async def test_engine_admin_commands_and_a_reader_share_the_database_while_the_store_is_slow(tmp_path: Path) -> None:
    store = EmulatedStore("woocommerce")
    await store.start()
    qb = QuickBooksSim()
    skus = {f"ITEM-{n:03d}": 10 + n % 5 for n in range(300)}
    for sku, qty in skus.items():
        qb.add_item(sku, qty + 50)
    store.seed(skus)
    store.faults.add("POST /wp-json/wc/v3/products/batch", latency=1.0, times=3)

    port = free_port()
    config = tmp_path / "connex.toml"
    config.write_text(
        f'[database]\npath = "connex.db"\n[qbwc]\nport = {port}\npassword_env = "QBWC_PW"\nread_min_interval_seconds = 0\n'
        f'[storefront]\nplatform = "woocommerce"\nurl = "{store.url}"\nconsumer_key = "ck_test"\nconsumer_secret = "cs_test"\n'
        "[orders]\npoll_seconds = 3600\n"
    )
    db = await Database.open(tmp_path / "connex.db")  # the monitor's own connection
    for n in range(150):
        await add_order(db, StoreOrder(f"c{n}", f"C{n}", (StoreLine(f"ITEM-{n:03d}", Decimal(1)),)))
    engine = await spawn_headless(config, stderr=asyncio.subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/qbwc"
    latencies: list[float] = []
    outputs: list[str] = []
    reads = 0
    try:
        await wait_ready(url, engine)
        async with aiohttp.ClientSession() as http:
            wc = WebConnectorSim(url, "qbwc", PASSWORD, qb, http=http)
            timed_call = wc.call

            async def call(method: str, **args):
                started = time.perf_counter()
                try:
                    return await timed_call(method, **args)
                finally:
                    latencies.append(time.perf_counter() - started)

            wc.call = call  # type: ignore[method-assign]
            done = asyncio.Event()

            async def monitor_reads() -> None:
                nonlocal reads
                while not done.is_set():
                    await views.dashboard(db)
                    await views.pending_page(db, limit=50)
                    await views.sku_log_page(db, limit=50)
                    reads += 1
                    await asyncio.sleep(0.02)

            async def admin_loop() -> None:
                while not done.is_set():
                    for args in (
                        ("status", "--json"),
                        ("queue", "list"),
                        ("log", "--limit", "5"),
                        ("queue", "retry", "ITEM-001"),
                    ):
                        code, text = await admin(config, *args)
                        outputs.append(text)
                        assert code in (0, 1), text

            workers = [asyncio.create_task(monitor_reads()), asyncio.create_task(admin_loop())]
            started = time.monotonic()
            run = await wc.run_once()
            session_seconds = time.monotonic() - started
            for _ in range(300):  # let the slow pushes drain while the readers keep going
                if not await db.fetchval("SELECT count(*) FROM pending WHERE state != 'failed'"):
                    break
                await asyncio.sleep(0.1)
            done.set()
            await asyncio.gather(*workers)
    finally:
        engine.terminate()
        _, stderr = await engine.communicate()
        await db.close()
        await store.stop()
    assert run.status == "ok" and "150 orders posted" in run.close_message
    assert engine.returncode == 0
    everything = stderr.decode() + "".join(outputs)
    assert "database is locked" not in everything and "Traceback" not in everything
    assert reads > 10 and len(outputs) >= 4
    # The store took a second per batch; the Web Connector never waited on it.
    assert max(latencies) < 0.5, sorted(latencies)[-5:]
    assert session_seconds < 5
    assert all(store.stock(sku) == qb.item(sku).quantity_on_hand for sku in skus)
