"""Crash-test harness: the engine as a real subprocess that the tests SIGKILL and restart.

The store emulator (WooCommerce) and the QuickBooks simulator run in the test process; the engine
runs as `python -m connex_tui.cli run --headless --config FILE` on a real SQLite file, with its
JSON log lines appended to a file; the Web Connector simulator in the test process calls the
subprocess's SOAP endpoint. The harness can

* start, SIGKILL and restart the engine on the same database and port, and wait until it serves;
* run Web Connector sessions, with a hook that runs right after QuickBooks processed a request
  (so a test can kill the engine before `receiveResponseXML` is sent);
* "settle": Web Connector sessions and queue drains until no order is new/sent, nothing is pending
  or in flight, and a final session reads nothing new;
* check the promises: every store order (and restocking refund) is in QuickBooks exactly once,
  every matched SKU on the store equals QuickBooks, no pending row is lost or stuck, and
  `PRAGMA integrity_check` is ok.

After a kill, the Web Connector session that was open is left open in `qbwc_sessions`; the
restarted engine closes it as 'interrupted' at start-up (QBWCSessions.close_interrupted), so the next
Web Connector session is not answered "busy". The harness does not touch the session rows: it only
counts what a kill left open, and settling fails if a session is answered "busy".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import aiohttp
from aiohttp import web

from connex_tui.engine.schema import MIGRATIONS
from connex_tui.engine.skus_rule import sql_sku_key
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import RunResult, WebConnectorError, WebConnectorSim
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.soap.qbxml import memo_marker

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "crash-Te5t-password-value"
BATCH_ROUTE = "POST /wp-json/wc/v3/products/batch"
WC_ERRORS = (aiohttp.ClientError, WebConnectorError, asyncio.TimeoutError, OSError)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(moment: datetime) -> str:
    """The engine's timestamp format (ISO 8601 UTC, milliseconds)."""
    return moment.isoformat(timespec="milliseconds")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------
# Seeds


@contextmanager
def reproducible(seed: int | str, what: str) -> Iterator[None]:
    """Prints the seed, and puts it on any failure so the run can be repeated."""
    print(f"[crash] {what}: seed {seed} (repeat with CONNEX_CRASH_SEED={seed})")
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - annotate and re-raise everything
        if isinstance(exc, Exception):
            exc.add_note(f"crash test {what!r} failed with seed {seed}: rerun with CONNEX_CRASH_SEED={seed}")
        print(f"[crash] FAILED {what} with seed {seed}: rerun with CONNEX_CRASH_SEED={seed}")
        raise


# --------------------------------------------------------------------------------------------
# Configuration and the engine process


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def engine_config(
    folder: Path,
    db_path: Path,
    port: int,
    *,
    store_url: str | None,
    orders_per_request: int = 50,
    poll_seconds: int = 1,
) -> Path:
    storefront: dict[str, Any] = {"platform": "none"}
    if store_url:
        # A short store timeout: recovered stock rows wait it out before being pushed again.
        storefront = {
            "platform": "woocommerce",
            "url": store_url,
            "consumer_key": "ck_test",
            "consumer_secret": "cs_test",
            "timeout_seconds": 5,
        }
    return write_config(
        folder / "connex.toml",
        {
            "database": {"path": str(db_path)},
            "qbwc": {
                "host": "127.0.0.1",
                "port": port,
                "password": PASSWORD,
                "read_min_interval_seconds": 0,
                "orders_per_request": orders_per_request,
            },
            "storefront": storefront,
            "orders": {"poll_seconds": poll_seconds},
            "logging": {"level": "info"},
        },
    )


class EngineDied(AssertionError):
    pass


