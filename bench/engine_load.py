"""How much memory the headless engine holds with a big database, and how fast its Web Connector
endpoint still answers while it pushes a 10,000-SKU backlog to the store.

The engine runs as a real subprocess, exactly as a merchant's server runs it:
`python -m connex_tui.cli run --headless --config FILE`, logging JSON lines at level info (to a
file in the temporary folder). Its storefront is the WooCommerce emulator, run in a separate
process of the benchmark (forked before anything else starts), so the emulator's work competes
with neither the engine's event loop nor the benchmark's client loop. Everything lives in a
temporary folder and is thrown away.

Set-up (not measured):
  * QuickBooks (the simulator, in the benchmark process) holds N inventory items LOAD-000001..;
  * the database is made with the engine's own migrations and seeded in one transaction by direct
    inserts: N rows in `items` with the simulator's very ListID, TimeModified, EditSequence and
    quantity (so the items are "known" and the item watermark is their newest TimeModified), and
    P rows in `pending` (the first P SKUs, due now), as an interrupted push would leave them;
  * the store holds the first S SKUs (default S = P), as simple products with managed stock.

Phases:
  1. start: the subprocess starts; memory is read once its endpoint listens ("listening");
  2. settle: its first task runs (orders, catalog, inventory, cleanup) index the store and push
     the P pending rows; memory is read `--settle-seconds` after the queue is empty ("settled");
  3. session: P items change in QuickBooks and one Web Connector session (the simulator, over
     real HTTP) reads them; the engine queues and pushes them; memory is read once the queue is
     empty again and has settled ("after_session");
  4. push under load: a sequential loop of lightweight SOAP calls hammers the endpoint over HTTP
     on 127.0.0.1 (round robin: serverVersion; authenticate with a wrong password, answered
     "nvu", after the fifth one by the engine's login throttle without looking at the password;
     getLastError with an unknown ticket, which goes through the engine's write transaction like
     every call of a real session). After `--idle-seconds` of calls on an idle engine, P pending
     rows with new quantities are inserted by direct inserts in one transaction and the inventory
     task is made due now through the `tasks` table (the way another process asks the scheduler
     to run a task; it notices within a second). The calls go on until the queue is empty (or
     `--max-calls`). Each call's latency is measured by the client; the engine's own time per
     call is read from its log lines. The "pushing" window opens when the insert starts (its
     transaction holds SQLite's write lock too) and closes when the queue is empty. Memory is
     read at the end ("after_push");
  5. with `--reconcile` only: the daily reconcile task (every known item against the store's
     index) is made due now; memory is read once what it queued is pushed ("after_reconcile").
VmRSS and VmHWM come from /proc/<pid>/status; a sampler thread also reads VmRSS every 20 ms and
keeps each phase's maximum. Sizes are in MB of 1,000,000 bytes.

Targets printed next to the figures: resident memory under 200 MB (VmRSS at every snapshot and
the process's VmHWM), endpoint p99 under 50 ms while the push drains. Then it checks that the
session ended ok, that nothing failed to push, that the store holds every quantity of phase 4 and
that the engine stopped cleanly on SIGTERM; if not it prints what is wrong and exits 1. A missed
target is reported, not an error.

Run it from the checkout:

    python -m bench.engine_load                              # 100000 items, 10000 pending, a table
    python -m bench.engine_load --items 300 --pending 100 --json
    python -m bench.engine_load --profile engine.txt         # the engine under pyinstrument, if installed
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite

from connex_tui.engine.db import Database
from connex_tui.engine.logs import configure_logging
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorError, WebConnectorSim

from bench.common import finish, format_table, item_names, latency_ms, latency_text, raise_keyboard_interrupt, verdict

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_ITEMS = 100_000
DEFAULT_PENDING = 10_000
DEFAULT_SEED = 1
TARGET_RSS_MB = 200.0
TARGET_P99_MS = 50.0
MB = 1_000_000
START = datetime(2024, 3, 1, 9, 0, 0)  # the simulator's clock: every change 1 s after the last
FIRST_TASKS = ("orders", "catalog", "inventory", "cleanup")
USERNAME = "qbwc"
CONSUMER_KEY, CONSUMER_SECRET = "ck_bench", "cs_bench"
SESSION_DELTA = 5  # phase 3: every changed item's quantity goes up by this much
PUSH_BASE = 1000  # phase 4: the new quantities are PUSH_BASE + n % 97
POLL_SECONDS = 0.01
SAMPLE_SECONDS = 0.02
LISTEN_TIMEOUT = 120.0
SETUP_TIMEOUT = 900.0
DRAIN_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0
HAMMER_METHODS = ("serverVersion", "authenticate", "getLastError")
UNKNOWN_TICKET = "0" * 40


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- the store process


def _store_process(conn: Any, parent_end: Any, skus: list[str], quantities: list[int]) -> None:
    """The WooCommerce emulator in a process of its own: seeds, serves, answers commands."""
    parent_end.close()  # inherited by the fork: closed so that the parent's death reads as EOF here
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it through the pipe
    asyncio.run(_serve_store(conn, skus, quantities))


async def _serve_store(conn: Any, skus: list[str], quantities: list[int]) -> None:
    from connex_tui.sim.woocommerce import WooCommerceEmulator

    emulator = WooCommerceEmulator(consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET)
    # The SKUs are unique by construction; the emulator's uniqueness check scans every product
    # (quadratic over a seeding), so it is skipped while seeding and restored afterwards.
    emulator._check_unique_sku = lambda sku, exclude=0: None  # type: ignore[method-assign]
    for sku, quantity in zip(skus, quantities, strict=True):
        emulator.add_product(sku, quantity)
    del emulator._check_unique_sku
    url = await emulator.start()
    conn.send(url)
    try:
        while True:
            try:
                command = await asyncio.to_thread(conn.recv)
            except EOFError:  # the benchmark is gone
                return
            if command == "counters":
                conn.send(dict(emulator.counters))
            elif command == "stop":
                conn.send("stopped")
                return
    finally:
        await emulator.stop()


class StoreProcess:
    def __init__(self, skus: list[str], quantities: list[int]) -> None:
        context = multiprocessing.get_context("fork")  # before any thread or event loop exists
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_store_process, args=(child, self._conn, skus, quantities), daemon=True)
        self.process.start()
        child.close()
        self.url = ""

    def wait_url(self, timeout: float) -> str:
        if not self._conn.poll(timeout):
            raise RuntimeError("the store emulator did not start")
        self.url = self._conn.recv()
        return self.url

    def counters(self) -> dict[str, int]:
        self._conn.send("counters")
        return self._conn.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self._conn.send("stop")
                if self._conn.poll(30):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# --------------------------------------------------------------------------- set-up


def build_quickbooks(names: Sequence[str], rng: random.Random) -> QuickBooksSim:
    qb = QuickBooksSim(clock=lambda: START)
    for name in names:
        qb.add_item(
            name,
            rng.randint(0, 500),
            manufacturer_part_number=f"MPN{rng.randint(10**7, 10**8 - 1)}" if rng.random() < 0.6 else None,
            price=Decimal(rng.randint(199, 19999)) / 100,
        )
    return qb


def qb_time(qb: QuickBooksSim, moment: datetime) -> str:
    """TimeModified as the simulator writes it in a Ret."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (qb.utc_offset or "")


