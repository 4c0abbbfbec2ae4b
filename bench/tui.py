"""How fast the interface switches screens with a big database, and whether the Web Connector
endpoint still answers promptly while the interface runs in the engine's own event loop.

One process and one event loop hold the real `Engine` (its SQLite file, its session planner and its
aiohttp endpoint on a free port of 127.0.0.1; storefront "none": the data is seeded directly) and
the `ConnexApp` attached to it (`Backend.attached(engine)`), run under `App.run_test(size=(100, 30))`
with Textual's headless driver: every screen is composed, laid out and rendered into the compositor
as on a terminal; only the final escape sequences are not written anywhere.

Set-up (not measured): the database is made with the engine's own migrations and seeded in one
transaction: L SKU log lines (one a second up to now, 1 in 97 failed), P pending rows (1 in 50
failed), 1,000 orders, 500 events, five scheduled tasks and three past Web Connector sessions.

The SOAP client runs in a separate process (forked before anything else starts), so it shares
neither the event loop nor the GIL of the process being measured. It calls the endpoint over real
HTTP on 127.0.0.1, one call after another with no pause: serverVersion and getLastError with an
unknown ticket in turn, and every `--session-every` calls one full Web Connector session (the
simulator, with a small QuickBooks company file whose quantities change before each session; each
of its SOAP calls is timed too). Beside it, on a connection pool of its own, an open-loop probe
sends a serverVersion every `--probe-ms` whether or not the last one came back, its latency counted
from when it was due: a back-to-back client sends only one request into a 150 ms stall of the
server's loop, and so hides it in its p99; requests that arrive at their own times (the probe,
and the Web Connector) meet stalls in proportion to the time the loop is stalled. Both loops are
bounded by `--max-calls` and by each window's length.

Phases:
  1. switch: with the App started and warmed up (its own start-up warm-up, then one unmeasured
     visit of each screen), `--rounds` rounds of the keys 2 3 4 5 6 1 (each a switch). Each switch
     is timed from the key event entering the App's queue (as a terminal's key would) to
       * "loaded": the screen is the visible one and a snapshot whose read started after the key
         has been applied to its widgets, with no further read pending (the screen is idle);
       * "shown": additionally the compositor has rendered the screen once after that snapshot
         was applied (Textual's after-refresh callback) and at least once after the key;
     figures are per screen and overall: p50 / p95 / max. Target: "shown" under 200 ms. The
     switches of 100 ms or more are counted, and how many of them had a full (generation 2)
     garbage collection of the process inside them (gc.callbacks).
  2. endpoint: the client hammers the endpoint in three windows of the same process:
       * no_app: the engine alone, before the App starts (baseline);
       * app_idle: the App shows the dashboard, only its refresh timer ticking;
       * app_busy: the App switches screens round robin (dwelling `--dwell` s on each, so its
         refresh timer ticks there), and on the SKU log presses G `--pages-per-visit` times, each
         reading one older page of 200 lines (the table grows as a person scrolls back);
     each with p50 / p99 / max of the client's round trip (all calls, the lightweight ones, per
     method, and the open-loop probe), the endpoint's own time per call (its observer), the main
     loop's lag (a 10 ms sleeper's overshoot), the process's CPU seconds and its garbage
     collections. Target: p99 under 50 ms in app_busy, printed for the back-to-back calls and for
     the probe.
Between phases (outside every window) the process's heap is read: GC-tracked objects that a full
collection walks, how long one takes, widgets still alive though on no screen, VmRSS.
A missed target is reported, not an error. The benchmark exits 1 only when something did not work
(a switch never finished, a SOAP call failed, a session did not end ok, a screen shows the wrong rows).
`--profile` runs phases 1 and 2b under pyinstrument (its figures are then inflated several times;
the report is for where the time goes, not how much); `--stalls MS` lists the loop callbacks that
ran MS or more, by task.

Run it from the checkout:

    python -m bench.tui                                   # 100000 log lines, 10000 pending, a table
    python -m bench.tui --log-lines 2000 --pending 200 --json
    python -m bench.tui --profile tui.txt                 # pyinstrument over phases 1-2, if installed
    python -m bench.tui --stalls 20                       # list loop callbacks that ran over 20 ms
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from connex_tui.engine.db import Database
from connex_tui.engine.logs import configure_logging
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorError, WebConnectorSim

from bench.common import bench_config, finish, format_table, profiled, raise_keyboard_interrupt, verdict
from bench.common import latency_ms as common_latency_ms

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_LOG_LINES = 100_000
DEFAULT_PENDING = 10_000
ORDERS = 1000
EVENTS = 500
PAGE = 200  # the interface's page (engine.views.PAGE)
SIZE = (100, 30)
TARGET_SWITCH_MS = 200.0
TARGET_P99_MS = 50.0
USERNAME = "qbwc"
UNKNOWN_TICKET = "0" * 40
LIGHT_METHODS = ("serverVersion", "getLastError")
QB_ITEMS = 50  # the client's QuickBooks company file
QB_CHANGED = 10  # items whose quantity changes before each session
# Keys 2..6 then 1: every press is a switch. (key, mode)
CYCLE = (("2", "pending"), ("3", "sku_log"), ("4", "orders"), ("5", "tasks"), ("6", "events"), ("1", "dashboard"))
SWITCH_TIMEOUT = 15.0
LAG_TICK = 0.01
POLL = 0.001
PROBE_MAX_IN_FLIGHT = 64
# --profile shows Textual's, Rich's, aiohttp's and the project's frames, the ones above 0.5 % of the time.
PROFILE_FRAMES: dict[str, Any] = {
    "show_regex": r".*(textual|rich|connex_tui|aiohttp|aiosqlite|bench).*",
    "filter_threshold": 0.005,
}
# This benchmark's latency figures count under "n" and keep two decimals (its JSON has always had them so).
latency_ms = partial(common_latency_ms, count_key="n", digits=2)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory_gb = round(int(line.split()[1]) * 1024 / 1e9, 1)
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": model,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "textual": version("textual"),
        "aiohttp": version("aiohttp"),
        "system": f"{platform.system()} {platform.release()}",
    }


# --------------------------------------------------------------------------- the client process


class TimedWebConnector(WebConnectorSim):
    """The Web Connector simulator, every SOAP call of a session timed (method 'session:<name>')."""

    def __init__(self, *args: Any, sink: list[tuple[float, str, float, bool]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink
        self.in_session = False

    async def run_once(self) -> Any:
        self.in_session = True
        try:
            return await super().run_once()
        finally:
            self.in_session = False

    async def call(self, method: str, **args: str | int) -> Any:
        if not self.in_session:  # a lightweight call: timed by the caller
            return await super().call(method, **args)
        started = time.perf_counter()
        ok = False
        try:
            answer = await super().call(method, **args)
            ok = True
            return answer
        finally:
            self.sink.append((started, f"session:{method}", time.perf_counter() - started, ok))


def _client_process(conn: Any, parent_end: Any) -> None:
    """Runs the windows the benchmark asks for; answers each with its calls."""
    parent_end.close()  # inherited by the fork: closed so that the parent's death reads as EOF here
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it through the pipe
    rng = random.Random(7)
    qb = QuickBooksSim()
    names = [f"TUI-{n:04d}" for n in range(1, QB_ITEMS + 1)]
    for name in names:
        qb.add_item(name, rng.randint(10, 500), price=Decimal("9.99"))
    while True:
        try:
            command = conn.recv()
        except EOFError:  # the benchmark is gone
            return
        if command[0] == "quit":
            return
        _, url, password, max_calls, max_seconds, session_every, probe_interval = command
        result = asyncio.run(
            _hammer(conn, url, password, qb, names, rng, max_calls, max_seconds, session_every, probe_interval)
        )
        conn.send(result)


async def _hammer(
    conn: Any,
    url: str,
    password: str,
    qb: QuickBooksSim,
    names: list[str],
    rng: random.Random,
    max_calls: int,
    max_seconds: float,
    session_every: int,
    probe_interval: float,
) -> dict[str, Any]:
    calls: list[tuple[float, str, float, bool]] = []
    probes: list[tuple[float, str, float, bool]] = []
    errors: list[str] = []
    sessions: list[str] = []
    stopped_by = "calls"
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http, aiohttp.ClientSession() as probe_http:
        prober = None
        if probe_interval > 0:
            prober = asyncio.create_task(_probe(probe_http, url, probe_interval, max_calls, stop, probes, errors))
        wc = TimedWebConnector(url, USERNAME, password, qb, http=http, sink=calls)
        deadline = time.perf_counter() + max_seconds
        n = 0
        while True:
            if conn.poll():
                conn.recv()  # "stop"
                stopped_by = "stop"
                break
            if len(calls) >= max_calls:
                stopped_by = "calls"
                break
            if time.perf_counter() >= deadline:
                stopped_by = "seconds"
                break
            n += 1
            if session_every and n % session_every == 0:
                for name in rng.sample(names, QB_CHANGED):
                    qb.adjust_quantity(name, rng.choice((-2, -1, 1, 3)))
                try:
                    run = await wc.run_once()
                    sessions.append(run.status if run.status == "ok" else f"{run.status}: {run.last_error}")
                except (aiohttp.ClientError, WebConnectorError, OSError) as exc:
                    sessions.append(f"failed: {exc}")
                continue
            method = LIGHT_METHODS[n % len(LIGHT_METHODS)]
            started = time.perf_counter()
            try:
                if method == "serverVersion":
                    ok = str(await wc.call("serverVersion")).startswith("connex-tui")
                else:
                    ok = str(await wc.call("getLastError", ticket=UNKNOWN_TICKET)).startswith(
                        "Unknown or expired ticket"
                    )
            except (aiohttp.ClientError, WebConnectorError, OSError) as exc:
                ok = False
                if len(errors) < 10:
                    errors.append(f"{method}: {exc}")
            calls.append((started, method, time.perf_counter() - started, ok))
        stop.set()
        if prober is not None:
            await prober
    return {"calls": calls, "probes": probes, "errors": errors, "sessions": sessions, "stopped_by": stopped_by}


async def _probe(
    http: aiohttp.ClientSession,
    url: str,
    interval: float,
    max_calls: int,
    stop: asyncio.Event,
    out: list[tuple[float, str, float, bool]],
    errors: list[str],
) -> None:
    """Open loop: a serverVersion call sent every `interval` s whether or not the last one came
    back, its latency counted from when it was due. A request that arrives while the server's loop
    is stalled waits as long as the stall lasts, however few of them a back-to-back client sends."""
    wc = WebConnectorSim(url, USERNAME, "", QuickBooksSim(), http=http)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        try:
            ok = str(await wc.call("serverVersion")).startswith("connex-tui")
        except (aiohttp.ClientError, WebConnectorError, OSError) as exc:
            ok = False
            if len(errors) < 10:
                errors.append(f"probe serverVersion: {exc}")
        out.append((due, "probe", time.perf_counter() - due, ok))

    first = time.perf_counter()
    n = 0
    while not stop.is_set() and n < max_calls:
        due = first + n * interval
        n += 1
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= PROBE_MAX_IN_FLIGHT:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(one(due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)


class ClientProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")  # before any thread or event loop exists
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_client_process, args=(child, self._conn), daemon=True)
        self.process.start()
        child.close()
        self.running = False

    def start(self, url: str, password: str, args: argparse.Namespace, max_seconds: float) -> None:
        self._conn.send(("run", url, password, args.max_calls, max_seconds, args.session_every, args.probe_ms / 1000))
        self.running = True

    def finish(self, stop: bool = True) -> dict[str, Any]:
        """Blocking: stop the window (unless it ends by its own bounds) and read its calls."""
        if stop:
            self._conn.send(("stop",))
        if not self._conn.poll(120):
            raise RuntimeError("the SOAP client did not answer")
        self.running = False
        return self._conn.recv()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self._conn.send(("quit",))
            except OSError:
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# --------------------------------------------------------------------------- set-up


async def seed_database(path: Path, log_lines: int, pending: int, seed: int = 1) -> None:
    """Migrate with the engine's own code, then everything in one transaction."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)

    def ago(**delta: float) -> str:
        return iso(now - timedelta(**delta))

    db = await Database.open(path)
    try:
        async with db.transaction() as conn:
            await db.set_meta(conn, "inventory.paused", "0")
            await conn.executemany(
                "INSERT INTO qbwc_sessions(ticket_hash, client, started, last_seen, ended, requests, result, error)"
                " VALUES (?, '127.0.0.1', ?, ?, ?, ?, ?, ?)",
                [
                    ("seed-1", ago(minutes=62), ago(minutes=61), ago(minutes=61), 9, "ok", None),
                    (
                        "seed-2",
                        ago(minutes=32),
                        ago(minutes=31),
                        ago(minutes=31),
                        15,
                        "error",
                        "QuickBooks is not running (0x80040408)",
                    ),
                    ("seed-3", ago(minutes=2, seconds=4), ago(minutes=2), ago(minutes=2), 12, "ok", None),
                ],
            )
            await conn.executemany(
                "INSERT INTO tasks(name, interval_seconds, last_run, next_run, last_result) VALUES (?,?,?,?,?)",
                [
                    ("catalog", 3600, ago(minutes=45), ago(minutes=-15), "ok: 10,000 store SKUs indexed"),
                    ("cleanup", 86400, ago(hours=20), ago(hours=-4), "ok: 1,204 old log lines removed"),
                    ("inventory", 30, ago(seconds=5), ago(seconds=-25), "ok: 40 pushed, 3 failed"),
                    ("orders", 60, ago(seconds=20), ago(seconds=-40), "ok: 3 new orders"),
                    ("reconcile", 21600, None, ago(hours=-5), None),
                ],
            )
            await conn.executemany(
                "INSERT INTO orders(store_id, number, status, qb_state, qb_kind, ref_number, txn_id, error,"
                " imported_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    (
                        f"wc-{n}",
                        str(10_000 + n),
                        "completed",
                        "failed" if n % 50 == 7 else "posted",
                        "sales_receipt",
                        f"W{10_000 + n}",
                        None if n % 50 == 7 else f"{0x1A2B + n:X}-1767225600",
                        "QuickBooks 3140: There is an invalid reference to QuickBooks Item" if n % 50 == 7 else None,
                        ago(minutes=(ORDERS - n) * 3),
                        ago(minutes=(ORDERS - n) * 3 - 1),
                    )
                    for n in range(ORDERS)
                ),
            )
            await conn.executemany(
                "INSERT INTO pending(sku, quantity, state, attempts, next_attempt, last_error, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    (
                        f"BULK-{n:05d}",
                        str(rng.randint(0, 60)),
                        "failed" if n % 50 == 0 else "pending",
                        8 if n % 50 == 0 else 0,
                        ago(seconds=-n),
                        "SKU not on the store" if n % 50 == 0 else None,
                        ago(minutes=10),
                    )
                    for n in range(pending)
                ),
            )
            await conn.executemany(
                "INSERT INTO sku_log(at, sku, old_qty, new_qty, ok, reason) VALUES (?,?,?,?,?,?)",
                (
                    (
                        ago(seconds=log_lines - n),
                        f"BULK-{n % 5000:05d}",
                        "3",
                        "2",
                        0 if n % 97 == 0 else 1,
                        "SKU not on the store" if n % 97 == 0 else "",
                    )
                    for n in range(log_lines)
                ),
            )
            await conn.executemany(
                "INSERT INTO events(at, level, kind, message) VALUES (?,?,?,?)",
                (
                    (
                        ago(seconds=(EVENTS - n) * 30),
                        "error" if n % 25 == 0 else "info",
                        "TaskFinished",
                        f"task inventory: {n % 40} pushed, {n % 3} failed",
                    )
                    for n in range(EVENTS)
                ),
            )
    finally:
        await db.close()