class EngineProcess:
    """One `connex-tui run --headless` subprocess at a time, always on the same database and port."""

    def __init__(self, config_path: Path, db_path: Path, log_path: Path, port: int) -> None:
        self.config_path = config_path
        self.db_path = db_path
        self.log_path = log_path
        self.port = port
        self.url = f"http://127.0.0.1:{port}/qbwc"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.spawned_at = 0.0
        self.killed_at: datetime | None = None  # wall clock of the last SIGKILL
        self._log_offset = 0

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def spawn(self) -> None:
        if self.alive:
            raise AssertionError("an engine is already running on this database")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- crash harness: start #{self.starts} at {iso(utcnow())}\n".encode())
            self._log_offset = log.tell()
        env = {k: v for k, v in os.environ.items() if k != "CONNEX_CONFIG"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "connex_tui.cli", "run", "--headless", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=REPO,
                env=env,
            )
        self.spawned_at = time.monotonic()

    def kill(self) -> bool:
        """SIGKILL (no clean-up of any kind); True when a running engine was killed."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self.killed_at = utcnow()
        with open(self.log_path, "ab") as log:
            log.write(f"--- crash harness: SIGKILL at {iso(self.killed_at)}\n".encode())
        return True

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait: the clean shutdown a service manager does."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def ready(self) -> bool:
        """This start logged that its endpoint listens (the sync tasks start before that)."""
        for event in self.events(since_start=True):
            if event.get("event") == "qbwc_endpoint_listening":
                if event.get("url") != self.url:
                    raise AssertionError(f"engine listens on {event.get('url')}, expected {self.url}")
                return True
        return False

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise EngineDied(f"the engine exited by itself (code {code}):\n{self.log_tail()}")

    async def wait_ready(self, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while not self.ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"the engine did not start in {timeout} s:\n{self.log_tail()}")
            await asyncio.sleep(0.02)
        return time.monotonic() - self.spawned_at

    def wait_ready_blocking(self, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while not self.ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"the engine did not start in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.01)
        return time.monotonic() - self.spawned_at

    def has_db_open(self) -> bool:
        """The process holds the database file open (Database.open ran; migrations follow at once)."""
        if self.proc is None:
            return False
        fd_dir = Path(f"/proc/{self.proc.pid}/fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return False
        target = str(self.db_path)
        for name in names:
            try:
                if os.readlink(fd_dir / name) == target:
                    return True
            except OSError:
                continue
        return False

    # --- the log ------------------------------------------------------------------------------

    def events(self, *, since_start: bool = False) -> list[dict[str, Any]]:
        try:
            with open(self.log_path, "rb") as log:
                if since_start:
                    log.seek(self._log_offset)
                data = log.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.decode("utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Reading (and, with the engine down, editing) the database from the test process


class DBView:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(str(self.path), timeout=15.0, isolation_level=None)
        con.row_factory = sqlite3.Row
        return con

    def rows(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        con = self._connect()
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def value(self, sql: str, params: tuple | list = ()) -> Any:
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def write(self, sql: str, params: tuple | list = ()) -> int:
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            cur = con.execute(sql, params)
            con.execute("COMMIT")
            return cur.rowcount
        finally:
            con.close()

    def integrity(self) -> list[str]:
        return [row[0] for row in self.rows("PRAGMA integrity_check")]

    def foreign_key_problems(self) -> list[tuple]:
        return [tuple(row) for row in self.rows("PRAGMA foreign_key_check")]


# --------------------------------------------------------------------------------------------
# The store and QuickBooks


class CrashWooCommerce(WooCommerceEmulator):
    """The WooCommerce emulator, plus: requests in progress and arrivals per route (to kill at the
    right moment and to wait for stragglers), and optionally the behaviour of a real PHP store for a
    request whose client died: the body was received in full, so the update is applied anyway."""

    def __init__(self, *, complete_orphans: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.complete_orphans = complete_orphans
        self.in_progress: Counter[str] = Counter()
        self.arrivals: list[tuple[str, float]] = []

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def track(request: web.Request, handler: Any) -> web.StreamResponse:
            route = self.route_of(request)
            self.arrivals.append((route, time.monotonic()))
            self.in_progress[route] += 1
            try:
                if self.complete_orphans and request.can_read_body:
                    await request.read()  # cached by aiohttp: the handler reads it again after a fault's latency
                return await handler(request)
            finally:
                self.in_progress[route] -= 1

        app.middlewares.insert(0, track)  # outermost: it sees a request before a fault delays it
        return app

    def arrived(self, route: str, since: float = 0.0) -> int:
        return sum(1 for r, at in self.arrivals if r == route and at >= since)

    async def quiet(self, timeout: float = 30.0) -> None:
        """Until no request is being served (a killed engine's request may still be running)."""
        deadline = time.monotonic() + timeout
        while sum(self.in_progress.values()) > 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"store requests still in progress: {dict(self.in_progress)}")
            await asyncio.sleep(0.02)


