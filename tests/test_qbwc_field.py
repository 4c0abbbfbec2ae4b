"""The Web Connector and QuickBooks as they behave in merchants' offices (issue 9): a dropped
connection, QuickBooks Pro, another company file, items changed by transactions. Real endpoint,
real SQLite, the store emulator over HTTP, the Web Connector and QuickBooks simulators."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from decimal import Decimal

import aiohttp
import pytest
from lxml import etree

from connex_tui.engine.orders import add_order
from connex_tui.storefronts.base import StoreLine, StoreOrder
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorSim
from connex_tui.soap.qbxml import TxnDoc, TxnLine, message_set, txn_add_rq

from .clocks import ShiftedClock, use_clock
from .conftest import PASSWORD
from .test_sync_e2e import Sync, start_sync


def shift_engine_clock(engine: Engine) -> ShiftedClock:
    """The engine's clock moved forward by hand: the Web Connector's schedule without sleeping."""
    clock = ShiftedClock()
    use_clock(engine, clock)
    return clock


def receipts(sync: Sync, predicate: Callable[[str], bool]) -> int:
    return len([t for t in sync.qb.transactions if t.kind == "sales_receipt" and predicate(t.memo or "")])


async def test_a_dropped_connection_costs_only_the_dropped_request(tmp_path, http: aiohttp.ClientSession) -> None:
    sync = await start_sync(tmp_path, "woocommerce", http)
    try:
        clock = shift_engine_clock(sync.engine)
        first = sync.store.order([("redwine", 5)])
        await sync.import_orders()
        dropping = WebConnectorSim(sync.engine.url, "qbwc", PASSWORD, sync.qb, http=http, drop_after=1)
        run = await dropping.run_once()
        assert run.dropped and sync.qb.item("redwine").quantity_on_hand == 15  # QuickBooks posted it

        second = sync.store.order([("redwine", 2)])
        await sync.import_orders()
        clock.advance(60)  # the next scheduled run, run_every_minutes = 1
        run2 = await sync.session()

        assert run2.auth[1] == ""  # not busy: the dropped session was superseded
        assert "SalesReceiptQueryRq" in run2.requests[0]  # the order in doubt is looked up first...
        assert any("SalesReceiptAddRq" in r for r in run2.requests)  # ...and the new one goes ahead
        sessions = await sync.db.fetchall("SELECT result, error FROM qbwc_sessions ORDER BY id")
        assert [r["result"] for r in sessions] == ["superseded", "ok"]
        assert "Superseded by session 2" in sessions[0]["error"]
        await sync.engine.recorder.flush()
        events = await sync.db.fetchall("SELECT level, message FROM events WHERE kind = 'SessionEnded'")
        assert [e["level"] for e in events if "Superseded by session 2" in e["message"]] == ["warning"]
        await sync.drain()
        assert sync.store.stock("redwine") == 13
        # Every order is in QuickBooks exactly once.
        for order in (first, second):
            state = await sync.db.fetchval("SELECT qb_state FROM orders WHERE store_id = ?", (str(order),))
            assert state == "posted"
        assert len([t for t in sync.qb.transactions if t.kind == "sales_receipt"]) == 2
        assert sync.qb.item("redwine").quantity_on_hand == 13
    finally:
        await sync.stop()


# --------------------------------------------------------------------------- QuickBooks Pro


async def test_quickbooks_pro_answers_3250_for_assemblies_and_no_session_fails(
    engine_factory, config_factory, http: aiohttp.ClientSession
) -> None:
    engine = await engine_factory(config_factory(qbwc={"read_min_interval_seconds": 0}))
    clock = shift_engine_clock(engine)
    qb = QuickBooksSim(edition="pro")
    qb.add_item("redwine", 20)
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    await add_order(engine.db, StoreOrder("p-1", "P1", (StoreLine("redwine", Decimal(5)),)))

    first = await wc.run_once()
    assert first.status == "ok" and first.close_message.startswith("OK")
    assemblies = [r for r in first.requests if "ItemInventoryAssemblyQueryRq" in r]
    assert len(assemblies) == 1 and 'statusCode="3250"' in first.responses[first.requests.index(assemblies[0])]
    assert first.percents[-1] == 100
    # The read completed: the watermark moved and the store gets 15.
    assert await engine.db.get_meta("items.watermark.inventory")
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'redwine'") == "15"

    qb.adjust_quantity("redwine", -1)
    second = await wc.run_once()  # within a day: the assembly query is not sent again
    assert second.status == "ok"
    assert not any("ItemInventoryAssemblyQueryRq" in r for r in second.requests)
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'redwine'") == "14"

    clock.advance(24 * 3600 + 1)  # a day later it is asked again, in case the edition changed
    third = await wc.run_once()
    assert third.status == "ok"
    assert any("ItemInventoryAssemblyQueryRq" in r for r in third.requests)
    results = [r["result"] for r in await engine.db.fetchall("SELECT result FROM qbwc_sessions ORDER BY id")]
    assert results == ["ok", "ok", "ok"]


async def test_a_sales_order_on_quickbooks_pro_fails_that_order_with_a_reason(
    engine_factory, config_factory, http: aiohttp.ClientSession
) -> None:
    engine = await engine_factory(config_factory(orders={"post_as": "sales_order"}))
    qb = QuickBooksSim(edition="pro")
    qb.add_item("redwine", 20)
    await add_order(engine.db, StoreOrder("p-2", "P2", (StoreLine("redwine", Decimal(1)),)), "sales_order")
    run = await WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http).run_once()
    assert run.status == "ok"
    row = await engine.db.fetchone("SELECT qb_state, error FROM orders")
    assert row["qb_state"] == "failed" and "3250" in row["error"] and "post_as" in row["error"]


# --------------------------------------------------------------------------- events after commit


async def test_events_go_out_after_the_commit_and_none_for_what_was_rolled_back(
    engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    """A message set of two adds whose second cannot be recorded (the database refuses the write):
    the whole answer is rolled back, so no OrderPosted goes out for the first one either; the next
    session finds both in QuickBooks and announces each once."""
    heard: list[object] = []
    engine.bus.subscribe(heard.append)
    for n in (1, 2):
        await add_order(engine.db, StoreOrder(f"e-{n}", f"E{n}", (StoreLine("redwine", Decimal(1)),)))
    async with engine.db.transaction() as conn:  # the disk fills up as the second order is recorded
        await conn.execute(
            "CREATE TRIGGER refuse_second BEFORE UPDATE OF qb_state ON orders"
            " WHEN NEW.store_id = 'e-2' AND NEW.qb_state = 'posted' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    run = await wc.run_once()
    assert run.percents == [-1] and "could not record" in run.last_error
    assert len(qb.transactions) == 2  # QuickBooks took both
    states = [r[0] for r in await engine.db.fetchall("SELECT qb_state FROM orders ORDER BY id")]
    assert states == ["sent", "sent"]  # rolled back: both in doubt
    assert not any(type(e).__name__ in ("OrderPosted", "OrderFailed", "PendingQueued") for e in heard)
    await engine.recorder.flush()
    assert await engine.db.fetchval("SELECT count(*) FROM events WHERE kind = 'OrderPosted'") == 0

    async with engine.db.transaction() as conn:
        await conn.execute("DROP TRIGGER refuse_second")
    clock = shift_engine_clock(engine)
    clock.advance(60)
    again = await wc.run_once()
    assert again.status == "ok"
    posted = [e for e in heard if type(e).__name__ == "OrderPosted"]
    assert sorted(e.number for e in posted) == ["E1", "E2"]  # each once, after its commit
    assert len(qb.transactions) == 2


# --------------------------------------------------------------------------- the company file


async def status_of(config) -> tuple[int, str]:
    from connex_tui.admin import run_admin
    from connex_tui.cli import build_parser

    out = io.StringIO()
    code = await run_admin(build_parser().parse_args(["status"]), config, out)
    return code, out.getvalue()


async def company(config, action: str = "show") -> tuple[int, str]:
    from connex_tui.cli import company_command

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await company_command(config, action)
    return code, out.getvalue()


def copy_of(qb: QuickBooksSim, path: str, **identity: str) -> QuickBooksSim:
    """Another company file with the same items (a test copy, last year's file)."""
    other = QuickBooksSim(company_file=path, company_name=identity.get("name", qb.company_name))
    for item in qb.items.values():
        other.add_item(item.name, item.quantity_on_hand)
    other.file_ids = dict(qb.file_ids)  # a copy carries the FileID stamped into the original
    return other


async def test_a_session_from_another_company_file_posts_and_pushes_nothing(
    tmp_path, http: aiohttp.ClientSession
) -> None:
    sync = await start_sync(tmp_path, "woocommerce", http)
    try:
        await sync.sync()  # the first successful session records the company file
        recorded = sync.qb.company_file
        assert (await company(sync.config))[1].startswith(f"company file: {recorded}")

        sync.store.order([("redwine", 5)])
        await sync.import_orders()
        last_year = copy_of(sync.qb, r"C:\Users\Public\Documents\Intuit\QuickBooks\Company Files\Sample 2025.QBW")
        last_year.adjust_quantity("redwine", 100)  # last year's file holds other quantities
        wc = WebConnectorSim(sync.engine.url, "qbwc", PASSWORD, last_year, http=http)
        pending_before = await sync.db.fetchval("SELECT count(*) FROM pending")
        run = await wc.run_once()

        assert run.auth[1] == recorded  # authenticate names the recorded file...
        assert run.calls[-2:] == ["connectionError", "closeConnection"]  # ...so QBWC refuses the other one
        assert last_year.requests == []  # nothing posted, nothing read
        assert [t.kind for t in last_year.transactions] == ["inventory_adjustment"]  # only the bookkeeper's
        assert await sync.db.fetchval("SELECT qb_state FROM orders WHERE qb_state != 'posted'") == "new"
        assert await sync.db.fetchval("SELECT count(*) FROM pending") == pending_before  # nothing to push
        row = await sync.db.fetchone("SELECT result, error FROM qbwc_sessions ORDER BY id DESC LIMIT 1")
        assert row["result"] == "wrong_company" and recorded in row["error"] and "0x8004040A" in row["error"]
        assert run.close_message.startswith("Failed:") and recorded in run.close_message
        code, text = await status_of(sync.config)
        assert code == 1 and "wrong_company" in text

        # The right file open again: the order goes in.
        await sync.session()
        assert await sync.db.fetchval("SELECT qb_state FROM orders") == "posted"
        assert len(sync.qb.transactions) == 1 and sync.qb.item("redwine").quantity_on_hand == 15
        assert (await status_of(sync.config))[0] == 0
    finally:
        await sync.stop()


async def test_another_company_at_the_recorded_path_is_refused_naming_both_then_accepted(
    engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    """The file at the recorded path was replaced (a restored backup of another company): the
    path matches, the company in strHCPResponse does not. Nothing is asked of it until
    `connex-tui company accept`."""
    owner, file_id = "{6B8F4E2A-1C3D-4E5F-9A7B-0C1D2E3F4A5B}", "{0F9E8D7C-6B5A-4938-8271-605F4E3D2C1B}"
    async with engine.db.transaction() as conn:
        await engine.db.set_meta(conn, "qwc.owner_id", owner)
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http, owner_id=owner, file_id=file_id)
    assert (await wc.run_once()).status == "ok"
    assert (await company(engine.config))[1].strip() == (
        f'company file: {qb.company_file} (company "Sample Shop", FileID {file_id})'
    )

    other = QuickBooksSim(company_file=qb.company_file, company_name="Other Books Inc")
    other.add_item("redwine", 99)
    await add_order(engine.db, StoreOrder("c-1", "C1", (StoreLine("redwine", Decimal(1)),)))
    run = await WebConnectorSim(
        engine.url, "qbwc", PASSWORD, other, http=http, owner_id=owner, file_id="{11111111-2222-3333-4444-555555555555}"
    ).run_once()
    assert run.requests == [] and other.transactions == []
    assert "Other Books Inc" in run.last_error and "Sample Shop" in run.last_error  # names both
    assert "company accept" in run.last_error
    assert await engine.db.fetchval("SELECT result FROM qbwc_sessions ORDER BY id DESC LIMIT 1") == "wrong_company"
    code, text = await company(engine.config)
    assert code == 1 and "refused: " in text and "Other Books Inc" in text

    code, text = await company(engine.config, "accept")
    assert code == 0 and "Other Books Inc" in text
    run = await WebConnectorSim(
        engine.url, "qbwc", PASSWORD, other, http=http, owner_id=owner, file_id="{11111111-2222-3333-4444-555555555555}"
    ).run_once()
    assert run.status == "ok" and len(other.transactions) == 1
    assert await engine.db.fetchval("SELECT qb_state FROM orders WHERE store_id = 'c-1'") == "posted"


def test_the_company_identity_is_read_leniently_from_strhcpresponse() -> None:
    from connex_tui.engine.company import CompanyFile, company_from_hcp, mismatch

    qb = QuickBooksSim(company_name="Shop & Co")
    qb.stamp_file_id("{OWNER}", "{FILE}")
    read = company_from_hcp(qb.company_file, qb.host_query_response(), "{owner}")
    assert read == CompanyFile(qb.company_file, "Shop & Co", "{FILE}")
    assert company_from_hcp("x.qbw", qb.host_query_response(), "{SOMEONE-ELSE}").file_id is None
    for junk in (
        "",
        "HOSTQUERY/COMPANYQUERY/PREFQUERY is currently not supported in QBPOS.",
        "<QBXML><QBXMLMsgsRs><CompanyQueryRs>",
        '<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
    ):
        assert company_from_hcp(r"C:\a.QBW", junk, "{OWNER}") == CompanyFile(r"C:\a.QBW")
    # Windows paths: case and slashes do not make another file; an unknown identity does not either.
    assert mismatch(read, CompanyFile(qb.company_file.upper().replace("\\", "/"))) is None
    assert mismatch(read, CompanyFile(r"C:\other.QBW")) == "a different company file"


# --------------------------------------------------------------------------- items changed by transactions

BUMPS = pytest.mark.parametrize("bumps", [True, False], ids=["bumps-TimeModified", "keeps-TimeModified"])


async def field_sync(tmp_path, http, *, bumps: bool, edition: str = "premier") -> Sync:
    qb = QuickBooksSim(edition=edition, bumps_item_time_modified=bumps)
    sync = await start_sync(tmp_path, "woocommerce", http, qb=qb)
    await sync.sync()  # the first session reads every item: from here on only changes count
    return sync


@BUMPS
@pytest.mark.parametrize("edition", ["premier", "pro"])
async def test_seed_case_after_the_first_read_under_either_time_modified_behaviour(
    tmp_path, http: aiohttp.ClientSession, bumps: bool, edition: str
) -> None:
    sync = await field_sync(tmp_path, http, bumps=bumps, edition=edition)
    try:
        before = sync.qb.item("redwine").time_modified
        sync.store.order([("redwine", 5)])
        await sync.sync()
        assert sync.qb.item("redwine").quantity_on_hand == 15
        assert (sync.qb.item("redwine").time_modified == before) is (not bumps)
        assert sync.store.stock("redwine") == 15
        run = sync.wc.runs[-1]
        # The items on the transactions modified since the last scan were read by ListID.
        assert any("<ListID>" in r and "ItemInventoryQueryRq" in r for r in run.requests)
    finally:
        await sync.stop()


@BUMPS
async def test_a_bookkeepers_credit_memo_and_invoice_reach_the_store(
    tmp_path, http: aiohttp.ClientSession, bumps: bool
) -> None:
    sync = await field_sync(tmp_path, http, bumps=bumps)
    try:
        sync.store.order([("redwine", 5)])
        await sync.sync()
        assert sync.store.stock("redwine") == 15
        sync.credit_memo("redwine", 3)  # returned at the counter, entered in QuickBooks
        await sync.session()
        await sync.drain()
        assert sync.qb.item("redwine").quantity_on_hand == 18
        assert sync.store.stock("redwine") == 18
        doc = TxnDoc("INV-7", "phone order", "Web Store", (TxnLine("redwine", Decimal(4)),))
        assert 'statusCode="0"' in sync.qb.process(message_set([txn_add_rq("invoice", doc, "inv")]))
        await sync.session()
        await sync.drain()
        assert sync.store.stock("redwine") == 14
    finally:
        await sync.stop()


@BUMPS
async def test_purchases_and_adjustments_entered_in_quickbooks_reach_the_store(
    tmp_path, http: aiohttp.ClientSession, bumps: bool
) -> None:
    sync = await field_sync(tmp_path, http, bumps=bumps)
    try:
        sync.qb.add_item("rosé", 0)
        sync.store.seed({"rosé": 0})
        async with sync.db.transaction() as conn:  # let the store's SKU index be refreshed at once
            await conn.execute("UPDATE meta SET value = '2000-01-01T00:00:00+00:00' WHERE key = 'catalog.refreshed_at'")
        await sync.engine.scheduler.run_and_wait("catalog")
        await sync.sync()
        sync.qb.record_txn("ItemReceipt", [("redwine", 12)])
        sync.qb.record_txn("Bill", [("rosé", 6)])
        sync.qb.record_txn("VendorCredit", [("redwine", 2)])
        sync.qb.adjust_quantity("rosé", -1)  # one bottle broke
        await sync.sync()
        assert sync.store.stock("redwine") == 30 and sync.store.stock("rosé") == 5
        scans = [r for r in sync.wc.runs[-1].requests if "ModifiedDateRangeFilter" in r]
        assert len(scans) == 1 and scans[0].count("ModifiedDateRangeFilter>") == 2 * 11  # one message set, 11 types
    finally:
        await sync.stop()


async def test_every_request_of_a_busy_session_validates_against_the_schema(
    tmp_path, http: aiohttp.ClientSession, schema
) -> None:
    sync = await field_sync(tmp_path, http, bumps=False)
    try:
        sync.store.order([("redwine", 1)])
        sync.credit_memo("redwine", 1)
        sync.qb.record_txn("Bill", [("redwine", 2)])
        await sync.sync()
        requests = [r for run in sync.wc.runs for r in run.requests]
        kinds = {m for r in requests for m in re.findall(r"<(\w+Rq) ", r)}
        assert {"SalesReceiptAddRq", "ItemInventoryQueryRq", "BillQueryRq", "BuildAssemblyQueryRq"} <= kinds
        for request in requests:
            schema.assertValid(etree.fromstring(request.encode("utf-8")))
    finally:
        await sync.stop()
