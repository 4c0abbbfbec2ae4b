"""Private files and little private data (issue 11, point 5): the database and the log are the
owner's only; a store order keeps no address or email; old order data is dropped."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connex_tui.engine.db import Database
from connex_tui.engine.order_import import OrderImporter
from connex_tui.engine.logfile import open_log_file
from connex_tui.engine.private_files import wider_than_private
from connex_tui.engine.runtime import Engine
from connex_tui.engine.sync_tasks import SyncTasks
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.storefronts.retry import RetryPolicy
from connex_tui.storefronts.woocommerce import WooCommerceClient

from .conftest import make_config

KEY, SECRET = "ck_3f9a2b7c1d", "cs_9e8d7c6b5a4f3e2d1c"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the widest: whatever is private is so by our doing
    yield
    os.umask(old)


async def test_database_and_its_wal_files_are_created_owner_only(tmp_path: Path, open_umask) -> None:
    engine = Engine(make_config(tmp_path))
    await engine.start()
    try:
        assert engine.db is not None
        async with engine.db.transaction() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
        files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("connex.db"))
        assert files == ["connex.db", "connex.db-shm", "connex.db-wal"]
        assert {name: oct(mode(tmp_path / name)) for name in files} == {name: "0o600" for name in files}
        assert engine.db.permission_warnings == []
    finally:
        await engine.stop()


async def test_a_wider_database_gets_a_warning_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "connex.db"
    (await Database.open(path)).conn  # noqa: B018 - created
    db = await Database.open(path)
    await db.close()
    path.chmod(0o644)
    db = await Database.open(path)
    try:
        assert len(db.permission_warnings) >= 1
        assert f"chmod 600 {path}" in db.permission_warnings[0] and "0644" in db.permission_warnings[0]
    finally:
        await db.close()


@pytest.mark.parametrize("rotate", ["size", "external"])
def test_the_log_file_and_its_rotations_are_owner_only(tmp_path: Path, open_umask, rotate: str) -> None:
    config = make_config(tmp_path, logging={"rotate": rotate, "max_megabytes": 1, "backups": 2}).logging
    path = tmp_path / "logs" / "connex.log"
    with open_log_file(path, config) as log:
        log.write("line\n")
        if rotate == "size":
            log.write(("x" * 1000 + "\n") * 1100)  # past 1 MB: the handler rolls over
        else:
            path.rename(path.with_name("connex.log.1"))  # what logrotate does
            log.write("after\n")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["connex.log", "connex.log.1"], files
    assert {name: oct(mode(path.parent / name)) for name in files} == {name: "0o600" for name in files}
    assert wider_than_private(path) is None


def test_an_existing_wide_log_keeps_its_lines_and_is_named(tmp_path: Path) -> None:
    path = tmp_path / "connex.log"
    path.write_text("line\n")
    path.chmod(0o664)
    with open_log_file(path, make_config(tmp_path).logging) as log:
        log.write("more\n")
    assert path.read_text() == "line\nmore\n" and mode(path) == 0o664
    warning = wider_than_private(path)
    assert warning is not None and f"chmod 600 {path}" in warning


@pytest.fixture
async def shop(tmp_path: Path) -> Any:
    emu = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET)
    await emu.start()
    client = WooCommerceClient(
        emu.base_url, KEY, SECRET, policy=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=5.0)
    )
    db = await Database.open(tmp_path / "connex.db")
    yield emu, client, db
    await db.close()
    await client.close()
    await emu.stop()


async def test_a_stored_order_keeps_no_address_or_email(shop, tmp_path: Path) -> None:
    emu, client, db = shop
    emu.add_product("WINE", 10)
    emu.place_order([("WINE", 2)], number="P1", customer="Jane Doe", email="jane@example.com")
    assert "jane@example.com" in json.dumps(emu.order(emu.place_order([("WINE", 1)], number="P2")))
    await OrderImporter(db, client, make_config(tmp_path)).run()
    rows = await db.fetchall("SELECT number, customer, raw FROM orders ORDER BY number")
    assert [r["number"] for r in rows] == ["P1", "P2"]
    for row in rows:
        raw = json.loads(row["raw"])
        text = row["raw"].lower()
        assert "example.com" not in text and "billing" not in raw and "shipping" not in raw, raw.keys()
        assert "address" not in text and "phone" not in text and "customer_ip" not in text
        assert raw["number"] == row["number"] and raw["line_items"][0]["sku"] == "WINE"
    assert rows[0]["customer"] == "Jane Doe"


async def test_cleanup_drops_old_order_data_after_the_configured_days(shop, tmp_path: Path) -> None:
    emu, client, db = shop
    emu.add_product("WINE", 10)
    old = emu.place_order([("WINE", 2)], number="OLD")
    emu.place_order([("WINE", 1)], number="NEW")
    emu.refund(old, [("WINE", 1)])
    config = make_config(tmp_path, orders={"raw_retention_days": 7})
    await OrderImporter(db, client, config).run()
    long_ago = (datetime.now(timezone.utc) - timedelta(days=8)).isoformat(timespec="milliseconds")
    async with db.transaction() as conn:
        await conn.execute("UPDATE orders SET imported_at = ?", (long_ago,))
        await conn.execute(
            "UPDATE orders SET imported_at = ? WHERE number = 'NEW'",
            (datetime.now(timezone.utc).isoformat(timespec="milliseconds"),),
        )
    result = await SyncTasks(db, client, config).cleanup()
    raws = {r["number"]: json.loads(r["raw"]) for r in await db.fetchall("SELECT number, raw FROM orders")}
    memo = next(n for n in raws if n.startswith("OLD-R"))
    assert raws["OLD"] == {} and raws["NEW"]["number"] == "NEW"
    assert raws[memo]["refund_id"]  # which refund a credit memo carries is kept: no private data in it
    assert "store data of 1 orders older than 7 days" in result.summary
    lines = await db.fetchval("SELECT count(*) FROM order_lines")
    assert lines == 3  # the orders themselves and their lines stay
    await OrderImporter(db, client, config).run()  # read again: the restock is not given twice
    assert await db.fetchval("SELECT count(*) FROM orders WHERE qb_kind = 'credit_memo'") == 1


def test_new_config_keys_have_their_defaults(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert config.orders.raw_retention_days == 30
    assert config.qbwc.trusted_proxies == () and config.qbwc.max_connections == 256
