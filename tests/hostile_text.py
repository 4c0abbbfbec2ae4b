"""Hostile text: store and QuickBooks values that are markup, terminal commands or just too long,
written into every text column the interface and the admin commands show.

`HOSTILE` names each value; `seed_hostile(path, values)` adds rows carrying them to a database that
already holds the fixed data of `tui_fixtures.seed_database` (SKUs, item names in error messages,
order numbers, customers, store errors, task results, session errors, events).
`escapes_in(text)` finds what a terminal would take as a command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from connex_tui.engine.db import Database
from connex_tui.textsafe import UNSAFE

from .tui_fixtures import ago, ahead

ESC, BEL = "\x1b", "\x07"
HOSTILE: dict[str, str] = {
    "close-tag": "[/]",
    "click": "[@click=app.quit]x[/]",
    "bold": "[bold]x",
    "variable": "[$text-error]$x[/]",
    "title": f"{ESC}]0;PWNED{BEL}",
    "clipboard": f"{ESC}]52;c;Y2xpcGJvYXJk{BEL}",
    "clear": f"{ESC}[2J",
    "csi-c1": "\x9b2J\x9d0;C1TITLE\x9c",
    "rlo": "\u202eevil.exe",
    "isolates": "\u2066a\u2069\u2067b\u2069\u200e\u200f\u061c",
    "nul-del": "a\x00b\x7fc\x08d\rX",
    "long": "L" * 4990 + "-END",
}
LONG = HOSTILE["long"]

# What must never reach a terminal: the OSC / CSI introducers (7-bit and C1), BEL, bidi controls.
_TERMINAL_COMMAND = re.compile(r"\x1b[\[\]PX^_]|[\x07\x9b\x9d\x90\x98\x9e\x9f]")


def escapes_in(text: str) -> list[str]:
    """Every unsafe character in `text` (as its repr), empty when a terminal can show it as is."""
    return [repr(m.group()) for m in UNSAFE.finditer(text)]


def has_terminal_command(text: str) -> bool:
    return bool(_TERMINAL_COMMAND.search(text))


async def seed_hostile(path: Path, values: Sequence[str], *, tag: str = "H") -> None:
    """Add one row per value to every table the interface and the admin commands read."""
    db = await Database.open(path)
    try:
        async with db.transaction() as conn:
            for n, value in enumerate(values):
                key = f"{value}{tag}{n}"  # unique per value (SKUs and store ids are keys)
                item = f'QuickBooks 3140: invalid reference to QuickBooks Item "{value}" in the SalesReceipt line'
                # A failed and a pending SKU, listed first and shown on the dashboard.
                await conn.execute(
                    "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
                    " VALUES (?, ?, 'failed', 3, ?, ?, ?)",
                    (key, value if n % 2 else "7", ago(minutes=1), f"store said: {value}", ago(minutes=1)),
                )
                await conn.execute(
                    "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
                    " VALUES (?, '4', 'pending', 1, ?, ?, ?)",
                    (f"P{key}", ahead(minutes=5), value, ago(minutes=1)),
                )
                await conn.execute(
                    "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?, ?, ?, ?, 0, ?)",
                    (ago(seconds=1), key, value, "3", item),
                )
                await conn.execute(
                    "INSERT INTO orders(store_id, number, status, customer, qb_state, qb_kind, ref_number, txn_id,"
                    " error, imported_at, updated_at) VALUES (?, ?, ?, ?, 'failed', 'sales_receipt', ?, ?, ?, ?, ?)",
                    (
                        f"wc-{key}",
                        key,
                        value,
                        value,
                        value,
                        value,
                        f"store error: {value}",
                        ago(seconds=30),
                        ago(seconds=n + 1),
                    ),
                )
                await conn.execute(
                    "INSERT INTO events(at, level, kind, message) VALUES (?, 'error', ?, ?)",
                    (ago(seconds=1), value[:40], f"order {value} failed: {item}"),
                )
                await conn.execute(
                    "INSERT INTO tasks(name, interval_seconds, last_run, next_run, last_result)"
                    " VALUES (?, 60, ?, ?, ?)",
                    (key, ago(seconds=5), ahead(seconds=55), f"error: {value}"),
                )
            joined = " | ".join(values)
            # The store's last word (the dashboard's Store panel) and the last Web Connector session.
            await conn.execute(
                "UPDATE tasks SET last_run = ?, last_result = ? WHERE name = 'inventory'",
                (ago(seconds=1), f"error: {joined}"),
            )
            await conn.execute(
                "INSERT INTO qbwc_sessions(ticket_hash, client, started, last_seen, ended, requests, result, error)"
                " VALUES (?, ?, ?, ?, ?, 3, ?, ?)",
                (
                    f"hostile-{tag}",
                    joined[:200],
                    ago(seconds=20),
                    ago(seconds=10),
                    ago(seconds=10),
                    joined[:300],
                    joined,
                ),
            )
    finally:
        await db.close()