def quantity_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


async def seed_database(path: Path, qb: QuickBooksSim, pending: Sequence[str]) -> None:
    """Migrate with the engine's own code, then N items and P pending rows in one transaction."""
    db = await Database.open(path)
    try:
        now = iso_now()
        items = list(qb.items.values())
        newest = max(items, key=lambda item: item.time_modified)
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO items(list_id, kind, name, full_name, mpn, quantity_on_hand, time_modified,"
                " edit_sequence, is_active, seen_at, name_key, full_name_key, mpn_key)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,sku_key(?),sku_key(?),sku_key(?))",
                [
                    (
                        item.list_id,
                        item.kind,
                        item.name,
                        item.full_name,
                        item.manufacturer_part_number,
                        quantity_text(item.quantity_on_hand),
                        qb_time(qb, item.time_modified),
                        item.edit_sequence,
                        1 if item.is_active else 0,
                        now,
                        item.name,
                        item.full_name,
                        item.manufacturer_part_number,
                    )
                    for item in items
                ],
            )
            await conn.executemany(
                "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, updated_at)"
                " VALUES (?, ?, 'pending', 0, ?, ?)",
                [(sku, quantity_text(qb.item(sku).quantity_on_hand), now, now) for sku in pending],
            )
            await db.set_meta(conn, "items.watermark.inventory", qb_time(qb, newest.time_modified))
            await db.set_meta(conn, "items.last_complete", now)
    finally:
        await db.close()