# --------------------------------------------------------------------------- measuring


@dataclass
class ServerCalls:
    """The engine's observer: (perf_counter at the end, method, seconds) of each SOAP call."""

    calls: list[tuple[float, str, float]] = field(default_factory=list)

    def __call__(self, method: str, seconds: float, _outcome: str) -> None:
        self.calls.append((time.perf_counter(), method, seconds))

    def between(self, start: float, end: float) -> list[tuple[float, str, float]]:
        return [c for c in self.calls if start <= c[0] - c[2] <= end]


class LagMonitor:
    """How late the main loop wakes a task that sleeps LAG_TICK: what every handler waits at worst."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (perf_counter, lag seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-lag-monitor")

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            now = time.perf_counter()
            self.samples.append((now, max(0.0, now - before - LAG_TICK)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at <= end]


class StallRecorder:
    """Optional (--stalls MS): every loop callback that ran longer than MS, with the task's name."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self.stalls: list[tuple[float, float, str]] = []  # (perf_counter at the end, seconds, what)
        self._original: Any = None

    @staticmethod
    def describe(callback: Any) -> str:
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            return f"task {owner.get_name()!r} ({getattr(coro, '__qualname__', type(coro).__name__)})"
        return getattr(callback, "__qualname__", None) or repr(callback)[:80]

    def install(self) -> None:
        handle = asyncio.events.Handle
        self._original = original = handle._run
        recorder = self

        def _run(self: Any) -> None:
            started = time.perf_counter()
            try:
                original(self)
            finally:
                ended = time.perf_counter()
                if ended - started >= recorder.threshold:
                    recorder.stalls.append((ended, ended - started, recorder.describe(self._callback)))

        handle._run = _run  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
            self._original = None

    def between(self, start: float, end: float) -> dict[str, Any]:
        inside = [(s, what) for at, s, what in self.stalls if start <= at <= end]
        by_what: dict[str, list[float]] = defaultdict(list)
        for seconds, what in inside:
            by_what[what].append(seconds)
        top = sorted(by_what.items(), key=lambda item: -sum(item[1]))[:8]
        return {
            "count": len(inside),
            "seconds": round(sum(s for s, _ in inside), 3),
            "by_task": [
                {
                    "what": what,
                    "count": len(values),
                    "total_ms": round(sum(values) * 1000, 1),
                    "max_ms": round(max(values) * 1000, 1),
                }
                for what, values in top
            ],
        }


