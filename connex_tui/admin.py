"""Admin commands: status, queue, log, orders, tasks — what a person or a script asks a running
(or stopped) engine, straight from its database.

They read through `engine.views` and steer through `engine.admin_commands` (plain database writes a
running engine notices within a second); they never start an engine or an endpoint. Nothing here
imports Textual or Rich: these run on servers, from cron and monitoring scripts.

Exit codes: 0 all is well, 1 something shown is failing (or a SKU named was not in the queue),
2 a usage error (a bad --since, an unknown task, no database yet).
Text output: fixed-width columns within 100 characters, no colour, times as ISO UTC to the second.
`--json`: one JSON document on stdout, same exit codes; messages go to stderr either way.
Stored text is written through `textsafe`: in text output a control character or bidi override is
shown as an escape (`\\x1b`, `\\u202e`), in JSON as a `\\uXXXX` escape (the exact value for a
script), so nothing read from a store can drive the terminal of whoever runs these.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from .engine import admin_commands, views
from .engine.clock import SYSTEM_CLOCK, Clock, parse_stamp, stamp
from .engine.config import Config
from .engine.db import Database
from .textsafe import safe_json, visible

ADMIN_COMMANDS: frozenset[str] = frozenset({"status", "queue", "log", "orders", "tasks"})

WIDTH = 100  # every text line fits in this many columns
PROG = "connex-tui"

SINCE_FORMS = "an ISO date or time in UTC (2026-11-27, 2026-11-27T10:00) or an age (30s, 15m, 2h, 3d, 1w)"
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageError(Exception):
    """A one-line message on stderr and exit code 2."""


# ---------------------------------------------------------------------------------------------
# The argument parser


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _common(parser: argparse.ArgumentParser, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """--config and --json, accepted before or after a sub-action (`queue --json list`, `queue list --json`).

    Their defaults are SUPPRESS so a nested parser never overwrites a value its parent already
    parsed; read them with getattr(args, name, default).
    """
    known = len(parser._actions)
    add_config(parser)
    for action in parser._actions[known:]:
        action.default = argparse.SUPPRESS
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one JSON document on standard output instead of text",
    )


def _limit(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--limit",
        type=_non_negative,
        default=default,
        metavar="N",
        help=f"show at most N rows (default {default}; 0: all)",
    )


def add_admin_commands(sub: argparse._SubParsersAction, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    status = sub.add_parser(
        "status",
        help="health at a glance (exit 0 healthy, 1 something is failing)",
        description="Last Web Connector session, store connection, order and queue counts, tasks. "
        "Exit 0 when healthy, 1 when anything is failing.",
    )
    _common(status, add_config)

    queue = sub.add_parser(
        "queue",
        help="the stock push queue: list, retry, drop",
        description="The stock push queue. Without an action: list.",
    )
    _common(queue, add_config)
    actions = queue.add_subparsers(dest="queue_action", metavar="{list,retry,drop}")
    listing = actions.add_parser("list", help="list queued SKUs, failed first (exit 1 if any failed)")
    _common(listing, add_config)
    listing.add_argument("--failed", action="store_true", help="only the failed rows")
    listing.add_argument("--sku", default="", metavar="FILTER", help="only SKUs containing FILTER")
    _limit(listing, 100)
    retry = actions.add_parser("retry", help="push SKUs again now, with a fresh count of attempts")
    _common(retry, add_config)
    retry.add_argument("skus", nargs="*", metavar="SKU")
    retry.add_argument("--all-failed", action="store_true", help="retry every failed SKU")
    drop = actions.add_parser("drop", help="remove SKUs from the queue (their stock is not pushed)")
    _common(drop, add_config)
    drop.add_argument("skus", nargs="+", metavar="SKU")

    log = sub.add_parser("log", help="stock pushes, newest first (exit 1 if a failure is shown)")
    _common(log, add_config)
    log.add_argument("--failed", action="store_true", help="only the failed pushes")
    log.add_argument("--sku", default="", metavar="SKU", help="only SKUs containing SKU")
    log.add_argument("--since", metavar="WHEN", help=f"only lines since WHEN: {SINCE_FORMS}")
    _limit(log, 50)

    orders = sub.add_parser("orders", help="imported orders, failed first (exit 1 if any failed)")
    _common(orders, add_config)
    orders.add_argument("--failed", action="store_true", help="only the orders QuickBooks did not take")
    _limit(orders, 50)

    tasks = sub.add_parser(
        "tasks",
        help="scheduled tasks; `tasks run NAME` runs one now",
        description="Scheduled tasks. Without an action: list.",
    )
    _common(tasks, add_config)
    task_actions = tasks.add_subparsers(dest="tasks_action", metavar="{list,run}")
    _common(task_actions.add_parser("list", help="list the tasks"), add_config)
    run = task_actions.add_parser("run", help="make a task due now (a running engine starts it within a second)")
    _common(run, add_config)
    run.add_argument("name", metavar="NAME")


# ---------------------------------------------------------------------------------------------
# Formatting


def utc_text(value: str | None) -> str:
    """A stored timestamp as ISO UTC to the second ("2026-11-27T10:00:05Z"); "-" for none."""
    if not value:
        return "-"
    try:
        moment = parse_stamp(value)
    except ValueError:
        return value
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_since(text: str, now: datetime) -> str:
    """--since WHEN ("15m" before `now`, or a date or time) as a stored timestamp; naive dates
    and times are UTC."""
    age = _AGE.match(text)
    if age:
        moment = now - timedelta(**{_UNITS[age.group(2).lower()]: int(age.group(1))})
    else:
        try:
            moment = parse_stamp(text.strip())
        except ValueError:
            raise UsageError(f"--since {text!r}: not a time; use {SINCE_FORMS}") from None
    return stamp(moment)


def _clean(value: Any) -> str:
    return visible(value)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def _every(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2]) or "0s"


Column = tuple[str, int, bool]  # title, width (the last column takes the rest), right-aligned


def write_table(out: TextIO, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
    widths = [w for _, w, _ in columns[:-1]]
    widths.append(WIDTH - sum(widths) - (len(columns) - 1))

    def line(cells: Sequence[Any]) -> str:
        parts = []
        for (_, _, right), width, cell in zip(columns, widths, cells):
            text = _fit(_clean(cell), width)
            parts.append(text.rjust(width) if right else text.ljust(width))
        return " ".join(parts).rstrip()

    out.write(line([title for title, _, _ in columns]) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


def write_json(out: TextIO, document: Any) -> None:
    out.write(safe_json(document, indent=2) + "\n")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _error(message: str) -> None:
    print(f"{PROG}: {visible(message)}", file=sys.stderr)


def _unlimited(limit: int) -> int:
    return -1 if limit == 0 else limit  # SQLite: LIMIT -1 is no limit


# ---------------------------------------------------------------------------------------------
# The commands


def _problems(dash: views.Dashboard) -> list[str]:
    problems = []
    if dash.failed_skus:
        problems.append(_plural(dash.failed_skus, "failed SKU"))
    if dash.orders_failed:
        problems.append(_plural(dash.orders_failed, "failed order"))
    session = dash.last_session
    if session is not None and session.result not in (None, "ok", "none"):
        problems.append(f"last Web Connector session: {session.result}")
    if dash.store.state not in ("ok", "not configured", "unknown"):
        problems.append(f"store: {dash.store.state}")
    if not dash.healthy and not problems:
        problems.append("unhealthy")
    return problems


def _session_text(session: views.SessionSummary | None) -> str:
    if session is None:
        return "no session yet"
    text = f"#{session.id} started {utc_text(session.started)}"
    if session.seconds is not None:
        text += f", {session.seconds:.1f} s"
    text += f", {_plural(session.requests, 'request')}"
    if session.result is None:
        return text + ", in progress" if session.ended is None else text
    text += f", {session.result}"
    if session.error:
        text += f": {session.error}"
    return text


def _task_state(last_result: str | None) -> str:
    if last_result is None:
        return "never run"
    if last_result.startswith("ok"):
        return "ok"
    if last_result.startswith("error"):
        return "error"
    return last_result.split(":", 1)[0][:9]


async def cmd_status(db: Database, args: argparse.Namespace, out: TextIO) -> int:
    dash = await views.dashboard(db)
    task_rows = await views.tasks(db)
    problems = _problems(dash)
    if getattr(args, "json", False):
        write_json(
            out,
            {"healthy": dash.healthy, "problems": problems, **asdict(dash), "tasks": [asdict(t) for t in task_rows]},
        )
        return 0 if dash.healthy else 1

    lines: list[tuple[str, str]] = [
        ("health", "ok" if dash.healthy else "FAILING: " + ", ".join(problems)),
        ("web connector", _session_text(dash.last_session)),
        ("store", dash.store.state + (f" ({dash.store.detail})" if dash.store.detail else "")),
        (
            "orders",
            f"{dash.orders_imported_today} imported today, {dash.orders_posted_today} posted today,"
            f" {dash.orders_failed} failed",
        ),
        (
            "stock queue",
            f"{dash.pending} pending, {dash.in_flight} in flight, {dash.failed_skus} failed;"
            f" {sum(dash.pushes_per_minute)} pushed in the last 30 min",
        ),
        ("drain", f"{dash.drain_done} of {dash.drain_total} pushed" if dash.drain_total else "idle"),
        ("paused", "yes (stock pushes are paused)" if dash.paused else "no"),
    ]
    if task_rows:
        width = max(len(t.name) for t in task_rows)
        state_width = max(len(_task_state(t.last_result)) for t in task_rows)
        for n, task in enumerate(task_rows):
            lines.append(
                (
                    "tasks" if n == 0 else "",
                    f"{task.name:<{width}}  {_task_state(task.last_result):<{state_width}}"
                    f"  last {utc_text(task.last_run)}  next {utc_text(task.next_run)}",
                )
            )
    else:
        lines.append(("tasks", "none yet (the engine creates them when it starts)"))
    for n, failure in enumerate(dash.latest_failures):
        lines.append(("recent failures" if n == 0 else "", f"{utc_text(failure.at)}  {failure.what}: {failure.reason}"))
    for label, value in lines:
        out.write(_fit(f"{label:<16}{_clean(value)}", WIDTH).rstrip() + "\n")
    return 0 if dash.healthy else 1


QUEUE_COLUMNS: list[Column] = [
    ("SKU", 24, False),
    ("QTY", 8, True),
    ("STATE", 9, False),
    ("ATTEMPTS", 8, True),
    ("NEXT ATTEMPT", 20, False),
    ("LAST ERROR", 0, False),
]


async def cmd_queue_list(db: Database, args: argparse.Namespace, out: TextIO) -> int:
    failed_only = getattr(args, "failed", False)
    sku_filter = getattr(args, "sku", "")
    limit = getattr(args, "limit", 100)
    rows, total = await views.pending_page(db, sku_filter=sku_filter, failed_only=failed_only, limit=_unlimited(limit))
    _, failed = await views.pending_page(db, sku_filter=sku_filter, failed_only=True, limit=0)
    code = 1 if failed else 0
    if getattr(args, "json", False):
        write_json(out, [asdict(r) for r in rows])
        return code
    if not rows:
        out.write(
            "no queued SKUs match\n" if sku_filter else "no failed SKUs\n" if failed_only else "the queue is empty\n"
        )
        return code
    write_table(
        out,
        QUEUE_COLUMNS,
        [(r.sku, r.quantity, r.state, r.attempts, utc_text(r.next_attempt), r.last_error or "") for r in rows],
    )
    if total > len(rows):
        out.write(f"({len(rows)} of {total} shown; --limit 0 shows all)\n")
    return code


async def cmd_queue_change(db: Database, args: argparse.Namespace, out: TextIO) -> int:
    action = args.queue_action
    skus = list(dict.fromkeys(getattr(args, "skus", None) or []))
    all_failed = action == "retry" and getattr(args, "all_failed", False)

    missing: list[str] = []
    in_flight: list[str] = []
    if all_failed:
        changed = await admin_commands.retry_all_failed(db)
    else:
        states = await views.pending_states(db, skus)
        missing = [s for s in skus if s not in states]
        in_flight = [s for s in skus if states.get(s) == "in_flight"]
        present = [s for s in skus if s in states]
        if not present:
            changed = 0
        elif action == "retry":
            changed = await admin_commands.retry(db, present)
        else:
            changed = await admin_commands.drop(db, present)

    if getattr(args, "json", False):
        write_json(out, {"action": action, "changed": changed, "not_in_queue": missing, "in_flight": in_flight})
    elif action == "retry":
        what = "failed SKU" if all_failed else "SKU"
        out.write(f"retried {_plural(changed, what)}: due now, a running engine pushes them within a second\n")
    else:
        out.write(f"dropped {_plural(changed, 'SKU')} from the queue\n")
    if missing:
        _error(f"not in the queue: {', '.join(missing)}")
    if in_flight:
        _error(f"being pushed right now, not changed (try again in a moment): {', '.join(in_flight)}")
    return 1 if missing or in_flight else 0


LOG_COLUMNS: list[Column] = [
    ("AT", 20, False),
    ("SKU", 24, False),
    ("OLD", 8, True),
    ("NEW", 8, True),
    ("RESULT", 6, False),
    ("REASON", 0, False),
]


async def cmd_log(db: Database, args: argparse.Namespace, out: TextIO) -> int:
    since = getattr(args, "since_at", None) or (
        parse_since(args.since, db.clock.now()) if getattr(args, "since", None) else None
    )
    rows = await views.sku_log_page(
        db,
        failed_only=getattr(args, "failed", False),
        sku_filter=getattr(args, "sku", ""),
        since=since,
        limit=_unlimited(getattr(args, "limit", 50)),
    )
    code = 1 if any(not r.ok for r in rows) else 0
    if getattr(args, "json", False):
        write_json(out, [asdict(r) for r in rows])
        return code
    if not rows:
        out.write("no log lines match\n")
        return code
    write_table(
        out,
        LOG_COLUMNS,
        [
            (
                utc_text(r.at),
                r.sku,
                r.old_qty if r.old_qty is not None else "-",
                r.new_qty if r.new_qty is not None else "-",
                "ok" if r.ok else "FAILED",
                r.reason,
            )
            for r in rows
        ],
    )
    return code


ORDER_COLUMNS: list[Column] = [
    ("NUMBER", 12, False),
    ("STATUS", 14, False),
    ("QB STATE", 8, False),
    ("TXN ID", 22, False),
    ("ERROR", 0, False),
]


async def cmd_orders(db: Database, args: argparse.Namespace, out: TextIO) -> int:
    failed_only = getattr(args, "failed", False)
    rows, total = await views.orders_page(db, failed_only=failed_only, limit=_unlimited(getattr(args, "limit", 50)))
    _, failed = await views.orders_page(db, failed_only=True, limit=0)
    code = 1 if failed else 0
    if getattr(args, "json", False):
        write_json(out, [asdict(r) for r in rows])
        return code
    if not rows:
        out.write("no failed orders\n" if failed_only else "no orders yet\n")
        return code
    write_table(
        out,
        ORDER_COLUMNS,
        [
            (
                r.number + (" (credit)" if r.qb_kind == "credit_memo" else ""),
                r.status,
                r.qb_state,
                r.txn_id or "-",
                r.error or "",
            )
            for r in rows
        ],
    )
    if total > len(rows):
        out.write(f"({len(rows)} of {total} shown; --limit 0 shows all)\n")
    return code


TASK_COLUMNS: list[Column] = [
    ("NAME", 12, False),
    ("EVERY", 8, True),
    ("LAST RUN", 20, False),
    ("NEXT RUN", 20, False),
    ("LAST RESULT", 0, False),
]


async def cmd_tasks(db: Database, args: argparse.Namespace, out: TextIO) -> int:
    if getattr(args, "tasks_action", None) == "run":
        try:
            await admin_commands.run_task_now(db, args.name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0]) if exc.args else f"unknown task {args.name!r}") from None
        next_run = await views.task_next_run(db, args.name)
        if getattr(args, "json", False):
            write_json(out, {"task": args.name, "next_run": next_run})
        else:
            out.write(f"{visible(args.name)}: due now; a running engine starts it within a second\n")
        return 0
    rows = await views.tasks(db)
    if getattr(args, "json", False):
        write_json(out, [asdict(r) for r in rows])
        return 0
    if not rows:
        out.write("no tasks yet (the engine creates them when it starts)\n")
        return 0
    write_table(
        out,
        TASK_COLUMNS,
        [
            (r.name, _every(r.interval_seconds), utc_text(r.last_run), utc_text(r.next_run), r.last_result or "-")
            for r in rows
        ],
    )
    return 0


def _check(args: argparse.Namespace, clock: Clock) -> None:
    """Usage errors found before the database is opened."""
    if args.command == "log" and getattr(args, "since", None):
        args.since_at = parse_since(args.since, clock.now())
    if args.command == "queue" and getattr(args, "queue_action", None) in ("retry", "drop"):
        action, skus = args.queue_action, getattr(args, "skus", None) or []
        all_failed = getattr(args, "all_failed", False)
        if all_failed and skus:
            raise UsageError("queue retry: give SKUs or --all-failed, not both")
        if not all_failed and not skus:
            raise UsageError(
                f"queue {action}: give one or more SKUs" + (", or --all-failed" if action == "retry" else "")
            )


async def run_admin(args: argparse.Namespace, config: Config, out: TextIO, clock: Clock = SYSTEM_CLOCK) -> int:
    """Run one admin command against the configured database; returns the exit code. `clock`
    says what time it is (ages such as --since 15m, the status's "today")."""
    command = args.command
    if command == "queue":
        handler = cmd_queue_list if getattr(args, "queue_action", None) in (None, "list") else cmd_queue_change
    else:
        handler = {"status": cmd_status, "log": cmd_log, "orders": cmd_orders, "tasks": cmd_tasks}[command]
    try:
        _check(args, clock)
    except UsageError as exc:
        _error(str(exc))
        return 2
    path = config.database.path
    if not path.exists():
        _error(
            "no database yet: the file [database] path names does not exist (start the engine first, or check --config)"
        )
        return 2
    try:
        db = await Database.open(path, clock)
    except (sqlite3.Error, OSError) as exc:
        _error(f"cannot open the database: {exc}")
        return 1
    try:
        return await handler(db, args, out)
    except UsageError as exc:
        _error(str(exc))
        return 2
    except sqlite3.Error as exc:
        _error(f"database error: {exc}")
        return 1
    finally:
        await db.close()
