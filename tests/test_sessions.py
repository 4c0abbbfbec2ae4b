"""The session planner's bookkeeping: tickets, time, secrets, and the database it writes."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connex_tui.engine.db import Database
from connex_tui.engine.logs import configure_logging
from connex_tui.engine.orders import add_order
from connex_tui.storefronts.base import StoreLine, StoreOrder
from connex_tui.engine.qbwc_session import QBWCSessions, hash_ticket
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorSim

from .clocks import ManualClock
from .conftest import PASSWORD


@pytest.fixture
async def planner(config_factory):
    config = config_factory()
    clock = ManualClock(datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc))
    db = await Database.open(config.database.path, clock)
    yield QBWCSessions(db, config), clock, db
    await db.close()


async def send(planner: QBWCSessions, ticket: str) -> str:
    return await planner.send_request_xml(ticket, "", "c.qbw", "US", "13", "0")


async def test_tickets_are_random_stored_hashed_and_expire_after_30_idle_minutes(planner) -> None:
    sessions, clock, db = planner
    ticket, answer = await sessions.authenticate("qbwc", PASSWORD, "127.0.0.1")
    other, _ = (await sessions.authenticate("qbwc", PASSWORD, "127.0.0.1"))[0], None
    assert answer == "" and len(ticket) >= 32 and other == ""  # second is busy
    stored = await db.fetchval("SELECT ticket_hash FROM qbwc_sessions")
    assert stored == hash_ticket(ticket) and ticket not in stored
    assert await send(sessions, ticket)  # in use: fine

    clock.at += timedelta(minutes=29)
    assert await send(sessions, ticket)  # 29 idle minutes: still valid
    clock.at += timedelta(minutes=31)
    assert await send(sessions, ticket) == ""
    assert await sessions.receive_response_xml(ticket, "<QBXML/>", "", "") == -1
    assert "expired" in await sessions.get_last_error(ticket)
    assert await db.fetchval("SELECT result FROM qbwc_sessions") == "expired"


async def test_a_quiet_session_is_superseded_at_once_and_only_a_live_one_answers_busy(planner) -> None:
    """The Web Connector runs one update at a time and ends a run whose connection dropped without
    closeConnection: a new authenticate over a quiet session supersedes it; one that answered a
    call seconds ago belongs to a second Web Connector, which is told when to come back."""
    sessions, clock, db = planner
    first, _ = await sessions.authenticate("qbwc", PASSWORD, "10.0.0.1")
    clock.at += timedelta(seconds=5)
    assert await sessions.authenticate("qbwc", PASSWORD, "10.0.0.2") == ["", "busy", "10", ""]
    clock.at += timedelta(seconds=10)  # 15 s without a call: the first run is over
    second, answer = await sessions.authenticate("qbwc", PASSWORD, "10.0.0.2")
    assert second and answer == ""
    assert await send(sessions, first) == ""  # the superseded ticket is dead
    row = await db.fetchone("SELECT result, error, ended FROM qbwc_sessions WHERE id = 1")
    assert row["result"] == "superseded" and "Superseded by" in row["error"] and row["ended"]
    assert "expired" in await sessions.get_last_error(first)


async def test_a_session_superseded_with_orders_handed_over_keeps_them_in_doubt(planner) -> None:
    sessions, clock, db = planner
    await add_order(db, StoreOrder("s-1", "S1", (StoreLine("redwine", Decimal(1)),)))
    first, _ = await sessions.authenticate("qbwc", PASSWORD, "10.0.0.1")
    assert "SalesReceiptAddRq" in await send(sessions, first)  # handed over; the answer never comes
    clock.at += timedelta(seconds=90)
    second, answer = await sessions.authenticate("qbwc", PASSWORD, "10.0.0.1")
    assert answer == ""
    # The new session looks the order up first; it is not added again.
    request = await send(sessions, second)
    assert "SalesReceiptQueryRq" in request and "SalesReceiptAddRq" not in request
    assert await db.fetchval("SELECT qb_state FROM orders") == "sent"


async def test_none_when_items_were_read_recently_and_no_orders_wait(planner) -> None:
    sessions, clock, db = planner
    async with db.transaction() as conn:
        await db.set_meta(conn, "items.last_complete", clock.at.isoformat())
    clock.at += timedelta(seconds=30)
    ticket, answer, come_back, _ = await sessions.authenticate("qbwc", PASSWORD, "")
    assert answer == "none" and ticket
    assert come_back == "30"  # items are due for a read in 30 s: the Web Connector postpones until then
    assert await db.fetchval("SELECT ended IS NOT NULL FROM qbwc_sessions") == 1
    clock.at += timedelta(seconds=31)  # read_min_interval_seconds = 60 has passed
    assert (await sessions.authenticate("qbwc", PASSWORD, ""))[1] == ""


async def test_wrong_credentials_are_compared_in_full_and_not_logged(planner) -> None:
    sessions, _, db = planner
    stream = io.StringIO()
    configure_logging(level="info", secrets=[PASSWORD], stream=stream)
    try:
        for user, password in (("qbwc", PASSWORD + "x"), ("qbwc", PASSWORD[:-1]), ("QBWC", PASSWORD), ("qbwc", "")):
            assert await sessions.authenticate(user, password, "1.2.3.4") == ["", "nvu"]
    finally:
        configure_logging(level="warning", json=False)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [l["event"] for l in lines] == ["qbwc_auth_failed"] * 4
    # Not even a wrong password (which the redactor does not know) is written.
    assert PASSWORD[:-1] not in stream.getvalue()


async def test_a_whole_sync_logs_no_secret(engine_factory, config_factory, http) -> None:
    stream = io.StringIO()
    config = config_factory()
    configure_logging(level="debug", secrets=config.secrets(), stream=stream)
    try:
        engine = await engine_factory(config)
        qb = QuickBooksSim()
        qb.add_item("redwine", 20)
        await add_order(engine.db, StoreOrder("s-1", "1", (StoreLine("redwine", Decimal(5)),)))
        await add_order(engine.db, StoreOrder("s-2", "2", (StoreLine("missing", Decimal(1)),)))
        await WebConnectorSim(engine.url, "qbwc", PASSWORD, qb, http=http).run_once()
        await WebConnectorSim(engine.url, "qbwc", "wrong-" + PASSWORD, qb, http=http).run_once()
    finally:
        configure_logging(level="warning", json=False)
    text = stream.getvalue()
    assert "order_posted" in text and "order_failed" in text and "qbwc_auth_failed" in text
    assert PASSWORD not in text


def test_redactor_masks_a_secret_that_slips_into_a_message() -> None:
    stream = io.StringIO()
    configure_logging(level="info", secrets=["hunter2-secret"], stream=stream)
    try:
        import structlog

        structlog.get_logger("t").error("boom", detail="token was hunter2-secret!", nested={"k": ["hunter2-secret"]})
    finally:
        configure_logging(level="warning", json=False)
    line = json.loads(stream.getvalue())
    assert line["detail"] == "token was ***!" and line["nested"] == {"k": ["***"]}


async def test_database_is_wal_with_foreign_keys_and_migrates_once(tmp_path) -> None:
    db = await Database.open(tmp_path / "x.db")
    try:
        assert await db.fetchval("PRAGMA journal_mode") == "wal"
        assert await db.fetchval("PRAGMA foreign_keys") == 1
        version = await db.schema_version()
        assert version >= 1
        assert await db.migrate() == version  # idempotent
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO order_lines(order_id, line_no, sku, quantity) VALUES (999, 1, 'x', '1')"
                )
        # A failed transaction leaves nothing behind.
        assert await db.fetchval("SELECT count(*) FROM order_lines") == 0
    finally:
        await db.close()


async def test_an_order_is_kept_once(planner) -> None:
    _, _, db = planner
    order = StoreOrder("w-1", "1", (StoreLine("redwine", Decimal(2)),))
    assert await add_order(db, order) is not None
    assert await add_order(db, order) is None
    assert await db.fetchval("SELECT count(*) FROM order_lines") == 1


async def test_available_quantity_holds_back_units_not_yet_in_quickbooks(engine, qb, web_connector) -> None:
    """QuickBooks says 20, but 3 units are in a store order QuickBooks has not received yet: 17."""
    await add_order(engine.db, StoreOrder("w-2", "2", (StoreLine("REDWINE", Decimal(3)),)))
    async with engine.db.transaction() as conn:
        await conn.execute("UPDATE orders SET qb_state = 'failed'")  # stays out of this session
    await web_connector.run_once()
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'redwine'") == "20"
    async with engine.db.transaction() as conn:
        await conn.execute("UPDATE orders SET qb_state = 'new'")
    qb.locked_items.add("redwine")  # QuickBooks refuses it this time: still not received
    qb.adjust_quantity("redwine", 1)  # and someone counted one more bottle: 21 on hand
    await engine.db.conn.execute("DELETE FROM meta WHERE key = 'items.last_complete'")
    await web_connector.run_once()
    assert await engine.db.fetchval("SELECT quantity FROM pending WHERE sku = 'redwine'") == "18"


def test_session_state_is_typed_and_reads_what_an_earlier_version_saved() -> None:
    from connex_tui.engine.session_state import Outstanding, SessionState, TxnScan

    # As the planner before the split saved it (plain dicts, "from" for the iterator's start).
    legacy = json.dumps(
        {
            "version": "13.0",
            "done": 3,
            "outstanding": {"items-inventory-3": {"type": "items", "kind": "inventory", "rs": "ItemInventoryQueryRs"}},
            "items": {
                "phase": 0,
                "iterator_id": "{it}",
                "remaining": 7,
                "max_seen": "2026-11-27T10:00:00",
                "restarts": 0,
                "from": "2026-11-26T09:00:00",
            },
            "posted": 2,
            "failed": 1,
            "found": 0,
            "items_read": 100,
            "queued": 4,
            "error": None,
            "finished": False,
        }
    )
    state = SessionState.from_json(legacy)
    assert state.items.start == "2026-11-26T09:00:00" and state.items.iterator_id == "{it}"
    assert state.outstanding == {"items-inventory-3": Outstanding("items", "ItemInventoryQueryRs", kind="inventory")}
    assert (
        state.txns is None
        and state.touched is None
        and state.summary() == "OK: 2 orders posted, 1 failed, 100 items read"
    )
    state.txns = {"Bill": TxnScan(start="2026-11-27T10:00:00", remaining=3)}
    again = SessionState.from_json(state.to_json())
    assert again == state
    saved = json.loads(state.to_json())
    assert {"posted", "found", "failed", "queued", "items_read"} <= saved.keys()  # what monitors read
