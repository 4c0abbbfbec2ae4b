"""End to end: the real endpoint on a free port, the Web Connector simulator over real HTTP, the
QuickBooks simulator behind it, and a real SQLite file."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest
from lxml import etree

from connex_tui.engine.orders import add_order
from connex_tui.storefronts.base import StoreLine, StoreOrder
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorSim

from .clocks import ManualClock, use_clock
from .conftest import EDITIONS, PASSWORD

pytestmark = pytest.mark.parametrize("qb", EDITIONS, indirect=True)


def order(store_id: str, number: str, sku: str = "redwine", quantity: int = 5) -> StoreOrder:
    return StoreOrder(store_id, number, (StoreLine(sku, Decimal(quantity), Decimal("12.50")),))


async def qb_state(engine: Engine, store_id: str) -> tuple[str, str | None, str | None]:
    assert engine.db is not None
    row = await engine.db.fetchone("SELECT qb_state, txn_id, error FROM orders WHERE store_id = ?", (store_id,))
    assert row is not None
    return row["qb_state"], row["txn_id"], row["error"]


async def test_seed_case_order_posted_once_and_quantity_falls(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, order("wc-1", "1001"))

    run = await web_connector.run_once()

    assert run.auth[1] == ""
    assert run.status == "ok"
    assert qb.item("redwine").quantity_on_hand == 15
    receipts = [t for t in qb.transactions if t.kind == "sales_receipt"]
    assert len(receipts) == 1 and receipts[0].ref_number == "1001"
    state, txn_id, _ = await qb_state(engine, "wc-1")
    assert state == "posted" and txn_id == receipts[0].txn_id
    # The item read after the add sees 15 and queues it for the store.
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'redwine'") == "15"
    assert run.percents[-1] == 100 and all(0 <= p < 100 for p in run.percents[:-1])
    assert "1 orders posted" in run.close_message

    # A later session posts nothing again.
    qb.adjust_quantity("redwine", 0)
    await web_connector.run_once()
    assert len([t for t in qb.transactions if t.kind == "sales_receipt"]) == 1


async def test_modified_items_read_through_an_iterator_of_several_pages(
    engine_factory, config_factory, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    engine = await engine_factory(config_factory(qbwc={"max_returned": 10}))
    for n in range(34):
        qb.add_item(f"SKU-{n:03d}", n)
    assemblies = 0 if qb.edition == "pro" else 1  # QuickBooks Pro has none
    if assemblies:
        qb.add_item("ASM-1", 4, kind="assembly")
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)

    run = await wc.run_once()

    assert run.status == "ok"
    item_reads = [r for r in run.requests if re.search(r"<ItemInventory(Assembly)?QueryRq [^>]*iterator=", r)]
    starts = [r for r in item_reads if 'iterator="Start"' in r]
    continues = [r for r in item_reads if 'iterator="Continue"' in r]
    assert len(starts) == 2  # inventory, then assembly items (3250 on Pro: none there)
    assert len(continues) == 3  # 35 inventory items in pages of 10
    assert await engine.db.fetchval("SELECT count(*) FROM items WHERE kind = 'inventory'") == 35
    assert await engine.db.fetchval("SELECT count(*) FROM items WHERE kind = 'assembly'") == assemblies
    assert await engine.db.fetchval("SELECT count(*) FROM pending") == 35 + assemblies
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'SKU-033'") == "33"
    # The next read starts from the newest TimeModified seen (inclusive), not from the beginning.
    qb.adjust_quantity("SKU-005", 7)
    wc_later = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    engine.sessions.config = config_factory(qbwc={"max_returned": 10, "read_min_interval_seconds": 0})
    run2 = await wc_later.run_once()
    assert "<FromModifiedDate>" in run2.requests[0]
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'SKU-005'") == "12"


async def test_nothing_to_do_answers_none(engine: Engine, web_connector: WebConnectorSim) -> None:
    first = await web_connector.run_once()
    assert first.auth[1] == ""
    second = await web_connector.run_once()
    assert second.auth[1] == "none"
    assert second.calls == ["serverVersion", "clientVersion", "authenticate", "closeConnection"]
    # An order arriving makes the next session a working one again.
    await add_order(engine.db, order("wc-2", "1002"))
    third = await web_connector.run_once()
    assert third.auth[1] == web_connector.qb.company_file  # the file the first session recorded


async def test_wrong_credentials_answer_nvu(engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession) -> None:
    for user, password in (("qbwc", "wrong"), ("someone", PASSWORD), ("", "")):
        wc = WebConnectorSim(engine.url, user, password, qb, http=http)
        run = await wc.run_once()
        assert run.auth == ["", "nvu"]
    assert await engine.db.fetchval("SELECT count(*) FROM qbwc_sessions") == 0


async def test_second_concurrent_session_answers_busy(engine: Engine, web_connector: WebConnectorSim) -> None:
    ticket, answer = await web_connector.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
    assert answer == "" and ticket
    busy = await web_connector.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
    # Busy, with when to come back: the third element postpones the update (QBWC guide ch.10).
    assert busy[:2] == ["", "busy"] and 1 <= int(busy[2]) <= engine.config.qbwc.concurrent_seconds
    await web_connector.call("closeConnection", ticket=ticket)
    again = await web_connector.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
    assert again[0] and again[1] in ("", "none")


async def test_dropped_connection_after_add_posts_no_duplicate(
    engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    await add_order(engine.db, order("wc-7", "1007"))
    dropping = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http, drop_after=1)
    run = await dropping.run_once()
    assert run.dropped
    assert qb.item("redwine").quantity_on_hand == 15  # QuickBooks did post it
    assert (await qb_state(engine, "wc-7"))[0] == "sent"  # we never heard back

    # The next scheduled run (a minute later) supersedes the dropped session at once.
    assert engine.db is not None
    use_clock(engine, ManualClock(engine.db.clock.now() + timedelta(minutes=1)))
    follow_up = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    run2 = await follow_up.run_once()
    assert run2.auth[1] == ""
    assert await engine.db.fetchval("SELECT result FROM qbwc_sessions WHERE id = 1") == "superseded"

    assert "SalesReceiptQueryRq" in run2.requests[0]
    assert not any("SalesReceiptAddRq" in r for r in run2.requests)
    assert len([t for t in qb.transactions if t.ref_number == "1007"]) == 1
    assert qb.item("redwine").quantity_on_hand == 15
    state, txn_id, _ = await qb_state(engine, "wc-7")
    assert state == "posted" and txn_id == qb.transactions[0].txn_id


async def test_in_doubt_order_not_in_quickbooks_is_added(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    """An order marked sent whose request never reached QuickBooks is added after the lookup."""
    await add_order(engine.db, order("wc-8", "1008"))
    async with engine.db.transaction() as conn:
        await conn.execute("UPDATE orders SET qb_state = 'sent'")
    # A receipt typed by hand with the same RefNumber but without our marker is not ours.
    qb.process(
        '<?xml version="1.0"?><?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError">'
        "<SalesReceiptAddRq><SalesReceiptAdd><CustomerRef><FullName>Web Store</FullName></CustomerRef>"
        "<RefNumber>1008</RefNumber><Memo>counter sale</Memo><SalesReceiptLineAdd><ItemRef><FullName>redwine"
        "</FullName></ItemRef><Quantity>1</Quantity></SalesReceiptLineAdd></SalesReceiptAdd></SalesReceiptAddRq>"
        "</QBXMLMsgsRq></QBXML>"
    )
    run = await web_connector.run_once()
    assert "SalesReceiptQueryRq" in run.requests[0]
    assert "SalesReceiptAddRq" in run.requests[1]
    assert (await qb_state(engine, "wc-8"))[0] == "posted"
    assert len(qb.transactions) == 2
    assert qb.item("redwine").quantity_on_hand == 14


async def test_unknown_sku_fails_that_order_only(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, order("wc-3", "1003", sku="nosuchsku"))
    await add_order(engine.db, order("wc-4", "1004"))
    run = await web_connector.run_once()
    assert run.status == "ok"
    state, _, error = await qb_state(engine, "wc-3")
    assert state == "failed" and "3140" in error and "SKU" in error
    assert (await qb_state(engine, "wc-4"))[0] == "posted"
    assert "1 failed" in run.close_message
    # A failed order is not retried by itself.
    await web_connector.run_once()
    assert len(qb.transactions) == 1


async def test_locked_record_is_retried_next_session(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, order("wc-5", "1005"))
    qb.locked_items.add("redwine")
    await web_connector.run_once()
    state, _, error = await qb_state(engine, "wc-5")
    assert state == "new" and "retried next session" in error
    qb.locked_items.clear()
    await web_connector.run_once()
    assert (await qb_state(engine, "wc-5"))[0] == "posted"
    assert qb.item("redwine").quantity_on_hand == 15


async def test_parse_error_hresult_fails_the_orders_and_explains(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim, monkeypatch
) -> None:
    from connex_tui.sim.quickbooks import QBXMLRequestError

    await add_order(engine.db, order("wc-6", "1006"))

    def refuse(request: str) -> str:
        raise QBXMLRequestError("0x80040400", "QuickBooks found an error when parsing the provided XML text stream.")

    monkeypatch.setattr(qb, "process", refuse)
    run = await web_connector.run_once()
    assert run.percents == [-1]
    assert "0x80040400" in run.last_error
    assert run.close_message.startswith("Failed:")
    state, _, error = await qb_state(engine, "wc-6")
    assert state == "failed" and "0x80040400" in error


async def test_iterator_invalid_restarts_the_read(engine: Engine, web_connector: WebConnectorSim) -> None:
    ticket, _ = await web_connector.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
    request = await web_connector.call(
        "sendRequestXML",
        ticket=ticket,
        strHCPResponse="",
        strCompanyFileName="c.qbw",
        qbXMLCountry="US",
        qbXMLMajorVers=13,
        qbXMLMinorVers=0,
    )
    request_id = etree.fromstring(request.encode()).find(".//ItemInventoryQueryRq").get("requestID")
    response = (
        '<?xml version="1.0" ?><QBXML><QBXMLMsgsRs>'
        f'<ItemInventoryQueryRs requestID="{request_id}" statusCode="3391" statusSeverity="Error" '
        'statusMessage="The iteratorID &quot;{abc}&quot; is not valid." /></QBXMLMsgsRs></QBXML>'
    )
    percent = await web_connector.call("receiveResponseXML", ticket=ticket, response=response, hresult="", message="")
    assert 0 <= percent < 100
    again = await web_connector.call(
        "sendRequestXML",
        ticket=ticket,
        strHCPResponse="",
        strCompanyFileName="c.qbw",
        qbXMLCountry="US",
        qbXMLMajorVers=13,
        qbXMLMinorVers=0,
    )
    assert 'iterator="Start"' in again


async def test_duplicate_response_delivery_is_recorded_once(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, order("wc-9", "1009"))
    ticket, _ = await web_connector.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
    qb.begin_session()
    request = await web_connector.call(
        "sendRequestXML",
        ticket=ticket,
        strHCPResponse="",
        strCompanyFileName="c.qbw",
        qbXMLCountry="US",
        qbXMLMajorVers=13,
        qbXMLMinorVers=0,
    )
    response = qb.process(request)
    first = await web_connector.call("receiveResponseXML", ticket=ticket, response=response, hresult="", message="")
    second = await web_connector.call("receiveResponseXML", ticket=ticket, response=response, hresult="", message="")
    assert first == second
    assert await engine.db.fetchval("SELECT count(*) FROM qb_requests WHERE request_id LIKE 'add-%'") == 1
    assert (await qb_state(engine, "wc-9"))[0] == "posted"


async def test_qbxml_version_is_the_lower_of_ours_and_the_web_connectors(
    engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http, qbxml_major=12, qbxml_minor=0)
    run = await wc.run_once()
    assert all('<?qbxml version="12.0"?>' in r for r in run.requests)
    assert await engine.db.fetchval("SELECT qbxml_version FROM qbwc_sessions") == "12.0"


async def test_connection_error_is_explained(engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession) -> None:
    await add_order(engine.db, order("wc-10", "1010"))
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http, qb_unavailable=True)
    run = await wc.run_once()
    assert run.calls[-2:] == ["connectionError", "closeConnection"]
    assert "could not open QuickBooks" in run.close_message
    assert (await qb_state(engine, "wc-10"))[0] == "new"


async def test_many_orders_go_in_batches(
    engine_factory, config_factory, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    engine = await engine_factory(config_factory(qbwc={"orders_per_request": 4}))
    qb.adjust_quantity("redwine", 100)
    for n in range(10):
        await add_order(engine.db, order(f"wc-b{n}", f"B{n}", quantity=1))
    wc = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    run = await wc.run_once()
    adds = [r for r in run.requests if "SalesReceiptAddRq" in r]
    assert [r.count("<SalesReceiptAddRq") for r in adds] == [4, 4, 2]
    assert qb.item("redwine").quantity_on_hand == 110
    assert await engine.db.fetchval("SELECT count(*) FROM orders WHERE qb_state = 'posted'") == 10


async def test_every_request_sent_validates_against_the_schema(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim, schema
) -> None:
    await add_order(engine.db, order("wc-11", "A-VERY-LONG-ORDER-NUMBER-12345"))
    await add_order(
        engine.db,
        StoreOrder("wc-12", "1012", (StoreLine("redwine", Decimal(1), Decimal("3"), "Rotwein “Spätlese” 🍷"),)),
    )
    async with engine.db.transaction() as conn:
        await conn.execute("UPDATE orders SET qb_state = 'sent' WHERE store_id = 'wc-11'")
    run = await web_connector.run_once()
    assert len(run.requests) >= 3
    for request in run.requests:
        schema.assertValid(etree.fromstring(request.encode("utf-8")))
    # The long order number went to the Memo, and the RefNumber fits QuickBooks' 11 characters.
    posted = [t for t in qb.transactions if "A-VERY-LONG-ORDER-NUMBER-12345" in t.memo]
    assert len(posted) == 1 and len(posted[0].ref_number) <= 11


async def test_engine_keeps_answering_while_sessions_run(
    engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    """Two Web Connectors at once: one gets the session, the other busy, and nothing is posted twice."""
    await add_order(engine.db, order("wc-13", "1013"))
    a = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    b = WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http)
    runs = await asyncio.gather(a.run_once(), b.run_once())
    answers = sorted(r.auth[1] for r in runs)
    assert answers in (["", "busy"], ["", "none"], ["", ""])
    assert len([t for t in qb.transactions if t.ref_number == "1013"]) == 1


async def test_web_connector_runs_on_a_schedule_until_stopped(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, order("wc-14", "1014"))
    web_connector.time_scale = 0.001  # the second run is told to come back in 60 s: 60 ms here
    stop = asyncio.Event()
    task = asyncio.create_task(web_connector.run_every(0.05, stop))
    for _ in range(200):
        if len(web_connector.runs) >= 3:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(web_connector.runs) >= 3
    assert [r.auth[1] for r in web_connector.runs[:2]] == ["", "none"]
    assert (await qb_state(engine, "wc-14"))[0] == "posted"


async def test_mapped_sku_posts_to_its_quickbooks_item_and_queues_under_the_store_sku(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    from connex_tui.engine.skus import set_mapping

    await set_mapping(engine.db, "WEB-RED-750", "redwine")
    await add_order(engine.db, order("wc-15", "1015", sku="web-red-750", quantity=2))
    run = await web_connector.run_once()
    assert run.status == "ok"
    assert (await qb_state(engine, "wc-15"))[0] == "posted"
    assert qb.item("redwine").quantity_on_hand == 18
    rows = await engine.db.fetchall("SELECT sku, quantity FROM pending")
    assert [tuple(r) for r in rows] == [("WEB-RED-750", "18")]


async def test_an_item_re_read_at_the_watermark_is_not_queued_again(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    qb.add_item("whitewine", 4)
    await web_connector.run_once()
    async with engine.db.transaction() as conn:
        await conn.execute("DELETE FROM pending")
        await conn.execute("DELETE FROM meta WHERE key = 'items.last_complete'")
    qb.adjust_quantity("redwine", 2)
    run = await web_connector.run_once()
    assert "<FromModifiedDate>" in run.requests[0]
    assert [tuple(r) for r in await engine.db.fetchall("SELECT sku, quantity FROM pending")] == [("redwine", "22")]


async def test_an_order_quickbooks_cannot_take_fails_alone_and_the_session_goes_on(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, order("wc-16", "1016", sku=""))
    await add_order(engine.db, order("wc-17", "1017"))
    run = await web_connector.run_once()
    assert run.status == "ok"
    state, _, error = await qb_state(engine, "wc-16")
    assert state == "failed" and error.startswith("The order cannot be sent to QuickBooks")
    assert (await qb_state(engine, "wc-17"))[0] == "posted"


async def test_a_restart_closes_sessions_left_open_so_the_next_one_is_not_busy(
    engine_factory, config_factory, qb: QuickBooksSim, http: aiohttp.ClientSession
) -> None:
    config = config_factory()
    first = await engine_factory(config)
    await add_order(first.db, order("wc-18", "1018"))
    dropping = WebConnectorSim(first.url, "qbwc", PASSWORD, qb, http=http, drop_after=1)
    assert (await dropping.run_once()).dropped
    await first.stop()

    second = await engine_factory(config)
    assert await second.db.fetchval("SELECT result FROM qbwc_sessions") == "interrupted"
    run = await WebConnectorSim(second.url, "qbwc", PASSWORD, qb, http=http).run_once()
    assert run.auth[1] == "" and "SalesReceiptQueryRq" in run.requests[0]
    assert len(qb.transactions) == 1 and (await qb_state(second, "wc-18"))[0] == "posted"