class HookedQB:
    """The QuickBooks simulator as the Web Connector sees it, with a hook that runs right after
    QuickBooks processed a request and before its response goes back to connex-tui."""

    def __init__(self, qb: QuickBooksSim) -> None:
        self.qb = qb
        self.after_process: Callable[[str, str], None] | None = None

    def process(self, request_xml: str) -> str:
        response = self.qb.process(request_xml)
        hook = self.after_process
        if hook is not None:
            hook(request_xml, response)
        return response

    def begin_session(self) -> None:
        self.qb.begin_session()

    def end_session(self) -> None:
        self.qb.end_session()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.qb, name)


# --------------------------------------------------------------------------------------------
# The whole rig


@dataclass
class Ledger:
    """What the test did to the store and to QuickBooks, to know what the end state must be."""

    initial: dict[str, int] = field(default_factory=dict)  # matched SKU -> starting quantity (both sides)
    qb_only: dict[str, int] = field(default_factory=dict)
    store_only: dict[str, int] = field(default_factory=dict)
    orders: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # store order id -> lines
    refunds: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # "<order>/refund/<id>" -> restocked lines
    adjusted: Counter[str] = field(default_factory=Counter)  # QuickBooks adjustments by hand
    refunded: dict[int, Counter[str]] = field(default_factory=dict)  # order id -> units refunded per SKU

    def expected_qb(self) -> dict[str, int]:
        expected = Counter({**self.initial, **self.qb_only})
        expected.update(self.adjusted)
        for lines in self.orders.values():
            for sku, qty in lines:
                expected[sku] -= qty
        for lines in self.refunds.values():
            for sku, qty in lines:
                expected[sku] += qty
        return dict(expected)

    def store_ids(self) -> set[str]:
        return {str(o) for o in self.orders} | set(self.refunds)