def write_config(folder: Path, password: str, store_url: str) -> Path:
    def s(value: str) -> str:
        return json.dumps(value)  # a JSON string of plain text is a TOML basic string

    text = "\n".join(
        [
            "[database]",
            f"path = {s(str(folder / 'engine.db'))}",
            "",
            "[qbwc]",
            'host = "127.0.0.1"',
            "port = 0",
            f"username = {s(USERNAME)}",
            f"password = {s(password)}",
            "read_min_interval_seconds = 0",
            "",
            "[storefront]",
            'platform = "woocommerce"',
            f"url = {s(store_url)}",
            f"consumer_key = {s(CONSUMER_KEY)}",
            f"consumer_secret = {s(CONSUMER_SECRET)}",
            "",
            "[orders]",
            "poll_seconds = 3600",
            "",
            "[logging]",
            'level = "info"',
            "",
        ]
    )
    path = folder / "engine.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


# --------------------------------------------------------------------------- the engine process


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile (bytes) and Threads of a process, from /proc."""
    wanted = {"VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"}
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in wanted:
                parts = rest.split()
                found[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return found


class Sampler(threading.Thread):
    """VmRSS of the engine every SAMPLE_SECONDS; the maximum per phase."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.phase = "start"
        self.peaks: dict[str, int] = defaultdict(int)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_SECONDS):
            try:
                rss = read_status(self.pid).get("VmRSS", 0)
            except OSError:
                return
            phase = self.phase
            self.peaks[phase] = max(self.peaks[phase], rss)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(2)


@dataclass
class EngineProcess:
    popen: subprocess.Popen[bytes]
    log_path: Path
    command: list[str]
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("{"):
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        pass
        return records


def start_engine(config: Path, folder: Path, profile: Path | None) -> EngineProcess:
    command = [sys.executable, "-m", "connex_tui.cli", "run", "--headless", "--config", str(config)]
    if profile is not None:
        command = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "text",
            "--no-color",
            "-o",
            str(profile),
            "-m",
            "connex_tui.cli",
            *command[3:],
        ]
    log_path = folder / "engine.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            command, cwd=CHECKOUT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent
        )
    return EngineProcess(popen, log_path, command)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark dies without stopping it. (The engine is
    started before the sampler thread or any executor thread exists, so preexec_fn is safe here.)"""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def wait_listening(engine: EngineProcess) -> str:
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while time.monotonic() < deadline:
        if engine.popen.poll() is not None:
            raise RuntimeError(f"the engine exited with {engine.popen.returncode}:\n{engine.log_tail()}")
        for record in engine.log_records():
            if record.get("event") == "qbwc_endpoint_listening":
                engine.url = str(record["url"])
                return engine.url
        await asyncio.sleep(0.02)
    raise RuntimeError(f"the engine did not start listening within {LISTEN_TIMEOUT:.0f} s:\n{engine.log_tail()}")


async def stop_engine(engine: EngineProcess) -> int | None:
    if engine.popen.poll() is None:
        engine.popen.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(engine.popen.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            engine.popen.kill()
            await asyncio.to_thread(engine.popen.wait)
            return None
    return engine.popen.returncode


# --------------------------------------------------------------------------- watching the database


class Watcher:
    """A read-only connection to the engine's database (a separate SQLite connection)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: Path) -> Watcher:
        conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
        await conn.execute("PRAGMA busy_timeout = 10000")
        return cls(conn)

    async def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self.conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def waiting(self) -> int:
        return int(await self.value("SELECT count(*) FROM pending WHERE state != 'failed'"))

    async def failed(self) -> int:
        return int(await self.value("SELECT count(*) FROM pending WHERE state = 'failed'"))

    async def first_runs_done(self) -> bool:
        marks = ",".join("?" * len(FIRST_TASKS))
        left = await self.value(f"SELECT count(*) FROM tasks WHERE name IN ({marks}) AND last_run IS NULL", FIRST_TASKS)
        known = await self.value(f"SELECT count(*) FROM tasks WHERE name IN ({marks})", FIRST_TASKS)
        return known == len(FIRST_TASKS) and left == 0

    async def wait_drained(
        self, engine: EngineProcess, timeout: float, *, first_runs: bool = False, queued: int | None = None
    ) -> tuple[float, float | None]:
        """Seconds until nothing waits to be pushed (and the first runs are done, if asked), and
        seconds until the count first went below `queued` (the first batch landed)."""
        started = time.perf_counter()
        picked: float | None = None
        while True:
            if engine.popen.poll() is not None:
                raise RuntimeError(f"the engine exited with {engine.popen.returncode}:\n{engine.log_tail()}")
            try:
                waiting = await self.waiting()
                done = waiting == 0 and (not first_runs or await self.first_runs_done())
            except sqlite3.OperationalError:  # e.g. the tasks table before the scheduler made its rows
                waiting, done = -1, False
            now = time.perf_counter()
            if queued is not None and picked is None and 0 <= waiting < queued:
                picked = now - started
            if done:
                return now - started, picked
            if now - started > timeout:
                raise RuntimeError(f"the pending queue did not drain within {timeout:.0f} s ({waiting} rows left)")
            await asyncio.sleep(POLL_SECONDS)


