"""The admin commands (status, queue, log, orders, tasks) against a real SQLite file.

Most tests build the parser with add_admin_commands and call run_admin in-process (fast); one runs
the real `python -m connex_tui.cli` once cli.py wires the commands in.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connex_tui.admin import ADMIN_COMMANDS, add_admin_commands, parse_since, run_admin, utc_text
from connex_tui.engine.config import Config
from connex_tui.engine.db import Database

from .conftest import PASSWORD, make_config

NOW = datetime.now(timezone.utc)
LONG_ERROR = "store said 422: " + "the quantity could not be saved because the product is archived; " * 3 + "END"
CLI_PY = Path(__file__).resolve().parent.parent / "connex_tui" / "cli.py"


def at(**delta: float) -> str:
    return (NOW + timedelta(**delta)).isoformat(timespec="milliseconds")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="connex-tui")
    sub = root.add_subparsers(dest="command")
    add_admin_commands(sub, lambda p: p.add_argument("--config", metavar="PATH"))
    return root


async def admin(config: Config, *argv: str) -> tuple[int, str]:
    args = parser().parse_args(argv)
    out = io.StringIO()
    code = await run_admin(args, config, out)
    return code, out.getvalue()


async def admin_json(config: Config, *argv: str) -> tuple[int, Any]:
    code, text = await admin(config, *argv, "--json")
    return code, json.loads(text)


async def seed(config: Config, *, failing: bool = True) -> None:
    """A database as a running engine leaves it; `failing=False` leaves out every failure."""
    db = await Database.open(config.database.path)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO qbwc_sessions(id, ticket_hash, client, started, last_seen, ended, requests, result)"
                " VALUES (1, 'h1', 'QBWC 2.3', ?, ?, ?, 14, 'ok')",
                (at(minutes=-20), at(minutes=-19), at(minutes=-19)),
            )
            orders = [
                (1, "S-1001", "1001", "completed", "posted", "TX-1001", None, at(seconds=-50), at(seconds=-40)),
                (3, "S-1003", "1003", "processing", "new", None, None, at(seconds=-30), at(seconds=-30)),
            ]
            if failing:
                orders.append(
                    (
                        2,
                        "S-1002",
                        "1002",
                        "processing",
                        "failed",
                        None,
                        "line 2 has no SKU",
                        at(minutes=-50),
                        at(minutes=-19),
                    )
                )
            for oid, store_id, number, status, state, txn, error, imported, updated in orders:
                await conn.execute(
                    "INSERT INTO orders(id, store_id, number, status, qb_state, ref_number, txn_id, error,"
                    " imported_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (oid, store_id, number, status, state, number, txn, error, imported, updated),
                )
                await conn.execute(
                    "INSERT INTO order_lines(order_id, line_no, sku, quantity) VALUES (?, 1, 'redwine', '2')", (oid,)
                )
            pending = [
                ("whitewine", "12", "pending", 1, at(minutes=5), "timeout"),
                ("rose", "3", "in_flight", 0, at(minutes=-1), None),
            ]
            if failing:
                pending.append(("redwine", "15", "failed", 5, at(minutes=-30), LONG_ERROR))
            await conn.executemany(
                "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                [(*row, at(minutes=-30)) for row in pending],
            )
            log = [
                ("2025-01-01T12:00:00.000+00:00", "beer", "1", "2", 1, ""),
                (
                    "2025-01-03T12:00:00.000+00:00",
                    "cider",
                    "4",
                    "5",
                    0 if failing else 1,
                    "SKU not found on the store" if failing else "",
                ),
                (at(days=-3), "redwine", "10", "12", 1, ""),
                (at(hours=-2), "redwine", "12", "15", 0 if failing else 1, "store said 500" if failing else ""),
                (at(minutes=-10), "whitewine", "8", "12", 1, ""),
            ]
            await conn.executemany(
                "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,?,?)", log
            )
            await conn.executemany(
                "INSERT INTO tasks(name, interval_seconds, last_run, next_run, last_result) VALUES (?,?,?,?,?)",
                [
                    ("catalog", 3600, at(minutes=-40), at(minutes=20), "ok: 300 SKUs"),
                    ("inventory", 30, at(minutes=-3), at(hours=1), "ok: pushed 3"),
                    ("orders", 300, at(minutes=-1), at(minutes=4), "ok: 2 imported"),
                ],
            )
            await conn.executemany(
                "INSERT INTO events(at, level, kind, message) VALUES (?,?,?,?)",
                [
                    (at(minutes=-19), "info", "SessionEnded", "session 1 ok"),
                    (at(minutes=-2), "warning", "StockPushed", "1 failed"),
                ],
            )
    finally:
        await db.close()


@pytest.fixture
async def seeded(config_factory: Callable[..., Config]) -> Config:
    config = config_factory()
    await seed(config)
    return config


@pytest.fixture
async def healthy(tmp_path: Path) -> Config:
    config = make_config(tmp_path / "healthy")
    await seed(config, failing=False)
    return config


async def fetch(config: Config, sql: str, params: tuple = ()) -> list[Any]:
    db = await Database.open(config.database.path)
    try:
        return [tuple(row) for row in await db.fetchall(sql, params)]
    finally:
        await db.close()


def assert_plain(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 100, line
        assert "\x1b" not in line


def test_registers_the_contracted_commands() -> None:
    assert ADMIN_COMMANDS == frozenset({"status", "queue", "log", "orders", "tasks"})
    root = parser()
    for argv in (
        ["status"],
        ["queue"],
        ["queue", "list", "--failed"],
        ["queue", "retry", "--all-failed"],
        ["queue", "drop", "a"],
        ["log", "--since", "2h"],
        ["orders", "--failed"],
        ["tasks"],
        ["tasks", "run", "orders"],
    ):
        args = root.parse_args([*argv, "--json", "--config", "x.toml"])
        assert args.command == argv[0] and args.json is True and args.config == "x.toml"
    # Options given before a sub-action survive it.
    args = root.parse_args(["queue", "--json", "--config", "y.toml", "list"])
    assert args.json is True and args.config == "y.toml"
    assert not hasattr(root.parse_args(["status"]), "json")


# --- status -------------------------------------------------------------------------------------


async def test_status_healthy_exits_0(healthy: Config) -> None:
    code, text = await admin(healthy, "status")
    assert code == 0, text
    assert_plain(text)
    lines = dict((line[:16].strip(), line[16:]) for line in text.splitlines() if line[:16].strip())
    assert lines["health"] == "ok"
    assert lines["web connector"].startswith("#1 started ") and "14 requests, ok" in lines["web connector"]
    assert lines["store"].startswith("ok")
    assert lines["orders"] == "2 imported today, 1 posted today, 0 failed"
    assert lines["stock queue"].startswith("1 pending, 1 in flight, 0 failed")
    assert lines["paused"] == "no"
    assert "inventory" in text and "catalog" in text and "recent failures" not in text
    assert PASSWORD not in text

    code, doc = await admin_json(healthy, "status")
    assert code == 0
    assert doc["healthy"] is True and doc["problems"] == []
    assert doc["failed_skus"] == 0 and doc["in_flight"] == 1 and doc["orders_failed"] == 0
    assert doc["last_session"]["result"] == "ok" and doc["store"]["state"] == "ok"
    assert [t["name"] for t in doc["tasks"]] == ["catalog", "inventory", "orders"]
    assert len(doc["pushes_per_minute"]) == 30


async def test_status_failing_exits_1_and_says_why(seeded: Config) -> None:
    code, text = await admin(seeded, "status")
    assert code == 1
    assert_plain(text)
    assert text.startswith("health          FAILING: 1 failed SKU, 1 failed order")
    assert "recent failures" in text and "order 1002: line 2 has no SKU" in text
    code, doc = await admin_json(seeded, "status")
    assert code == 1 and doc["healthy"] is False
    assert doc["problems"] == ["1 failed SKU", "1 failed order"]


@pytest.mark.parametrize(
    "breakage, problem",
    [
        (
            "UPDATE qbwc_sessions SET result = 'error', error = 'QuickBooks is not running'",
            "last Web Connector session: error",
        ),
        (
            "UPDATE tasks SET last_result = 'error: store rejected the credentials (401)', last_run = '2999-01-01'"
            " WHERE name = 'orders'",
            "store: credentials",
        ),
        (
            "UPDATE tasks SET last_result = 'error: store unavailable', last_run = '2999-01-01' WHERE name = 'orders'",
            "store: unreachable",
        ),
        ("UPDATE pending SET state = 'failed' WHERE sku = 'whitewine'", "1 failed SKU"),
        ("UPDATE orders SET qb_state = 'failed', error = 'boom' WHERE id = 3", "1 failed order"),
    ],
)
async def test_status_each_kind_of_failure_exits_1(healthy: Config, breakage: str, problem: str) -> None:
    db = await Database.open(healthy.database.path)
    async with db.transaction() as conn:
        await conn.execute(breakage)
    await db.close()
    code, text = await admin(healthy, "status")
    assert code == 1 and problem in text.splitlines()[0]
    code, doc = await admin_json(healthy, "status")
    assert code == 1 and doc["healthy"] is False and doc["problems"] == [problem]


# --- queue --------------------------------------------------------------------------------------


async def test_queue_list_text_and_json(seeded: Config) -> None:
    code, text = await admin(seeded, "queue", "list")
    assert code == 1
    assert_plain(text)
    header, *rows = text.splitlines()
    assert header.split() == ["SKU", "QTY", "STATE", "ATTEMPTS", "NEXT", "ATTEMPT", "LAST", "ERROR"]
    assert [r.split()[0] for r in rows] == ["redwine", "rose", "whitewine"]  # failed first, then by due time
    # Aligned: every column starts where its header does.
    for title in ("QTY", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"):
        start = header.index(title)
        assert all(r[start - 1] == " " for r in rows if len(r) > start)
    assert rows[0][header.index("STATE") :].startswith("failed")
    assert rows[0].endswith("...") and "END" not in rows[0]  # truncated in text
    assert utc_text(at(minutes=-30)) in rows[0] and utc_text(at(minutes=-30)).endswith("Z")

    code, doc = await admin_json(seeded, "queue", "list")
    assert code == 1
    assert doc[0] == {
        "sku": "redwine",
        "quantity": "15",
        "state": "failed",
        "attempts": 5,
        "next_attempt": at(minutes=-30),
        "last_error": LONG_ERROR,
    }
    assert len(doc) == 3

    code, text = await admin(seeded, "queue", "list", "--failed")
    assert code == 1 and len(text.splitlines()) == 2 and "redwine" in text
    code, doc = await admin_json(seeded, "queue", "list", "--sku", "white")
    assert code == 0 and [r["sku"] for r in doc] == ["whitewine"]
    code, text = await admin(seeded, "queue", "list", "--limit", "1")
    assert code == 1 and "(1 of 3 shown; --limit 0 shows all)" in text
    code, text = await admin(seeded, "queue")  # no action: list
    assert code == 1 and "redwine" in text


async def test_queue_retry_makes_failed_pending_and_wakes_inventory(seeded: Config) -> None:
    code, text = await admin(seeded, "queue", "retry", "redwine")
    assert code == 0 and text.startswith("retried 1 SKU:")
    [(state, attempts, error, due)] = await fetch(
        seeded, "SELECT state, attempts, last_error, next_attempt FROM pending WHERE sku = 'redwine'"
    )
    assert (state, attempts, error) == ("pending", 0, None)
    assert datetime.fromisoformat(due) <= datetime.now(timezone.utc)
    [(next_run,)] = await fetch(seeded, "SELECT next_run FROM tasks WHERE name = 'inventory'")
    assert datetime.fromisoformat(next_run) <= datetime.now(timezone.utc)  # was an hour away


async def test_queue_retry_all_failed(seeded: Config) -> None:
    code, doc = await admin_json(seeded, "queue", "retry", "--all-failed")
    assert code == 0 and doc == {"action": "retry", "changed": 1, "not_in_queue": [], "in_flight": []}
    assert await fetch(seeded, "SELECT count(*) FROM pending WHERE state = 'failed'") == [(0,)]
    code, text = await admin(seeded, "queue", "retry", "--all-failed")
    assert code == 0 and text.startswith("retried 0 failed SKUs")


async def test_queue_drop_and_unknown_sku(seeded: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = await admin(seeded, "queue", "drop", "whitewine", "no-such-sku")
    assert code == 1
    assert text == "dropped 1 SKU from the queue\n"
    assert "not in the queue: no-such-sku" in capsys.readouterr().err
    assert await fetch(seeded, "SELECT sku FROM pending ORDER BY sku") == [("redwine",), ("rose",)]

    code, doc = await admin_json(seeded, "queue", "retry", "redwine", "ghost")
    assert code == 1 and doc["changed"] == 1 and doc["not_in_queue"] == ["ghost"]
    assert "ghost" in capsys.readouterr().err
    assert await fetch(seeded, "SELECT state FROM pending WHERE sku = 'redwine'") == [("pending",)]


async def test_queue_in_flight_and_usage_errors(seeded: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await admin(seeded, "queue", "drop", "rose")
    assert code == 1 and "being pushed right now" in capsys.readouterr().err
    assert await fetch(seeded, "SELECT count(*) FROM pending WHERE sku = 'rose'") == [(1,)]
    code, _ = await admin(seeded, "queue", "retry")
    assert code == 2 and "--all-failed" in capsys.readouterr().err
    code, _ = await admin(seeded, "queue", "retry", "redwine", "--all-failed")
    assert code == 2 and "not both" in capsys.readouterr().err


# --- log ----------------------------------------------------------------------------------------


async def test_log_newest_first_text_and_json(seeded: Config) -> None:
    code, text = await admin(seeded, "log")
    assert code == 1
    assert_plain(text)
    header, *rows = text.splitlines()
    assert header.split() == ["AT", "SKU", "OLD", "NEW", "RESULT", "REASON"]
    assert [r.split()[1] for r in rows] == ["whitewine", "redwine", "redwine", "cider", "beer"]
    assert rows[-1].startswith("2025-01-01T12:00:00Z")
    assert "FAILED" in rows[1] and "store said 500" in rows[1]

    code, doc = await admin_json(seeded, "log", "--failed")
    assert code == 1 and [(r["sku"], r["ok"]) for r in doc] == [("redwine", False), ("cider", False)]
    assert set(doc[0]) == {"id", "at", "sku", "old_qty", "new_qty", "ok", "reason"}
    code, doc = await admin_json(seeded, "log", "--sku", "white")
    assert code == 0 and [r["sku"] for r in doc] == ["whitewine"]
    code, doc = await admin_json(seeded, "log", "--limit", "2")
    assert len(doc) == 2


async def test_log_since_relative_and_absolute(seeded: Config) -> None:
    code, doc = await admin_json(seeded, "log", "--since", "1h")
    assert code == 0 and [r["sku"] for r in doc] == ["whitewine"]  # no failure shown: exit 0
    code, doc = await admin_json(seeded, "log", "--since", "150m")
    assert code == 1 and [r["sku"] for r in doc] == ["whitewine", "redwine"]
    code, doc = await admin_json(seeded, "log", "--since", "4d")
    assert [r["sku"] for r in doc] == ["whitewine", "redwine", "redwine"]
    code, doc = await admin_json(seeded, "log", "--since", "2025-01-02")
    assert [r["sku"] for r in doc] == ["whitewine", "redwine", "redwine", "cider"]
    code, doc = await admin_json(seeded, "log", "--since", "2025-01-03T12:00")
    assert doc[-1]["sku"] == "cider"
    code, doc = await admin_json(seeded, "log", "--since", "2025-01-03T12:00:01")
    assert "cider" not in [r["sku"] for r in doc]
    code, text = await admin(seeded, "log", "--since", "1s")
    assert code == 0 and text == "no log lines match\n"


async def test_log_bad_since_is_one_line_exit_2(seeded: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = await admin(seeded, "log", "--since", "yesterday")
    assert code == 2 and text == ""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'yesterday'" in err[0] and "2026-11-27T10:00" in err[0] and "15m" in err[0]


def test_parse_since_forms() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    assert parse_since("15m", now) == "2026-11-27T11:45:00.000+00:00"
    assert parse_since("2h", now) == "2026-11-27T10:00:00.000+00:00"
    assert parse_since("3d", now) == "2026-11-24T12:00:00.000+00:00"
    assert parse_since("2026-11-27", now) == "2026-11-27T00:00:00.000+00:00"
    assert parse_since("2026-11-27T10:00", now) == "2026-11-27T10:00:00.000+00:00"
    assert parse_since("2026-11-27T10:00:00+02:00", now) == "2026-11-27T08:00:00.000+00:00"
    assert parse_since("2026-11-27T10:00Z", now) == "2026-11-27T10:00:00.000+00:00"
    for bad in ("", "yesterday", "15x", "-2h", "2026-13-01"):
        with pytest.raises(Exception, match="not a time"):
            parse_since(bad, now)


# --- orders -------------------------------------------------------------------------------------


async def test_orders_text_json_and_exit(seeded: Config, healthy: Config) -> None:
    code, text = await admin(seeded, "orders")
    assert code == 1
    assert_plain(text)
    header, *rows = text.splitlines()
    assert header.split() == ["NUMBER", "STATUS", "QB", "STATE", "TXN", "ID", "ERROR"]
    assert [r.split()[0] for r in rows] == ["1002", "1003", "1001"]  # failed first, then newest
    assert "line 2 has no SKU" in rows[0] and "TX-1001" in rows[2]

    code, doc = await admin_json(seeded, "orders", "--failed")
    assert code == 1 and len(doc) == 1
    assert doc[0]["number"] == "1002" and doc[0]["qb_state"] == "failed" and doc[0]["error"] == "line 2 has no SKU"
    assert {"txn_id", "status", "qb_kind", "imported_at", "updated_at"} <= set(doc[0])

    code, doc = await admin_json(healthy, "orders")
    assert code == 0 and [o["number"] for o in doc] == ["1003", "1001"]
    code, text = await admin(healthy, "orders", "--failed")
    assert code == 0 and text == "no failed orders\n"


# --- tasks --------------------------------------------------------------------------------------


async def test_tasks_list_and_run(seeded: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = await admin(seeded, "tasks")
    assert code == 0
    assert_plain(text)
    header, *rows = text.splitlines()
    assert header.split() == ["NAME", "EVERY", "LAST", "RUN", "NEXT", "RUN", "LAST", "RESULT"]
    assert [r.split()[:2] for r in rows] == [["catalog", "1h"], ["inventory", "30s"], ["orders", "5m"]]
    assert rows[2].endswith("ok: 2 imported")
    code, doc = await admin_json(seeded, "tasks", "list")
    assert doc[1] == {
        "name": "inventory",
        "interval_seconds": 30,
        "last_run": at(minutes=-3),
        "next_run": at(hours=1),
        "last_result": "ok: pushed 3",
    }

    code, text = await admin(seeded, "tasks", "run", "catalog")
    assert code == 0 and text.startswith("catalog: due now")
    [(next_run,)] = await fetch(seeded, "SELECT next_run FROM tasks WHERE name = 'catalog'")
    assert datetime.fromisoformat(next_run) <= datetime.now(timezone.utc)

    code, text = await admin(seeded, "tasks", "run", "nope")
    assert code == 2 and text == ""
    err = capsys.readouterr().err
    assert "nope" in err and "catalog, inventory, orders" in err


# --- the edges ----------------------------------------------------------------------------------


async def test_missing_database_is_exit_2_and_not_created(
    config_factory: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_factory()
    code, text = await admin(config, "status")
    assert code == 2 and text == "" and "no database yet" in capsys.readouterr().err
    assert not config.database.path.exists()


async def test_empty_database_reads_cleanly(config_factory: Callable[..., Config]) -> None:
    config = config_factory()
    await (await Database.open(config.database.path)).close()
    assert await admin(config, "queue") == (0, "the queue is empty\n")
    assert await admin(config, "log") == (0, "no log lines match\n")
    assert await admin(config, "orders") == (0, "no orders yet\n")
    assert (await admin(config, "tasks"))[0] == 0
    code, text = await admin(config, "status")
    assert code == 0 and "no session yet" in text


def test_admin_module_imports_neither_textual_nor_rich() -> None:
    code = (
        "import sys, connex_tui.admin\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif("ADMIN_COMMANDS" not in CLI_PY.read_text(), reason="not wired into cli.py yet")
async def test_real_cli_runs_the_admin_commands(tmp_path: Path) -> None:
    config_file = tmp_path / "connex.toml"
    config_file.write_text(
        '[database]\npath = "state/connex.db"\n[qbwc]\npassword_env = "QBWC_PW"\n[storefront]\nplatform = "none"\n'
    )
    config_file.chmod(0o600)
    from connex_tui.engine.config import load_config

    await seed(load_config(config_file, {"QBWC_PW": PASSWORD}))

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "connex_tui.cli", *argv, "--config", str(config_file)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "QBWC_PW": PASSWORD},
        )

    status = cli("status")
    assert status.returncode == 1 and status.stdout.startswith("health          FAILING"), status.stderr
    listed = cli("queue", "list", "--json")
    assert listed.returncode == 1 and json.loads(listed.stdout)[0]["sku"] == "redwine"
    bad = cli("log", "--since", "soon")
    assert bad.returncode == 2 and "'soon'" in bad.stderr
    assert PASSWORD not in status.stdout + listed.stdout + status.stderr