class CrashRig:
    """Store emulator + QuickBooks simulator in this process, the engine in a subprocess."""

    def __init__(
        self,
        folder: Path,
        rng: random.Random,
        *,
        skus: int = 40,
        quantity: tuple[int, int] = (400, 900),
        orders_per_request: int = 5,
        complete_orphans: bool = False,
    ) -> None:
        self.folder = folder
        self.rng = rng
        self.n_skus = skus
        self.quantity = quantity
        self.orders_per_request = orders_per_request
        self.store = CrashWooCommerce(complete_orphans=complete_orphans)
        self.real_qb = QuickBooksSim()
        self.qb = HookedQB(self.real_qb)
        self.ledger = Ledger()
        self.db_path = folder / "state" / "connex.db"
        self.db = DBView(self.db_path)
        self.log_path = folder / "engine.log"
        self.port = free_port()
        self.engine: EngineProcess | None = None
        self.http: aiohttp.ClientSession | None = None
        self.wc: WebConnectorSim | None = None
        self.stats: Counter[str] = Counter()

    # --- set-up and tear-down -----------------------------------------------------------------

    async def start(self) -> None:
        url = await self.store.start()
        lo, hi = self.quantity
        for n in range(self.n_skus):
            sku = f"SKU-{n:03d}"
            qty = self.rng.randint(lo, hi)
            self.ledger.initial[sku] = qty
            self.real_qb.add_item(sku, qty)
            self.store.add_product(sku, qty)
        self.ledger.qb_only["QB-ONLY-1"] = 7
        self.real_qb.add_item("QB-ONLY-1", 7)
        self.ledger.store_only["STORE-ONLY-1"] = 3
        self.store.add_product("STORE-ONLY-1", 3)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        config = engine_config(
            self.folder, self.db_path, self.port, store_url=url, orders_per_request=self.orders_per_request
        )
        self.engine = EngineProcess(config, self.db_path, self.log_path, self.port)
        # force_close: no keep-alive connection survives into a killed engine's successor.
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=30)
        )
        self.wc = WebConnectorSim(self.engine.url, "qbwc", PASSWORD, self.qb, http=self.http)  # type: ignore[arg-type]
        self.engine.spawn()
        await self.engine.wait_ready()
        # The first catalog refresh, so the first pushes find the SKUs.
        deadline = time.monotonic() + 20
        while not self.db.value("SELECT count(*) FROM tasks WHERE name = 'catalog' AND last_run IS NOT NULL"):
            assert time.monotonic() < deadline, "the first catalog refresh did not run"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.qb.after_process = None
        if self.engine is not None and self.engine.alive:
            code = self.engine.stop()
            self.stats["clean_stop_code_nonzero"] += int(code not in (0, None))
        if self.http is not None:
            await self.http.close()
        await self.store.stop()

    # --- the merchant's and the bookkeeper's actions ------------------------------------------

    def matched(self) -> list[str]:
        return list(self.ledger.initial)

    def place_order(self, lines: list[tuple[str, int]] | None = None) -> int:
        if lines is None:
            skus = self.rng.sample(self.matched(), self.rng.randint(1, 3))
            lines = [(sku, self.rng.randint(1, 3)) for sku in skus]
        order_id = self.store.place_order(lines)
        self.ledger.orders[order_id] = lines
        self.stats["orders_placed"] += 1
        return order_id

    def refund_some(self) -> str | None:
        """A partial refund with restock (one unit) of a random earlier order: one credit memo.
        Only orders with more than one unit left, so no order becomes fully refunded."""
        candidates = []
        for order_id, lines in self.ledger.orders.items():
            done = self.ledger.refunded.get(order_id, Counter())
            left = [sku for sku, qty in lines if qty - done[sku] > 0]
            if sum(qty for _, qty in lines) - sum(done.values()) > 1:
                candidates.append((order_id, left))
        if not candidates:
            return None
        order_id, left = self.rng.choice(candidates)
        sku = self.rng.choice(left)
        refund_id = self.store.refund(order_id, [(sku, 1)], restock=True)
        store_id = f"{order_id}/refund/{refund_id}"
        self.ledger.refunds[store_id] = [(sku, 1)]
        self.ledger.refunded.setdefault(order_id, Counter())[sku] += 1
        self.stats["refunds_placed"] += 1
        return store_id

    def adjust(self, sku: str | None = None, delta: int | None = None) -> None:
        sku = sku or self.rng.choice(self.matched() + ["QB-ONLY-1"])
        delta = delta if delta is not None else self.rng.choice([-3, -2, -1, 1, 2, 3, 5])
        self.real_qb.adjust_quantity(sku, delta)
        self.ledger.adjusted[sku] += delta
        self.stats["qb_adjustments"] += 1

    # --- the engine ---------------------------------------------------------------------------

    def kill(self) -> bool:
        assert self.engine is not None
        killed = self.engine.kill()
        if killed:
            self.stats["kills"] += 1
        return killed

    def after_kill(self) -> int:
        """Between the kill and the restart: count the Web Connector sessions the kill left open
        (the restarted engine must close them itself)."""
        left_open = self.db.value("SELECT count(*) FROM qbwc_sessions WHERE ended IS NULL") or 0
        self.stats["sessions_left_open_by_kill"] += left_open
        return left_open

    async def restart(self) -> float:
        assert self.engine is not None
        if not self.engine.alive:
            self.engine.spawn()
        return await self.engine.wait_ready()

    # --- Web Connector sessions ---------------------------------------------------------------

    async def session(self) -> RunResult:
        assert self.wc is not None
        return await self.wc.run_once()

    async def try_session(self) -> RunResult | BaseException:
        try:
            return await self.session()
        except WC_ERRORS as exc:
            return exc

    async def wc_loop(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """The Web Connector's Auto-Run: a session every `interval` seconds, errors shrugged off."""
        while not stop.is_set():
            outcome = await self.try_session()
            self.stats["wc_sessions"] += 1
            if isinstance(outcome, BaseException):
                self.stats["wc_sessions_failed"] += 1
            elif outcome.status == "busy":
                self.stats["wc_sessions_busy"] += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass

    # --- settling -----------------------------------------------------------------------------

    def _open_work(self) -> dict[str, int]:
        return {
            "orders_new_or_sent": self.db.value("SELECT count(*) FROM orders WHERE qb_state IN ('new', 'sent')"),
            "pending_or_in_flight": self.db.value(
                "SELECT count(*) FROM pending WHERE state IN ('pending', 'in_flight')"
            ),
        }

    async def wait_imported(self, deadline: float) -> None:
        wanted = self.ledger.store_ids()
        while True:
            have = {row[0] for row in self.db.rows("SELECT store_id FROM orders")}
            if wanted <= have:
                return
            self._assert_in_time(deadline, f"store orders not imported: {sorted(wanted - have)[:10]}")
            await asyncio.sleep(0.05)

    async def wait_drained(self, deadline: float) -> None:
        while self.db.value("SELECT count(*) FROM pending WHERE state IN ('pending', 'in_flight')"):
            rows = self.db.rows(
                "SELECT sku, state, attempts, next_attempt, last_error FROM pending WHERE state != 'failed' LIMIT 5"
            )
            self._assert_in_time(deadline, f"the pending queue did not drain: {[tuple(r) for r in rows]}")
            await asyncio.sleep(0.05)

    def _assert_in_time(self, deadline: float, what: str) -> None:
        assert self.engine is not None
        self.engine._check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"settle timed out: {what}\n--- engine log tail:\n{self.engine.log_tail()}")

    async def settle(self, timeout: float = 60.0) -> int:
        """Sessions and drains until nothing is in flight, no order is new/sent and a final
        session reads nothing new. Returns the number of sessions it took."""
        assert self.engine is not None
        deadline = time.monotonic() + timeout
        sessions = 0
        while True:
            await self.wait_imported(deadline)
            run = await self.session()
            sessions += 1
            if run.status == "busy":
                raise AssertionError(
                    "settle: the Web Connector was answered 'busy': a session is still open"
                    f" {[tuple(r) for r in self.db.rows('SELECT id, started, last_seen FROM qbwc_sessions WHERE ended IS NULL')]}"
                )
            assert run.status in ("ok", "none"), f"settle: session ended {run.status}: {run.last_error}"
            await self.wait_drained(deadline)
            last = self.db.rows("SELECT state, result FROM qbwc_sessions ORDER BY id DESC LIMIT 1")[0]
            state = json.loads(last["state"])
            news = {k: state.get(k, 0) for k in ("posted", "found", "failed", "queued")}
            work = self._open_work()
            if not any(news.values()) and not any(work.values()) and last["result"] in ("ok", "none"):
                self.stats["settle_sessions"] += sessions
                return sessions
            self._assert_in_time(deadline, f"still working: session {news}, open {work}")

    # --- the promises -------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Everything that breaks the product's promise, as readable lines (empty: all kept)."""
        out: list[str] = []
        qb = self.real_qb
        # 1. every store order and restocking refund is in QuickBooks exactly once
        wanted = self.ledger.store_ids()
        ours = [t for t in qb.transactions if t.memo and "[cx:" in t.memo]
        for store_id in sorted(wanted):
            marker = memo_marker(store_id)
            count = sum(1 for t in ours if marker in (t.memo or ""))
            if count != 1:
                out.append(f"store order {store_id}: {count} QuickBooks transactions with {marker}")
        known = {memo_marker(s) for s in wanted}
        for t in ours:
            if not any(m in t.memo for m in known):
                out.append(f"QuickBooks transaction {t.txn_id} ({t.memo!r}) is no store order of this test")
        states = Counter(row[0] for row in self.db.rows("SELECT qb_state FROM orders"))
        if set(states) - {"posted"}:
            out.append(f"orders not all posted: {dict(states)}")
        # QuickBooks' quantities follow from what happened, if each order counted exactly once
        expected = self.ledger.expected_qb()
        for sku, qty in sorted(expected.items()):
            have = qb.item(sku).quantity_on_hand
            if have != qty:
                out.append(f"QuickBooks {sku}: {have} on hand, expected {qty}")
        # 2. every matched SKU on the store equals QuickBooks (no order waits for QuickBooks now)
        for sku in self.matched():
            store_qty, qb_qty = self.store.stock(sku), qb.item(sku).quantity_on_hand
            if store_qty is None or Decimal(store_qty) != qb_qty:
                out.append(f"store {sku}: {store_qty}, QuickBooks {qb_qty}")
        for sku, qty in self.ledger.store_only.items():
            if self.store.stock(sku) != qty:
                out.append(f"store-only {sku} changed to {self.store.stock(sku)}")
        # 3. no pending row lost or stuck: each SKU was pushed (its last log line is that quantity)
        #    or waits as failed with its reason
        stuck = self.db.rows("SELECT sku, state FROM pending WHERE state IN ('pending', 'in_flight')")
        out += [f"pending row {r['sku']} stuck {r['state']}" for r in stuck]
        for sku in self.matched():
            last = self.db.rows("SELECT new_qty, ok FROM sku_log WHERE sku = ? ORDER BY id DESC LIMIT 1", (sku,))
            qb_qty = qb.item(sku).quantity_on_hand
            if not last or not last[0]["ok"] or Decimal(last[0]["new_qty"]) != qb_qty:
                out.append(f"{sku}: last SKU log line {tuple(last[0]) if last else None}, QuickBooks {qb_qty}")
        for sku in self.ledger.qb_only:
            row = self.db.rows("SELECT state, last_error FROM pending WHERE sku = ?", (sku,))
            if not row or row[0]["state"] != "failed" or not row[0]["last_error"]:
                out.append(
                    f"QuickBooks-only {sku}: pending row {tuple(row[0]) if row else None}, expected failed with a reason"
                )
        bad_failed = self.db.rows("SELECT sku FROM pending WHERE state = 'failed' AND coalesce(last_error, '') = ''")
        out += [f"pending row {r['sku']} failed without a reason" for r in bad_failed]
        # 4. the file itself
        integrity = self.db.integrity()
        if integrity != ["ok"]:
            out.append(f"integrity_check: {integrity[:5]}")
        fks = self.db.foreign_key_problems()
        if fks:
            out.append(f"foreign_key_check: {fks[:5]}")
        return out

    async def check(self, what: str) -> None:
        assert self.store is not None
        await self.store.quiet()
        found = self.problems()
        assert not found, f"after {what}:\n  " + "\n  ".join(found[:40])
        self.stats["checks_passed"] += 1