def run_task_now(path: Path, name: str) -> None:
    """What `Scheduler.run_now` does from another process: the task's next_run becomes now."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("UPDATE tasks SET next_run = ? WHERE name = ?", (iso_now(), name))
    finally:
        conn.close()


def queue_push(path: Path, skus: Sequence[str], quantities: Sequence[int]) -> None:
    """Phase 4's rows, by direct inserts in one transaction, and the inventory task due now."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        now = iso_now()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, updated_at)"
            " VALUES (?, ?, 'pending', 0, ?, ?) ON CONFLICT(sku) DO UPDATE SET quantity = excluded.quantity,"
            " state = 'pending', attempts = 0, next_attempt = excluded.next_attempt, updated_at = excluded.updated_at",
            [(sku, str(quantity), now, now) for sku, quantity in zip(skus, quantities, strict=True)],
        )
        conn.execute("UPDATE tasks SET next_run = ? WHERE name = 'inventory'", (now,))
        conn.execute("COMMIT")
    finally:
        conn.close()


# --------------------------------------------------------------------------- the endpoint under load


@dataclass
class Call:
    started: float  # perf_counter
    method: str
    seconds: float
    ok: bool


@dataclass
class Hammer:
    wc: WebConnectorSim
    limit: int
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    authentications: int = 0

    @property
    def bounded(self) -> bool:
        return len(self.calls) >= self.limit

    async def _one(self, method: str) -> bool:
        if method == "serverVersion":
            return str(await self.wc.call("serverVersion")).startswith("connex-tui")
        if method == "authenticate":
            # A user name of its own per call: the endpoint slows down the wrong answers of a
            # (user, address) that keeps failing (issue 11), and this call times the endpoint,
            # it does not guess passwords.
            self.authentications += 1
            answer = await self.wc.call(
                "authenticate", strUserName=f"{USERNAME}-{self.authentications}", strPassword=self.wc.password
            )
            return list(answer)[1:2] == ["nvu"]
        answer = await self.wc.call("getLastError", ticket=UNKNOWN_TICKET)
        return str(answer).startswith("Unknown or expired ticket")

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set() and len(self.calls) < self.limit:
            method = HAMMER_METHODS[n % len(HAMMER_METHODS)]
            n += 1
            started = time.perf_counter()
            try:
                ok = await self._one(method)
            except (aiohttp.ClientError, WebConnectorError, OSError) as exc:
                ok = False
                if len(self.errors) < 10:
                    self.errors.append(f"{method}: {exc}")
            self.calls.append(Call(started, method, time.perf_counter() - started, ok))


def window_latencies(calls: Sequence[Call], start: float, end: float) -> dict[str, Any]:
    inside = [c for c in calls if start <= c.started < end]
    out: dict[str, Any] = {"all": latency_ms([c.seconds for c in inside])}
    for method in HAMMER_METHODS:
        out[method] = latency_ms([c.seconds for c in inside if c.method == method])
    out["failed_calls"] = sum(1 for c in inside if not c.ok)
    out["seconds"] = round(end - start, 3)
    return out