class GcMonitor:
    """Every garbage collection of the process (gc.callbacks): when it ended, how long, which generation."""

    def __init__(self) -> None:
        self.collections: list[tuple[float, float, int, int]] = []  # (end, seconds, generation, collected)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        else:
            self.collections.append((now, now - self._started, info["generation"], info["collected"]))

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def full(self, start: float, end: float) -> list[tuple[float, float]]:
        """(start, end) of the generation-2 collections that overlap [start, end]."""
        return [
            (at - seconds, at)
            for at, seconds, generation, _ in self.collections
            if generation == 2 and at - seconds <= end and at >= start
        ]

    def between(self, start: float, end: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for generation in (0, 1, 2):
            inside = [(s, n) for at, s, g, n in self.collections if g == generation and start <= at <= end]
            out[f"gen{generation}"] = {
                "count": len(inside),
                "max_ms": round(max((s for s, _ in inside), default=0.0) * 1000, 1),
                "total_ms": round(sum(s for s, _ in inside) * 1000, 1),
                "collected": sum(n for _, n in inside),
            }
        return out


class ScreenProbe:
    """Instruments one screen instance: when each read started, when its snapshot was applied, and
    when the compositor had rendered the screen after that (Textual's after-refresh callback)."""

    def __init__(self, screen: Any) -> None:
        self.screen = screen
        self.applied: list[list[float | None]] = []  # [read started, applied, rendered after]
        self._read_started = 0.0
        fetch, apply = screen.fetch, screen.apply

        async def timed_fetch(params: Any) -> Any:
            self._read_started = time.perf_counter()
            return await fetch(params)

        def timed_apply(data: Any) -> None:
            apply(data)
            entry: list[float | None] = [self._read_started, time.perf_counter(), None]
            self.applied.append(entry)
            if len(self.applied) > 64:
                del self.applied[:32]
            screen.call_after_refresh(lambda: entry.__setitem__(2, time.perf_counter()))

        screen.fetch = timed_fetch
        screen.apply = timed_apply

    def fresh(self, since: float) -> list[float | None] | None:
        """The first snapshot read after `since`, once applied."""
        for entry in self.applied:
            if entry[0] is not None and entry[0] >= since:  # type: ignore[operator]
                return entry
        return None


class Paints:
    """Wraps the App's `_display` (called with every compositor update, headless too)."""

    def __init__(self, app: Any) -> None:
        self.last: dict[int, deque[float]] = defaultdict(lambda: deque(maxlen=32))
        display = app._display

        def timed_display(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                self.last[id(screen)].append(time.perf_counter())
            display(screen, renderable)

        app._display = timed_display

    def first_after(self, screen: Any, since: float) -> float | None:
        return next((at for at in self.last[id(screen)] if at >= since), None)


def heap_snapshot() -> dict[str, Any]:
    """Between phases (never inside a measured window): what a full garbage collection has to walk
    now, how long one takes, and how many widgets are still alive though no longer on any screen."""
    from textual.dom import DOMNode

    gc.collect()
    objects = gc.get_objects()  # the frozen ones (the App's start-up gc.freeze()) are not listed
    detached: dict[str, int] = defaultdict(int)
    for obj in objects:
        if isinstance(obj, DOMNode) and not obj.is_attached:
            detached[type(obj).__name__] += 1
    tracked = len(objects)
    del objects
    started = time.perf_counter()
    gc.collect()
    full_ms = (time.perf_counter() - started) * 1000
    rss_mb = None
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss_mb = round(int(line.split()[1]) * 1024 / 1e6, 1)
    except OSError:
        pass
    return {
        "tracked_objects": tracked,
        "frozen_objects": gc.get_freeze_count(),
        "full_collection_ms": round(full_ms, 1),
        "detached_widgets_alive": sum(detached.values()),
        "detached_by_class": dict(sorted(detached.items(), key=lambda item: -item[1])[:5]),
        "vm_rss_mb": rss_mb,
    }


@dataclass
class Switch:
    mode: str
    loaded_s: float
    shown_s: float
    started: float  # perf_counter at the key


class SwitchTimeout(Exception):
    pass


def press(app: Any, key: str) -> None:
    """A key event into the App's queue, as the terminal driver posts one."""
    from textual import events

    char = key if len(key) == 1 else None
    app.post_message(events.Key(key, char))


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # e.g. no screen while switching
            pass
        if time.perf_counter() > deadline:
            raise SwitchTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(POLL)


async def switch(app: Any, probes: dict[str, ScreenProbe], paints: Paints, key: str, mode: str) -> Switch:
    probe = probes[mode]
    screen = probe.screen
    started = time.perf_counter()
    press(app, key)
    found: list[float | None] = []

    def done() -> bool:
        if app.screen is not screen or not screen.idle:
            return False
        entry = probe.fresh(started)
        if entry is None or entry[2] is None or paints.first_after(screen, started) is None:
            return False
        found[:] = entry
        return True

    await wait_until(done, SWITCH_TIMEOUT, f"{mode} shown with a fresh snapshot")
    applied, rendered = found[1], found[2]
    painted = paints.first_after(screen, started)
    assert applied is not None and rendered is not None and painted is not None
    return Switch(mode, applied - started, max(rendered, painted) - started, started)


def switch_stats(switches: Sequence[Switch], gcm: GcMonitor) -> dict[str, Any]:
    by_mode: dict[str, list[Switch]] = defaultdict(list)
    for s in switches:
        by_mode[s.mode].append(s)
    out: dict[str, Any] = {}
    for _key, mode in CYCLE:
        items = by_mode.get(mode, [])
        out[mode] = {
            "loaded_ms": latency_ms([s.loaded_s for s in items], high=0.95),
            "shown_ms": latency_ms([s.shown_s for s in items], high=0.95),
        }
    slow = [s for s in switches if s.shown_s * 1000 >= TARGET_SWITCH_MS / 2]
    out["all"] = {
        "loaded_ms": latency_ms([s.loaded_s for s in switches], high=0.95),
        "shown_ms": latency_ms([s.shown_s for s in switches], high=0.95),
        "over_target": sum(1 for s in switches if s.shown_s * 1000 >= TARGET_SWITCH_MS),
        # switches of 100 ms or more, and how many of them had a full garbage collection inside
        "over_half_target": len(slow),
        "over_half_target_with_gen2": sum(1 for s in slow if gcm.full(s.started, s.started + s.shown_s)),
        "with_gen2": sum(1 for s in switches if gcm.full(s.started, s.started + s.shown_s)),
    }
    return out


def window_report(
    result: dict[str, Any],
    start: float,
    end: float,
    server: ServerCalls,
    lag: LagMonitor,
    cpu_s: float,
    stalls: StallRecorder | None,
    gcm: GcMonitor,
) -> dict[str, Any]:
    calls = [c for c in result["calls"] if start <= c[0] <= end]
    probes = [c for c in result["probes"] if start <= c[0] <= end]
    light = [c for c in calls if not c[1].startswith("session:")]
    by_method: dict[str, list[float]] = defaultdict(list)
    for _at, method, seconds, _ok in calls:
        by_method[method].append(seconds)
    served = server.between(start, end)
    seconds = end - start
    report = {
        "seconds": round(seconds, 3),
        "calls": len(calls),
        "all": latency_ms([c[2] for c in calls]),
        "light": latency_ms([c[2] for c in light]),
        "probe": latency_ms([c[2] for c in probes]),
        "by_method": {method: latency_ms(values) for method, values in sorted(by_method.items())},
        "server_ms": latency_ms([c[2] for c in served]),
        "loop_lag_ms": latency_ms(lag.between(start, end)),
        "cpu_s": round(cpu_s, 3),
        "cpu_share": round(cpu_s / seconds, 3) if seconds > 0 else None,
        "failed_calls": sum(1 for c in calls + probes if not c[3]),
        "errors": result["errors"],
        "sessions": len(result["sessions"]),
        "sessions_not_ok": [s for s in result["sessions"] if s != "ok"][:5],
        "stopped_by": result["stopped_by"],
        "gc": gcm.between(start, end),
    }
    if stalls is not None:
        report["stalls"] = stalls.between(start, end)
    return report


# --------------------------------------------------------------------------- the run


async def hammer_window(
    client: ClientProcess, url: str, password: str, args: argparse.Namespace, seconds: float
) -> tuple[dict[str, Any], float, float, float]:
    """The engine alone (or the App idling): the client runs for `seconds`; the loop stays free."""
    cpu, started = time.process_time(), time.perf_counter()
    client.start(url, password, args, seconds)
    result = await asyncio.to_thread(client.finish, False)
    return result, started, time.perf_counter(), time.process_time() - cpu


async def run_bench(args: argparse.Namespace, client: ClientProcess, folder: Path) -> dict[str, Any]:
    from connex_tui.app import ConnexApp
    from connex_tui.backend import Backend
    from connex_tui.harness import Harness

    password = secrets.token_urlsafe(16)
    config = bench_config(folder, password, name="tui", qbwc={"username": USERNAME})
    setup_started = time.perf_counter()
    await seed_database(config.database.path, args.log_lines, args.pending)
    setup_s = time.perf_counter() - setup_started
    data: dict[str, Any] = {
        "machine": machine(),
        "log_lines": args.log_lines,
        "pending": args.pending,
        "orders": ORDERS,
        "events": EVENTS,
        "database_mb": round(Path(config.database.path).stat().st_size / 1e6, 1),
        "setup_s": round(setup_s, 3),
        "size": list(SIZE),
        "refresh_seconds": args.refresh_seconds,
        "targets": {"switch_ms": TARGET_SWITCH_MS, "p99_ms": TARGET_P99_MS},
        "errors": [],
    }
    server = ServerCalls()
    lag = LagMonitor()
    gcm = GcMonitor()
    gcm.install()
    stalls = StallRecorder(args.stalls) if args.stalls is not None else None
    engine = Engine(config, observer=server)
    await engine.start()
    lag.start()
    if stalls is not None:
        stalls.install()
    endpoint: dict[str, Any] = {}
    try:
        url = engine.url
        data["endpoint_url"] = url
        # ------------------------------------------------------------ the engine alone
        result, start, end, cpu = await hammer_window(client, url, password, args, args.window_seconds)
        endpoint["no_app"] = window_report(result, start, end, server, lag, cpu, stalls, gcm)

        app = ConnexApp(Backend.attached(engine), refresh_seconds=args.refresh_seconds, harness=Harness(counting=True))
        paints = Paints(app)
        probes: dict[str, ScreenProbe] = {}
        started = time.perf_counter()
        async with app.run_test(size=SIZE) as _pilot:
            await wait_until(lambda: app.warmed_up, 60, "the start-up warm-up")
            data["startup_s"] = round(time.perf_counter() - started, 3)
            # One unmeasured visit of each screen: instrument it.
            for key, mode in CYCLE:
                press(app, key)
                await wait_until(
                    lambda mode=mode: (
                        app.current_mode == mode
                        and getattr(app.screen, "MODE", "") == mode
                        and app.harness.counted(app.screen, "loads") > 0
                        and app.screen.idle
                    ),
                    SWITCH_TIMEOUT,
                    f"{mode} (first visit)",
                )
                probes[mode] = ScreenProbe(app.screen)
            await asyncio.sleep(args.dwell)
            heap = {"after_warm_up": heap_snapshot()}
            data["heap"] = heap

            # ------------------------------------------------------------ 1. switches
            switches: list[Switch] = []
            phase_started = time.perf_counter()
            with profiled(args.profile, label="phase 1: screen switches", processor_options=PROFILE_FRAMES):
                for _round in range(args.rounds):
                    for key, mode in CYCLE:
                        switches.append(await switch(app, probes, paints, key, mode))
                        await asyncio.sleep(0.02)  # let the footer and timers settle, as between two key presses
            data["switch"] = {
                "rounds": args.rounds,
                "switches": len(switches),
                **switch_stats(switches, gcm),
                "gc": gcm.between(phase_started, time.perf_counter()),
            }
            shown = data["switch"]["all"]["shown_ms"]
            data["switch"]["meets_target"] = shown["p95"] < TARGET_SWITCH_MS
            data["switch"]["meets_target_max"] = shown["max"] < TARGET_SWITCH_MS

            # ------------------------------------------------------------ 2a. the App idle
            await switch(app, probes, paints, "2", "pending")
            await switch(app, probes, paints, "1", "dashboard")
            result, start, end, cpu = await hammer_window(client, url, password, args, args.window_seconds)
            endpoint["app_idle"] = window_report(result, start, end, server, lag, cpu, stalls, gcm)

            # ------------------------------------------------------------ 2b. the App busy
            busy_switches: list[Switch] = []
            pages: list[float] = []
            sku_log = probes["sku_log"].screen
            cpu, start = time.process_time(), time.perf_counter()
            client.start(url, password, args, 3600)
            try:
                with profiled(
                    args.profile,
                    label="phase 2: app_busy (switching, scrolling the SKU log, SOAP calls)",
                    processor_options=PROFILE_FRAMES,
                ):
                    for _round in range(args.busy_rounds):
                        for key, mode in CYCLE:
                            busy_switches.append(await switch(app, probes, paints, key, mode))
                            if mode == "sku_log":
                                for _page in range(args.pages_per_visit):
                                    if sku_log.exhausted:
                                        break
                                    rows = len(sku_log.rows)
                                    pressed = time.perf_counter()
                                    press(app, "G")
                                    await wait_until(
                                        lambda rows=rows: len(sku_log.rows) > rows or sku_log.exhausted,
                                        SWITCH_TIMEOUT,
                                        "an older page of the SKU log",
                                    )
                                    pages.append(time.perf_counter() - pressed)
                            await asyncio.sleep(args.dwell)
            finally:
                end = time.perf_counter()
                result = await asyncio.to_thread(client.finish, True)
            endpoint["app_busy"] = window_report(
                result, start, end, server, lag, time.process_time() - cpu, stalls, gcm
            )
            data["busy"] = {
                "rounds": args.busy_rounds,
                "switch": switch_stats(busy_switches, gcm)["all"],
                "older_page_ms": latency_ms(pages, high=0.95),
                "sku_log_rows_loaded": len(sku_log.rows),
                "switches_since_start": len(switches) + len(busy_switches) + 2 + len(CYCLE),
            }
            heap["after_busy"] = heap_snapshot()

            # ------------------------------------------------------------ what the screens show
            pending = probes["pending"].screen
            data["shown"] = {
                "pending_rows": pending.query_one("DiffTable").row_count,
                "pending_total": pending.total,
                "sku_log_rows": sku_log.query_one("DiffTable").row_count,
                "orders_rows": probes["orders"].screen.query_one("DiffTable").row_count,
                "tasks_rows": probes["tasks"].screen.query_one("DiffTable").row_count,
                "events_lines": probes["events"].screen.lines_written,
            }
            app.exit()
    except SwitchTimeout as exc:
        data["errors"].append(str(exc))
    finally:
        if stalls is not None:
            stalls.uninstall()
        gcm.uninstall()
        await lag.stop()
        if client.running:
            await asyncio.to_thread(client.finish, True)
        await engine.stop()
    data["endpoint"] = endpoint
    busy = endpoint.get("app_busy")
    data["endpoint_meets_target"] = bool(busy and busy["calls"] and busy["all"]["p99"] < TARGET_P99_MS)
    data["probe_meets_target"] = bool(busy and busy["probe"]["n"] and busy["probe"]["p99"] < TARGET_P99_MS)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    found = list(data.get("errors", []))
    for name, window in data.get("endpoint", {}).items():
        if window["failed_calls"] or window["errors"]:
            found.append(f"{name}: {window['failed_calls']} SOAP calls failed: {window['errors']}")
        if window["sessions_not_ok"]:
            found.append(f"{name}: Web Connector sessions did not end ok: {window['sessions_not_ok']}")
        if not window["calls"]:
            found.append(f"{name}: no SOAP call was made")
    shown = data.get("shown")
    if shown is not None:
        if shown["pending_rows"] != min(PAGE, shown["pending_total"]) or shown["pending_total"] < data["pending"]:
            found.append(f"the pending screen shows {shown['pending_rows']} rows of {shown['pending_total']}")
        if shown["orders_rows"] != min(PAGE, ORDERS):
            found.append(f"the orders screen shows {shown['orders_rows']} rows")
        if shown["tasks_rows"] != 5:
            found.append(f"the tasks screen shows {shown['tasks_rows']} rows")
        if shown["sku_log_rows"] < min(PAGE, data["log_lines"]):
            found.append(f"the SKU log shows {shown['sku_log_rows']} rows")
    elif not found:
        found.append("the interface did not run to the end")
    return found


# --------------------------------------------------------------------------- output


def _lat(stats: dict[str, Any], high: str = "p99") -> str:
    return f"p50 {stats['p50']:7.2f}  {high} {stats[high]:7.2f}  max {stats['max']:7.2f}  (n {stats['n']})"


def _gc(stats: dict[str, Any]) -> str:
    full = stats["gen2"]
    return (
        f"full (gen 2) collections {full['count']}, max {full['max_ms']:.1f} ms, total {full['total_ms']:.0f} ms; "
        f"gen 1: {stats['gen1']['count']}, max {stats['gen1']['max_ms']:.1f} ms"
    )


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    m = data["machine"]
    rows = [
        (
            "machine",
            f"{m['cpus']} cores ({m['cpus_usable']} usable), {m['cpu_model'] or 'unknown CPU'}, "
            f"{m['memory_gb']} GB; {m['system']}",
        ),
        ("software", f"Python {m['python']}, Textual {m['textual']}, aiohttp {m['aiohttp']}"),
        (
            "database",
            f"{data['log_lines']:,} SKU log lines, {data['pending']:,} pending rows, {data['orders']:,} orders, "
            f"{data['events']:,} events: {data['database_mb']} MB (seeded in {data['setup_s']:.1f} s)",
        ),
        (
            "interface",
            f"ConnexApp attached to the engine, same loop, run_test size {data['size'][0]}x{data['size'][1]}, "
            f"refresh every {data['refresh_seconds']:g} s; started and warmed up in "
            f"{data.get('startup_s', 0):.2f} s",
        ),
    ]
    target_ms, target_p99 = data["targets"]["switch_ms"], data["targets"]["p99_ms"]
    switch = data.get("switch")
    if switch:
        rows.append(
            ("screen switch", f"{switch['rounds']} rounds of keys 2 3 4 5 6 1: ms from the key, loaded / shown")
        )
        for _key, mode in CYCLE:
            stats = switch[mode]
            rows.append(
                (f"  {mode}", f"loaded {_lat(stats['loaded_ms'], 'p95')}   shown {_lat(stats['shown_ms'], 'p95')}")
            )
        stats = switch["all"]
        rows.append(("  all", f"loaded {_lat(stats['loaded_ms'], 'p95')}   shown {_lat(stats['shown_ms'], 'p95')}"))
        rows.append(
            (
                "  target",
                f"shown < {target_ms:g} ms: p95 {verdict(switch['meets_target'])}, "
                f"max {verdict(switch['meets_target_max'])} ({stats['over_target']} of "
                f"{switch['switches']} switches at {target_ms:g} ms or more)",
            )
        )
        rows.append(
            (
                "  slow switches",
                f"{stats['over_half_target']} took {target_ms / 2:g} ms or more; "
                f"{stats['over_half_target_with_gen2']} of them had a full GC inside; "
                f"{stats['with_gen2']} switches in all had one",
            )
        )
        rows.append(("  garbage collector", _gc(switch["gc"])))
    for label, heap in data.get("heap", {}).items():
        rows.append(
            (
                f"heap {label}",
                f"{heap['tracked_objects']:,} GC-tracked objects "
                f"(+{heap['frozen_objects']:,} frozen), "
                f"a full collection {heap['full_collection_ms']:.0f} ms; "
                f"{heap['detached_widgets_alive']:,} widgets alive off screen "
                f"{heap['detached_by_class'] or ''}; VmRSS {heap['vm_rss_mb']} MB",
            )
        )
    for name, window in data.get("endpoint", {}).items():
        rows.append(
            (
                f"endpoint {name}",
                f"{_lat(window['all'])}  over {window['seconds']:.1f} s, {window['sessions']} sessions",
            )
        )
        rows.append(("  light calls", _lat(window["light"])))
        if window["probe"]["n"]:
            rows.append(("  probe (open loop)", _lat(window["probe"])))
        rows.append(("  server's own ms", _lat(window["server_ms"])))
        rows.append(("  loop lag ms", _lat(window["loop_lag_ms"])))
        rows.append(("  main process CPU", f"{window['cpu_s']:.2f} s ({window['cpu_share']:.0%} of one core)"))
        rows.append(("  garbage collector", _gc(window["gc"])))
        if "stalls" in window:
            st = window["stalls"]
            rows.append(("  loop stalls", f"{st['count']} callbacks over the threshold, {st['seconds']:.2f} s in all"))
            for entry in st["by_task"][:5]:
                rows.append(
                    (
                        "",
                        f"{entry['count']:4d} x, max {entry['max_ms']:7.1f} ms, total {entry['total_ms']:8.1f} ms: "
                        f"{entry['what']}",
                    )
                )
    if "app_busy" in data.get("endpoint", {}):
        busy = data["endpoint"]["app_busy"]
        rows.append(
            (
                "endpoint target",
                f"p99 < {target_p99:g} ms with the App busy: back-to-back calls "
                f"{verdict(data['endpoint_meets_target'])} (p99 {busy['all']['p99']:.1f} ms)"
                + (
                    f", open-loop probe {verdict(data['probe_meets_target'])} (p99 {busy['probe']['p99']:.1f} ms)"
                    if busy["probe"]["n"]
                    else ""
                ),
            )
        )
    if "busy" in data:
        busy = data["busy"]
        rows.append(
            (
                "busy: switches",
                f"shown {_lat(busy['switch']['shown_ms'], 'p95')}; "
                f"{busy['switch']['over_target']} at {target_ms:g} ms or more",
            )
        )
        rows.append(
            (
                "busy: older pages",
                f"{_lat(busy['older_page_ms'], 'p95')}; {busy['sku_log_rows_loaded']:,} "
                f"log lines loaded at the end, {busy['switches_since_start']} switches "
                "since start",
            )
        )
    for error in data.get("errors", []):
        rows.append(("error", error))
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tui", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--log-lines", type=int, default=DEFAULT_LOG_LINES, help="SKU log lines (default %(default)s)")
    parser.add_argument("--pending", type=int, default=DEFAULT_PENDING, help="pending rows (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds of six switches (default %(default)s)")
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=3.0,
        help="length of the no_app and app_idle windows (default %(default)s)",
    )
    parser.add_argument(
        "--busy-rounds", type=int, default=3, help="rounds of six switches in the app_busy window (default %(default)s)"
    )
    parser.add_argument(
        "--pages-per-visit",
        type=int,
        default=3,
        help="older SKU log pages read (key G) on each visit of the SKU log (default %(default)s)",
    )
    parser.add_argument(
        "--dwell", type=float, default=0.3, help="seconds on each screen in app_busy (default %(default)s)"
    )
    parser.add_argument(
        "--refresh-seconds",
        type=float,
        default=0.5,
        help="the App's refresh interval (default %(default)s, the App's own default)",
    )
    parser.add_argument(
        "--session-every",
        type=int,
        default=100,
        help="one full Web Connector session every N calls of the client, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--probe-ms",
        type=float,
        default=10.0,
        help="the open-loop probe: one serverVersion due every MS milliseconds, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--max-calls", type=int, default=50_000, help="bound of the client's calls in one window (default %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="write a pyinstrument text report of phases 1-2 (the whole main process) to FILE",
    )
    parser.add_argument(
        "--stalls",
        type=float,
        metavar="MS",
        help="record every loop callback that runs MS milliseconds or more, with its task",
    )
    args = parser.parse_args(argv)
    if args.log_lines < 1 or args.pending < 1:
        parser.error("--log-lines and --pending must be 1 or more")
    if args.rounds < 1 or args.busy_rounds < 1 or args.pages_per_visit < 0 or args.max_calls < 1:
        parser.error("--rounds, --busy-rounds and --max-calls must be 1 or more, --pages-per-visit not negative")
    if (
        args.window_seconds <= 0
        or args.dwell < 0
        or args.refresh_seconds <= 0
        or args.session_every < 0
        or args.probe_ms < 0
    ):
        parser.error(
            "--window-seconds and --refresh-seconds must be positive; --dwell, --session-every and"
            " --probe-ms not negative"
        )
    if args.profile is not None:
        args.profile = args.profile.resolve()
        args.profile.write_text("", encoding="utf-8")
    return args


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    client = ClientProcess()  # forked first, before any thread or event loop exists
    configure_logging(level="warning", json=False)  # keep the engine's log lines off the table
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
            data = asyncio.run(run_bench(args, client, Path(tmp)))
    finally:
        client.close()
    text = json.dumps(data, indent=2) if args.json else format_table(_rows(data))
    return finish(text, problems(data), out)


if __name__ == "__main__":
    sys.exit(main())
