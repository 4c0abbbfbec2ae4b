"""Web Connector calls out of order, repeated or failing: nothing is lost, nothing posted twice."""

from __future__ import annotations

from decimal import Decimal

from connex_tui.engine.orders import add_order
from connex_tui.storefronts.base import StoreLine, StoreOrder
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorSim

from .conftest import PASSWORD


async def start_session(wc: WebConnectorSim) -> str:
    ticket, answer = await wc.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
    assert answer in ("", wc.qb.company_file)  # the path once a session recorded the company file
    return ticket


async def send(wc: WebConnectorSim, ticket: str) -> str:
    return await wc.call(
        "sendRequestXML",
        ticket=ticket,
        strHCPResponse="",
        strCompanyFileName=wc.qb.company_file,
        qbXMLCountry="US",
        qbXMLMajorVers=13,
        qbXMLMinorVers=0,
    )


async def states(engine: Engine) -> list[str]:
    return [r[0] for r in await engine.db.fetchall("SELECT qb_state FROM orders ORDER BY id")]


async def test_response_before_any_request_changes_nothing(engine: Engine, web_connector: WebConnectorSim) -> None:
    await add_order(engine.db, StoreOrder("f1", "F1", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    fake = (
        '<?xml version="1.0" ?><QBXML><QBXMLMsgsRs><SalesReceiptAddRs requestID="add-1" statusCode="0" '
        'statusSeverity="Info"><SalesReceiptRet><TxnID>1-1</TxnID></SalesReceiptRet></SalesReceiptAddRs>'
        "</QBXMLMsgsRs></QBXML>"
    )
    percent = await web_connector.call("receiveResponseXML", ticket=ticket, response=fake, hresult="", message="")
    assert 0 <= percent < 100
    assert await states(engine) == ["new"]  # not "posted" on the word of a response we never asked for


async def test_request_asked_twice_keeps_the_first_adds_in_doubt_and_never_re_adds_them(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, StoreOrder("f2", "F2", (StoreLine("redwine", Decimal(2)),)))
    ticket = await start_session(web_connector)
    first = await send(web_connector, ticket)
    assert "SalesReceiptAddRq" in first
    qb.begin_session()
    qb.process(first)  # QuickBooks did it, but the answer never came back...
    second = await send(web_connector, ticket)  # ...and the Web Connector asks again
    assert "SalesReceiptAddRq" not in second
    assert await states(engine) == ["sent"]
    await web_connector.call("closeConnection", ticket=ticket)
    qb.end_session()
    run = await web_connector.run_once()  # the next session looks it up and finds it
    assert "SalesReceiptQueryRq" in run.requests[0]
    assert len(qb.transactions) == 1 and await states(engine) == ["posted"]
    assert qb.item("redwine").quantity_on_hand == 18


async def test_an_hresult_other_than_a_parse_error_leaves_the_orders_in_doubt(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, StoreOrder("f3", "F3", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    await send(web_connector, ticket)
    percent = await web_connector.call(
        "receiveResponseXML", ticket=ticket, response="", hresult="0x80040408", message="Could not start QuickBooks."
    )
    assert percent == -1
    assert "0x80040408" in await web_connector.call("getLastError", ticket=ticket)
    assert (await web_connector.call("closeConnection", ticket=ticket)).startswith("Failed:")
    assert await states(engine) == ["sent"]
    run = await web_connector.run_once()  # not found in QuickBooks: added, once
    assert [("SalesReceiptQueryRq" in r, "SalesReceiptAddRq" in r) for r in run.requests[:2]] == [
        (True, False),
        (False, True),
    ]
    assert len(qb.transactions) == 1 and await states(engine) == ["posted"]


async def test_close_twice_and_calls_after_close(engine: Engine, web_connector: WebConnectorSim) -> None:
    ticket = await start_session(web_connector)
    assert (await web_connector.call("closeConnection", ticket=ticket)).startswith("OK")
    assert await web_connector.call("closeConnection", ticket=ticket) == "Session already closed."
    assert await send(web_connector, ticket) == ""
    assert await web_connector.call("receiveResponseXML", ticket=ticket, response="", hresult="", message="") == -1


async def test_a_second_authenticate_during_a_session_is_busy_and_the_first_goes_on(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, StoreOrder("f4", "F4", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    assert (await web_connector.call("authenticate", strUserName="qbwc", strPassword=PASSWORD))[:2] == ["", "busy"]
    qb.begin_session()
    request = await send(web_connector, ticket)
    percent = await web_connector.call(
        "receiveResponseXML", ticket=ticket, response=qb.process(request), hresult="", message=""
    )
    assert 0 <= percent <= 100 and await states(engine) == ["posted"]


async def test_an_order_whose_sender_was_cut_off_waits_for_quickbooks_instead_of_being_added_twice(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    """Web Connector A hands QuickBooks an add, connex-tui restarts, Web Connector B looks the order
    up before QuickBooks has finished A's request: B must not add it again."""
    await add_order(engine.db, StoreOrder("f5", "F5", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    held = await send(web_connector, ticket)  # QuickBooks is still chewing on this
    assert await engine.sessions.close_interrupted() == 1  # what a restart does

    run_b = await web_connector.run_once()
    assert "SalesReceiptQueryRq" in run_b.requests[0]
    assert not any("SalesReceiptAddRq" in r for r in run_b.requests)
    assert await states(engine) == ["sent"]

    qb.begin_session()
    qb.process(held)  # A's request completes after all
    qb.end_session()
    await web_connector.run_once()
    assert len(qb.transactions) == 1 and await states(engine) == ["posted"]


async def test_an_order_in_doubt_is_added_again_once_quickbooks_cannot_still_be_at_it(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, StoreOrder("f6", "F6", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    await send(web_connector, ticket)  # lost on the way: QuickBooks never sees it
    await engine.sessions.close_interrupted()
    await web_connector.run_once()
    assert await states(engine) == ["sent"]
    async with engine.db.transaction() as conn:  # eleven minutes later
        await conn.execute("UPDATE orders SET sent_at = '2000-01-01T00:00:00+00:00'")
    await web_connector.run_once()
    assert len(qb.transactions) == 1 and await states(engine) == ["posted"]


async def test_an_answer_of_the_wrong_kind_or_given_twice_is_not_trusted(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim
) -> None:
    await add_order(engine.db, StoreOrder("f7", "F7", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    request = await send(web_connector, ticket)
    qb.begin_session()
    real = qb.process(request)
    twice = real.replace("</QBXMLMsgsRs>", real.split("<QBXMLMsgsRs>")[1].split("</QBXMLMsgsRs>")[0] + "</QBXMLMsgsRs>")
    assert twice.count("<SalesReceiptAddRs") == 2
    await web_connector.call("receiveResponseXML", ticket=ticket, response=twice, hresult="", message="")
    assert await states(engine) == ["sent"]  # stays in doubt: looked up next session, not guessed
    await web_connector.call("closeConnection", ticket=ticket)
    run = await web_connector.run_once()
    assert "SalesReceiptQueryRq" in run.requests[0]
    assert len(qb.transactions) == 1 and await states(engine) == ["posted"]

    await add_order(engine.db, StoreOrder("f8", "F8", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    request = await send(web_connector, ticket)
    wrong_kind = (
        qb.process(request).replace("SalesReceiptAddRs", "InvoiceAddRs").replace("SalesReceiptRet", "InvoiceRet")
    )
    await web_connector.call("receiveResponseXML", ticket=ticket, response=wrong_kind, hresult="", message="")
    assert (await states(engine))[1] == "sent"


async def test_an_answer_that_cannot_be_recorded_ends_the_session_with_words(
    engine: Engine, qb: QuickBooksSim, web_connector: WebConnectorSim, monkeypatch
) -> None:
    await add_order(engine.db, StoreOrder("f9", "F9", (StoreLine("redwine", Decimal(1)),)))
    ticket = await start_session(web_connector)
    request = await send(web_connector, ticket)
    qb.begin_session()

    async def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine.sessions.recorder, "_add", broken)
    percent = await web_connector.call(
        "receiveResponseXML", ticket=ticket, response=qb.process(request), hresult="", message=""
    )
    assert percent == -1
    assert "looked up next session" in await web_connector.call("getLastError", ticket=ticket)
    assert await states(engine) == ["sent"]
    assert await engine.db.fetchval("SELECT count(*) FROM qb_requests") == 0  # rolled back together


async def test_an_item_page_larger_than_asked_or_without_quantities_pushes_nothing(
    engine: Engine, web_connector: WebConnectorSim
) -> None:
    ticket = await start_session(web_connector)
    request = await send(web_connector, ticket)
    request_id = request.split('requestID="', 1)[1].split('"', 1)[0]

    def page(items: str) -> str:
        return (
            '<?xml version="1.0" ?><QBXML><QBXMLMsgsRs>'
            f'<ItemInventoryQueryRs requestID="{request_id}" statusCode="0" statusSeverity="Info" '
            f'iteratorRemainingCount="0" iteratorID="{{a}}">{items}</ItemInventoryQueryRs></QBXMLMsgsRs></QBXML>'
        )

    item = (
        "<ItemInventoryRet><ListID>L{n}</ListID><TimeModified>2026-11-27T10:00:00</TimeModified>"
        "<EditSequence>1</EditSequence><Name>S{n}</Name><FullName>S{n}</FullName><IsActive>true</IsActive>{q}"
        "</ItemInventoryRet>"
    )
    too_many = page("".join(item.format(n=n, q="<QuantityOnHand>5</QuantityOnHand>") for n in range(101)))
    assert (
        await web_connector.call("receiveResponseXML", ticket=ticket, response=too_many, hresult="", message="") == -1
    )
    assert "101 items in a page of at most 100" in await web_connector.call("getLastError", ticket=ticket)
    assert await engine.db.fetchval("SELECT count(*) FROM items") == 0
    await web_connector.call("closeConnection", ticket=ticket)

    ticket = await start_session(web_connector)
    request = await send(web_connector, ticket)
    request_id = request.split('requestID="', 1)[1].split('"', 1)[0]
    empty = page(item.format(n=1, q="<QuantityOnHand></QuantityOnHand>") + item.format(n=2, q=""))
    assert await web_connector.call("receiveResponseXML", ticket=ticket, response=empty, hresult="", message="") >= 0
    assert await engine.db.fetchval("SELECT count(*) FROM items") == 2
    assert await engine.db.fetchval("SELECT count(*) FROM pending") == 0  # not pushed as zero stock