def server_ms(
    records: Sequence[dict[str, Any]], start: datetime, end: datetime, methods: Sequence[str] | None = None
) -> dict[str, Any]:
    """The engine's own time per SOAP call (its qbwc_call log lines) between two wall-clock times."""
    by_method: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.get("event") != "qbwc_call" or "timestamp" not in record:
            continue
        at = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        if start <= at <= end:
            by_method[str(record.get("method"))].append(float(record.get("ms", 0.0)) / 1000)
    chosen = methods if methods is not None else sorted(by_method)
    out: dict[str, Any] = {"all": latency_ms([s for m in chosen for s in by_method.get(m, [])])}
    for method in chosen:
        out[method] = latency_ms(by_method.get(method, []))
    return out


# --------------------------------------------------------------------------- the run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def snapshot(pid: int, label: str, waiting: int | None) -> dict[str, Any]:
    status = read_status(pid)
    return {
        "label": label,
        "vm_rss_mb": round(status.get("VmRSS", 0) / MB, 1),
        "vm_hwm_mb": round(status.get("VmHWM", 0) / MB, 1),
        "rss_anon_mb": round(status.get("RssAnon", 0) / MB, 1),
        "rss_file_mb": round(status.get("RssFile", 0) / MB, 1),
        "threads": status.get("Threads"),
        "cpu_s": round(cpu_seconds(pid), 2),
        "pending_rows": waiting,
    }


async def store_quantities(store_url: str, skus: Sequence[str]) -> dict[str, int | None]:
    """What the store holds now, read through the real WooCommerce client (GET products)."""
    from connex_tui.storefronts.woocommerce import WooCommerceClient

    client = WooCommerceClient(store_url, CONSUMER_KEY, CONSUMER_SECRET)
    try:
        entries = {entry.sku: entry.quantity for entry in await client.catalog()}
    finally:
        await client.close()
    return {sku: entries.get(sku) for sku in skus}