# --------------------------------------------------------------------------------------------
# Databases at an older schema version, for the migration kills


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def build_old_database(path: Path, version: int, rng: random.Random, *, scale: int = 1) -> None:
    """A database that an older connex-tui left at `version`, with many rows in every table."""
    assert 1 <= version < len(MIGRATIONS)
    con = sqlite3.connect(str(path), isolation_level=None)
    con.create_function("sku_key", 1, sql_sku_key, deterministic=True)  # as Database.open registers it
    try:
        con.execute("PRAGMA journal_mode = WAL")
        for number, script in enumerate(MIGRATIONS[:version], start=1):
            con.execute("BEGIN")
            for statement in _statements(script):
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {number}")
            con.execute("COMMIT")
        stamp = "2024-05-01T10:00:00.000+00:00"
        n_orders, n_log, n_items = 8000 * scale, 160_000 * scale, 4000 * scale
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO qbwc_sessions(id, ticket_hash, client, started, last_seen, ended, requests, result, state)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [(i, f"hash{i}", "10.0.0.5", stamp, stamp, stamp, 7, "ok", "{}") for i in range(1, 301)],
        )
        states = ["posted"] * 6 + ["new", "failed", "sent", "skipped"]
        con.executemany(
            "INSERT INTO orders(id, store_id, number, status, customer, raw, qb_state, ref_number, txn_id, error,"
            " attempts, sent_session, imported_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    i,
                    str(5000 + i),
                    str(5000 + i),
                    "processing",
                    f"Customer {i % 97}",
                    json.dumps({"id": 5000 + i}),
                    (s := states[rng.randrange(len(states))]),
                    str(5000 + i),
                    f"{i:X}-1714557600" if s == "posted" else None,
                    "refused" if s == "failed" else None,
                    1,
                    rng.randint(1, 300) if s == "sent" else None,
                    stamp,
                    stamp,
                )
                for i in range(1, n_orders + 1)
            ],
        )
        con.executemany(
            "INSERT INTO order_lines(order_id, line_no, sku, name, quantity, price) VALUES (?,?,?,?,?,?)",
            [
                (i, n, f"ITEM-{rng.randrange(n_items):05d}", "thing", str(rng.randint(1, 5)), "12.50")
                for i in range(1, n_orders + 1)
                for n in (1, 2)
            ],
        )
        con.executemany(
            "INSERT INTO items(list_id, kind, name, full_name, quantity_on_hand, time_modified, edit_sequence, seen_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    f"{0x80000000 + i:X}-1714557600",
                    "inventory",
                    f"ITEM-{i:05d}",
                    f"ITEM-{i:05d}",
                    str(rng.randint(0, 500)),
                    "2024-05-01T03:00:00-07:00",
                    str(1714557600 + i),
                    stamp,
                )
                for i in range(n_items)
            ],
        )
        con.executemany(
            "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at) VALUES (?,?,?,?,?,?,?)",
            [
                (
                    f"ITEM-{i:05d}",
                    str(rng.randint(0, 500)),
                    "failed" if i % 5 == 0 else "pending",
                    i % 3,
                    stamp,
                    "SKU not found on the store" if i % 5 == 0 else None,
                    stamp,
                )
                for i in range(0, n_items, 2)
            ],
        )
        con.executemany(
            "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,?,?)",
            [
                (
                    stamp,
                    f"ITEM-{rng.randrange(n_items):05d}",
                    str(rng.randint(0, 99)),
                    str(rng.randint(0, 99)),
                    (ok := int(rng.random() < 0.9)),
                    "" if ok else "SKU not found on the store",
                )
                for _ in range(n_log)
            ],
        )
        con.executemany(
            "INSERT INTO qb_requests(session_id, at, request_id, kind, status_code, severity, message) VALUES (?,?,?,?,?,?,?)",
            [(rng.randint(1, 300), stamp, f"add-{i}", "add", 0, "Info", "Status OK") for i in range(3000)],
        )
        con.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [
                ("orders.watermark", stamp),
                ("items.watermark.inventory", "2024-05-01T03:00:00-07:00"),
                ("qwc.owner_id", "{6904A826-7368-11DC-8317-F7AD55D89593}"),
            ],
        )
        con.executemany(
            "INSERT INTO tasks(name, interval_seconds, last_run, next_run, last_result) VALUES (?,?,?,?,?)",
            [(name, 60, stamp, stamp, "ok") for name in ("orders", "inventory", "catalog")],
        )
        if version >= 2:
            con.executemany(
                "INSERT INTO catalog(sku_key, sku, item_id, parent_id, quantity, managed, refreshed_at) VALUES (?,?,?,?,?,?,?)",
                [
                    (f"item-{i:05d}", f"ITEM-{i:05d}", str(100 + i), None, rng.randint(0, 500), 1, stamp)
                    for i in range(n_items)
                ],
            )
            con.executemany(
                "INSERT INTO mappings(store_sku_key, store_sku, qb_item, created_at) VALUES (?,?,?,?)",
                [(f"web-{i}", f"WEB-{i}", f"ITEM-{i:05d}", stamp) for i in range(200)],
            )
            con.execute("UPDATE pending SET pushed_quantity = quantity WHERE rowid % 7 = 0")
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def table_digests(path: Path, tables: dict[str, list[str]] | None = None) -> dict[str, tuple[int, str]]:
    """Per table: the row count and a hash of every row (the given columns, or all of them)."""
    con = sqlite3.connect(str(path))
    try:
        if tables is None:
            names = [
                r[0]
                for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            ]
            tables = {name: [r[1] for r in con.execute(f"PRAGMA table_info({name})")] for name in names}
        out = {}
        for name, columns in tables.items():
            digest = hashlib.sha256()
            count = 0
            cols = ", ".join(columns)
            for row in con.execute(f"SELECT {cols} FROM {name} ORDER BY rowid"):
                digest.update(repr(row).encode())
                count += 1
            out[name] = (count, digest.hexdigest())
        return out
    finally:
        con.close()


def table_columns(path: Path) -> dict[str, list[str]]:
    con = sqlite3.connect(str(path))
    try:
        names = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        return {name: [r[1] for r in con.execute(f"PRAGMA table_info({name})")] for name in names}
    finally:
        con.close()


def schema_of(con: sqlite3.Connection) -> set[tuple]:
    return set(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))


def expected_schema() -> set[tuple]:
    """The schema every migration applied in order gives (what a new database gets)."""
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.create_function("sku_key", 1, sql_sku_key, deterministic=True)  # as Database.open registers it
    try:
        for script in MIGRATIONS:
            for statement in _statements(script):
                con.execute(statement)
        return schema_of(con)
    finally:
        con.close()


def copy_database(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


def kill_points(env_default: int) -> int:
    try:
        return max(1, int(os.environ.get("CONNEX_CRASH_RUNS", env_default)))
    except ValueError:
        return env_default


def split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def batches_for(count: int, limit: int = 100) -> int:
    return max(1, math.ceil(count / limit))
