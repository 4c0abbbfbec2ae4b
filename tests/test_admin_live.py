"""Admin commands run beside a live engine in the middle of a Web Connector session: they open the
database and nothing else. No session is closed, no queue row is reset, the store is not asked
anything, and the session then finishes normally (issue 9, point 5)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from connex_tui.sim.webconnector import WebConnectorSim

from .conftest import PASSWORD
from .test_sync_e2e import Sync, start_sync


def write_toml(path: Path, sync: Sync) -> Path:
    store = sync.store.storefront_config()
    lines = [
        "[database]",
        f'path = "{sync.config.database.path}"',
        "[qbwc]",
        'password_env = "QBWC_PW"',
        "[storefront]",
        *(f'{key} = "{value}"' for key, value in store.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


async def cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "connex_tui.cli", *argv, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "QBWC_PW": PASSWORD},
        )

    return await asyncio.to_thread(run)  # the engine keeps answering in this loop meanwhile


def store_requests(sync: Sync) -> int:
    return sum(sync.store.emulator.counters.values())


async def test_admin_commands_in_the_middle_of_a_live_session_disturb_nothing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    sync = await start_sync(tmp_path, "woocommerce", http)
    try:
        sync.store.order([("redwine", 5)])
        await sync.import_orders()
        config = write_toml(tmp_path / "admin.toml", sync)
        wc = WebConnectorSim(sync.engine.url, "qbwc", PASSWORD, sync.qb, http=http)
        ticket, answer = await wc.call("authenticate", strUserName="qbwc", strPassword=PASSWORD)
        assert answer == ""
        sync.qb.begin_session()
        request = await wc.call(
            "sendRequestXML",
            ticket=ticket,
            strHCPResponse=sync.qb.host_query_response(),
            strCompanyFileName=sync.qb.company_file,
            qbXMLCountry="US",
            qbXMLMajorVers=13,
            qbXMLMinorVers=0,
        )
        assert "SalesReceiptAddRq" in request
        # A stock push is in flight at this moment (the pusher marked it, the store has not answered).
        async with sync.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, updated_at, pushed_quantity)"
                " VALUES ('other', '4', 'in_flight', 0, '2000-01-01', '2000-01-01', '4')"
            )
        before = store_requests(sync)

        commands = [
            ("qwc",),
            ("status",),
            ("queue",),
            ("queue", "list"),
            ("log",),
            ("orders",),
            ("tasks",),
            ("map",),
            ("map", "WEB-RED", "redwine"),
            ("company",),
        ]
        for argv in commands:
            result = await cli(config, *argv)
            assert result.returncode in (0, 1), (argv, result.stderr)
            assert "Traceback" not in result.stderr, (argv, result.stderr)
        init = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "connex_tui.cli", "init", str(tmp_path / "new.toml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert init.returncode == 0, init.stderr

        assert store_requests(sync) == before  # no store request
        session = await sync.db.fetchone("SELECT ended, result FROM qbwc_sessions")
        assert session["ended"] is None and session["result"] is None  # not closed as interrupted
        assert await sync.db.fetchval("SELECT state FROM pending WHERE sku = 'other'") == "in_flight"
        assert await sync.db.fetchval("SELECT qb_state FROM orders") == "sent"

        # The session finishes normally.
        percent = await wc.call(
            "receiveResponseXML", ticket=ticket, response=sync.qb.process(request), hresult="", message=""
        )
        while 0 <= percent < 100:
            request = await wc.call(
                "sendRequestXML",
                ticket=ticket,
                strHCPResponse="",
                strCompanyFileName=sync.qb.company_file,
                qbXMLCountry="US",
                qbXMLMajorVers=13,
                qbXMLMinorVers=0,
            )
            percent = await wc.call(
                "receiveResponseXML", ticket=ticket, response=sync.qb.process(request), hresult="", message=""
            )
        assert percent == 100
        closing = await wc.call("closeConnection", ticket=ticket)
        assert closing.startswith("OK: 1 orders posted")
        assert await sync.db.fetchval("SELECT qb_state FROM orders") == "posted"
        assert await sync.db.fetchval("SELECT result FROM qbwc_sessions") == "ok"
    finally:
        await sync.stop()