async def run_load(args: argparse.Namespace, store: StoreProcess, names: list[str], folder: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    pending = names[: args.pending]
    setup_started = time.perf_counter()
    qb = build_quickbooks(names, rng)
    db_path = folder / "engine.db"
    await seed_database(db_path, qb, pending)
    password = secrets.token_urlsafe(16)
    store_url = store.wait_url(SETUP_TIMEOUT)
    config = write_config(folder, password, store_url)
    setup_s = time.perf_counter() - setup_started
    data: dict[str, Any] = {
        "items": args.items,
        "pending": args.pending,
        "store_skus": args.store_skus,
        "store": "woocommerce emulator in a separate process",
        "setup_s": round(setup_s, 3),
        "targets": {"rss_mb": TARGET_RSS_MB, "p99_ms": TARGET_P99_MS},
    }

    engine = start_engine(config, folder, args.profile)
    data["engine"] = {
        "command": [Path(engine.command[0]).name, *engine.command[1:]],
        "pid": engine.pid,
        "profiled": args.profile is not None,
    }
    sampler = Sampler(engine.pid)
    sampler.start()
    snapshots: list[dict[str, Any]] = []
    watcher: Watcher | None = None
    try:
        spawned = time.perf_counter()
        url = await wait_listening(engine)
        data["engine"]["startup_s"] = round(time.perf_counter() - spawned, 3)
        watcher = await Watcher.open(db_path)
        snapshots.append(snapshot(engine.pid, "listening", await watcher.waiting()))

        # ------------------------------------------------------------ 2. settle
        sampler.phase = "settle"
        drain_s, _ = await watcher.wait_drained(engine, SETUP_TIMEOUT, first_runs=True)
        data["initial_drain"] = {"rows": args.pending, "seconds": round(drain_s, 3), "failed": await watcher.failed()}
        await asyncio.sleep(args.settle_seconds)
        snapshots.append(snapshot(engine.pid, "settled", await watcher.waiting()))

        # ------------------------------------------------------------ 3. one Web Connector session
        sampler.phase = "session"
        for sku in pending:
            qb.adjust_quantity(sku, SESSION_DELTA)
        async with aiohttp.ClientSession() as http:
            wc = WebConnectorSim(url, USERNAME, password, qb, http=http)
            wall_start = datetime.now(timezone.utc)
            started = time.perf_counter()
            run = await wc.run_once()
            closed = time.perf_counter()
            wall_end = datetime.now(timezone.utc)
        after_close_s, _ = await watcher.wait_drained(engine, DRAIN_TIMEOUT)
        state = json.loads(await watcher.value("SELECT state FROM qbwc_sessions ORDER BY id DESC LIMIT 1") or "{}")
        data["session"] = {
            "status": run.status,
            "error": run.last_error,
            "items_read": state.get("items_read"),
            "queued": state.get("queued"),
            "http_calls": len(run.calls),
            "exchanges": len(run.percents),
            "wall_s": round(closed - started, 3),
            "drained_after_close_s": round(after_close_s, 3),
            "failed": await watcher.failed(),
            "server_ms": server_ms(
                engine.log_records(), wall_start, wall_end, ("sendRequestXML", "receiveResponseXML")
            ),
        }
        await asyncio.sleep(args.settle_seconds)
        snapshots.append(snapshot(engine.pid, "after_session", await watcher.waiting()))

        # ------------------------------------------------------------ 4. push under load
        sampler.phase = "push"
        push_quantities = [PUSH_BASE + n % 97 for n in range(len(pending))]
        async with aiohttp.ClientSession() as http:
            hammer = Hammer(WebConnectorSim(url, USERNAME, "wrong-" + password, qb, http=http), args.max_calls)
            task = asyncio.create_task(hammer.run())
            idle_start = time.perf_counter()
            await asyncio.sleep(args.idle_seconds)
            # The pushing window opens when the insert starts: its transaction holds SQLite's write
            # lock too, so calls that wait for it count as calls made while pushing, not idle ones.
            queued_at = time.perf_counter()
            wall_queued = datetime.now(timezone.utc)
            await asyncio.to_thread(queue_push, db_path, pending, push_quantities)
            insert_s = time.perf_counter() - queued_at
            drain_s, pickup_s = await watcher.wait_drained(engine, DRAIN_TIMEOUT, queued=len(pending))
            drained_at = time.perf_counter()
            wall_drained = datetime.now(timezone.utc)
            hammer.stop.set()
            await task
        failed = await watcher.failed()
        snapshots.append(snapshot(engine.pid, "after_push", await watcher.waiting()))
        records = engine.log_records()
        held = await store_quantities(store_url, pending)
        differing = [sku for sku, qty in zip(pending, push_quantities, strict=True) if held.get(sku) != qty]
        pushing = window_latencies(hammer.calls, queued_at, drained_at)
        data["push"] = {
            "queued": len(pending),
            "insert_s": round(insert_s, 3),
            "drain_s": round(drain_s, 3),
            "first_batch_s": None if pickup_s is None else round(pickup_s, 3),
            "skus_per_s": round(len(pending) / drain_s, 1) if drain_s > 0 else None,
            "failed": failed,
            "store_checked": len(pending),
            "store_differing": len(differing),
            "store_differing_examples": differing[:5],
        }
        data["endpoint"] = {
            "idle": window_latencies(hammer.calls, idle_start, queued_at),
            "pushing": pushing,
            "server_ms_pushing": server_ms(records, wall_queued, wall_drained, HAMMER_METHODS),
            "calls": len(hammer.calls),
            "bounded": hammer.bounded,
            "errors": hammer.errors,
            "meets_target": pushing["all"]["calls"] > 0 and pushing["all"]["p99"] < TARGET_P99_MS,
        }

        # ------------------------------------------------------------ 5. (optional) the daily reconcile
        if args.reconcile:
            sampler.phase = "reconcile"
            started = time.perf_counter()
            await asyncio.to_thread(run_task_now, db_path, "reconcile")
            while await watcher.value("SELECT last_run FROM tasks WHERE name = 'reconcile'") is None:
                if time.perf_counter() - started > SETUP_TIMEOUT:
                    raise RuntimeError("the reconcile task did not run")
                if engine.popen.poll() is not None:
                    raise RuntimeError(f"the engine exited with {engine.popen.returncode}:\n{engine.log_tail()}")
                await asyncio.sleep(POLL_SECONDS)
            ran_s = time.perf_counter() - started
            drain_s, _ = await watcher.wait_drained(engine, DRAIN_TIMEOUT)
            data["reconcile"] = {
                "result": await watcher.value("SELECT last_result FROM tasks WHERE name = 'reconcile'"),
                "seconds": round(ran_s, 3),
                "drained_after_s": round(drain_s, 3),
                "failed": await watcher.failed(),
            }
            await asyncio.sleep(args.settle_seconds)
            snapshots.append(snapshot(engine.pid, "after_reconcile", await watcher.waiting()))
    finally:
        if watcher is not None:
            await watcher.conn.close()
        sampler.phase = "stop"
        exit_code = await stop_engine(engine)
        sampler.stop()
        data.setdefault("engine", {})["exit_code"] = exit_code
        if exit_code != 0:
            data["engine"]["log_tail"] = engine.log_tail()
        if args.log is not None:
            shutil.copyfile(engine.log_path, args.log)
    counters = store.counters()
    data["push"]["store_requests"] = sum(counters.values())
    data["push"]["batch_calls_all_phases"] = sum(n for route, n in counters.items() if route.endswith("/batch"))
    by_label = {snap["label"]: snap for snap in snapshots}
    peak_hwm = max(snap["vm_hwm_mb"] for snap in snapshots)
    data["memory"] = {
        "snapshots": by_label,
        "phase_max_rss_mb": {phase: round(peak / MB, 1) for phase, peak in sampler.peaks.items() if phase != "stop"},
        "peak_hwm_mb": peak_hwm,
        "meets_target_rss": all(snap["vm_rss_mb"] < TARGET_RSS_MB for snap in snapshots),
        "meets_target_hwm": peak_hwm < TARGET_RSS_MB,
    }
    return data


def problems(data: dict[str, Any]) -> list[str]:
    found = []
    session = data.get("session", {})
    if session.get("status") != "ok":
        found.append(f"the session ended {session.get('status')!r}: {session.get('error')}")
    if session.get("queued") != data["pending"]:
        found.append(f"the session queued {session.get('queued')} SKUs, expected {data['pending']}")
    for phase in ("initial_drain", "session", "push", "reconcile"):
        if data.get(phase, {}).get("failed"):
            found.append(f"{data[phase]['failed']} SKUs failed to push ({phase})")
    push = data.get("push", {})
    if push.get("store_differing"):
        examples = push["store_differing_examples"]
        found.append(f"{push['store_differing']} SKUs on the store differ after the push, e.g. {examples}")
    endpoint = data.get("endpoint", {})
    if endpoint.get("errors") or endpoint.get("pushing", {}).get("failed_calls"):
        found.append(f"SOAP calls failed while pushing: {endpoint.get('errors')}")
    if data.get("engine", {}).get("exit_code") != 0:
        found.append(f"the engine exited with {data.get('engine', {}).get('exit_code')} on SIGTERM")
    return found


# --------------------------------------------------------------------------- output


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    target_mb, target_ms = data["targets"]["rss_mb"], data["targets"]["p99_ms"]
    engine, memory, session, push, endpoint = (data[k] for k in ("engine", "memory", "session", "push", "endpoint"))
    rows = [
        (
            "engine",
            f"subprocess pid {engine['pid']}, started in {engine['startup_s']:.2f} s, exit {engine['exit_code']}"
            + (" (under pyinstrument)" if engine["profiled"] else ""),
        ),
        ("database", f"{data['items']} items known, {data['pending']} pending rows at start"),
        ("store", f"{data['store']}, {data['store_skus']} SKUs"),
    ]
    for label, snap in memory["snapshots"].items():
        rows.append(
            (
                f"memory {label}",
                f"VmRSS {snap['vm_rss_mb']:.1f} MB  VmHWM {snap['vm_hwm_mb']:.1f} MB  "
                f"(anon {snap['rss_anon_mb']:.1f}, file {snap['rss_file_mb']:.1f}; "
                f"{snap['pending_rows']} pending; CPU {snap['cpu_s']:.1f} s so far)",
            )
        )
    peaks = "  ".join(f"{phase} {mb:.1f}" for phase, mb in memory["phase_max_rss_mb"].items())
    rows += [
        ("max VmRSS per phase MB", peaks),
        (
            "resident target",
            f"< {target_mb:g} MB: VmRSS {verdict(memory['meets_target_rss'])}, "
            f"VmHWM {memory['peak_hwm_mb']:.1f} MB {verdict(memory['meets_target_hwm'])}",
        ),
        (
            "initial drain",
            f"{data['initial_drain']['rows']} rows pushed, queue empty {data['initial_drain']['seconds']:.2f} s "
            f"after the endpoint listened (with the first catalog run)",
        ),
        (
            "session",
            f"{session['status']}: {session['items_read']} items read, {session['queued']} queued, "
            f"{session['http_calls']} HTTP calls in {session['wall_s']:.2f} s; queue empty "
            f"{session['drained_after_close_s']:.2f} s after close",
        ),
    ]
    for method in ("sendRequestXML", "receiveResponseXML"):
        rows.append((f"  server ms {method}", latency_text(session["server_ms"][method])))
    rows += [
        (
            "push",
            f"{push['queued']} SKUs drained in {push['drain_s']:.2f} s after the insert ({push['skus_per_s']} SKUs/s; "
            f"insert {push['insert_s']:.3f} s, first batch after {push['first_batch_s']} s), {push['failed']} failed, "
            f"{push['store_differing']} differ on the store",
        ),
        ("endpoint idle ms", latency_text(endpoint["idle"]["all"])),
        (
            "endpoint pushing ms",
            f"{latency_text(endpoint['pushing']['all'])}   target p99 < {target_ms:g} ms: "
            f"{verdict(endpoint['meets_target'])}",
        ),
    ]
    for method in HAMMER_METHODS:
        rows.append((f"  {method}", latency_text(endpoint["pushing"][method])))
    rows.append(("  engine's own ms", latency_text(endpoint["server_ms_pushing"]["all"])))
    rows.append(("calls in all", f"{endpoint['calls']}" + (" (stopped at --max-calls)" if endpoint["bounded"] else "")))
    if "reconcile" in data:
        rec = data["reconcile"]
        rows.append(
            (
                "reconcile",
                f"{rec['result']} (ran within {rec['seconds']:.2f} s; queue empty "
                f"{rec['drained_after_s']:.2f} s later, {rec['failed']} failed)",
            )
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_load", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items", type=int, default=DEFAULT_ITEMS, help="items known to the engine (default %(default)s)"
    )
    parser.add_argument(
        "--pending",
        type=int,
        default=DEFAULT_PENDING,
        help="pending rows at start, items changed in the session and SKUs pushed under load (default %(default)s)",
    )
    parser.add_argument(
        "--store-skus",
        type=int,
        default=None,
        metavar="S",
        help="SKUs on the store, at least --pending (default: --pending)",
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=2.0, help="wait before reading memory (default %(default)s)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=2.0,
        help="calls on the idle engine before the push is queued (default %(default)s)",
    )
    parser.add_argument("--max-calls", type=int, default=200_000, help="bound of the call loop (default %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the item generator (default %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="then run the daily reconcile task now (every known item against the store) and read memory again",
    )
    parser.add_argument("--log", type=Path, metavar="FILE", help="copy the engine's JSON log lines to FILE")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run the engine under pyinstrument and write its text report to FILE"
        " (memory figures then include the profiler)",
    )
    args = parser.parse_args(argv)
    if args.store_skus is None:
        args.store_skus = args.pending
    if args.pending < 1 or args.items < args.pending:
        parser.error("--pending must be 1 or more and --items at least --pending")
    if not args.pending <= args.store_skus <= args.items:
        parser.error("--store-skus must be between --pending and --items")
    if args.items > 999_999:
        parser.error("--items must be at most 999999 (the item names are LOAD-nnnnnn)")
    if args.max_calls < 1 or args.settle_seconds < 0 or args.idle_seconds < 0:
        parser.error("--max-calls must be 1 or more; --settle-seconds and --idle-seconds not negative")
    if args.profile is not None:
        args.profile = args.profile.resolve()
    return args


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("error: this benchmark reads /proc/<pid>/status (Linux only)", file=sys.stderr)
        return 2
    configure_logging(level="warning", json=False)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)  # stop the engine and the store on the way out
    names = item_names(args.items, prefix="LOAD", digits=6)
    store_rng = random.Random(args.seed + 1)
    store = StoreProcess(names[: args.store_skus], [store_rng.randint(0, 50) for _ in range(args.store_skus)])
    try:
        with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
            data = asyncio.run(run_load(args, store, names, Path(tmp)))
    finally:
        store.stop()
    text = json.dumps(data, indent=2) if args.json else format_table(_rows(data))
    return finish(text, problems(data), out)


if __name__ == "__main__":
    sys.exit(main())
