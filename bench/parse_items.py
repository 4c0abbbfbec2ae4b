"""How long reading one 10,000-item ItemInventoryQueryRs takes, and how much memory it needs.

The response is made by the QuickBooks simulator, so its element order, indentation and size are
what the engine really receives: a company file of N inventory items (category parents and their
sub-items, about 60 % with a manufacturer part number, some inactive, some negative or fractional
quantities; seeded, so runs are reproducible) answers the engine's own ItemInventoryQueryRq
(`item_query_rq`, the same IncludeRetElement list) with MaxReturned and the iterator taken out, so
every item comes back in one ItemInventoryQueryRs. `--full-rets` leaves IncludeRetElement out as
well, so every Ret carries every element the simulator writes (a bigger document).

Three phases are measured, each `--repeats` times:
  * parse:  `parse_response(text)` on the response text (a str, as the SOAP layer hands it over);
  * record: `record_items(...)` of the parsed Rets inside one `Database.transaction()`, into a real
            SQLite file (WAL, the engine's own `Database.open`) made fresh for every repeat, so every
            repeat is a first read: all N items are news and every active one is queued;
  * both:   the two together, from the text to the committed transaction.

For each phase it reports the wall time, the tracemalloc peak (Python allocations only, measured in
a separate run because tracemalloc slows the code down) and the resident-set peak: VmHWM from
/proc/self/status after resetting it (`echo 5 > /proc/self/clear_refs`) minus VmRSS before the run,
which also counts lxml's and SQLite's own memory. Freed memory is handed back to the system
(malloc_trim) before every run so that one run's leftovers do not hide the next one's peak. Figures
are min / median / max; the targets are judged on the median time and the largest peak.
Sizes are in MB of 1,000,000 bytes.

Run it from the checkout:

    python -m bench.parse_items                  # 10000 items, 5 repeats, a text table
    python -m bench.parse_items --items 200 --repeats 2 --json
    python -m bench.parse_items --profile parse.txt   # a pyinstrument report of one "both" run

Then it checks that every item was parsed, recorded and (if active) queued; if not it prints what is
wrong and exits 1. A missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import random
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from connex_tui.engine.db import Database
from connex_tui.engine.items import record_items
from connex_tui.engine.logs import configure_logging
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.soap.qbxml import item_query_rq, message_set, parse_response

from bench.common import finish, format_table, profiled, verdict

DEFAULT_ITEMS = 10_000
DEFAULT_REPEATS = 5
DEFAULT_SEED = 1
TARGET_SECONDS = 1.0
TARGET_PEAK_MB = 150.0
MB = 1_000_000
START = datetime(2024, 3, 1, 9, 0, 0)  # the simulator's clock: every change 1 s after the last
CATEGORIES = ("Wine", "Beer", "Spirits", "Cider", "Mixers", "Glassware", "Gifts", "Snacks", "Bar Tools", "Deli")
PHASES = ("parse", "record", "both")
MATCH = "name"  # the configuration defaults
QUANTITY_MODE = "available"
REQUEST_ID = "items-inventory-0"


# --------------------------------------------------------------------------- the response


def build_company(count: int, rng: random.Random) -> QuickBooksSim:
    """`count` inventory items: a few category parents, the rest their sub-items."""
    qb = QuickBooksSim(clock=lambda: START)
    parents = [name for name in CATEGORIES[: max(1, min(len(CATEGORIES), count // 100))]]
    for name in parents:
        qb.add_item(name, 0, price=Decimal("0.00"))
    for n in range(1, count - len(parents) + 1):
        parent = rng.choice(parents)
        roll = rng.random()
        if roll < 0.10:
            quantity: Decimal | int = 0
        elif roll < 0.13:
            quantity = -rng.randint(1, 20)  # QuickBooks lets on-hand go negative
        elif roll < 0.16:
            quantity = Decimal(rng.randint(1, 400)) / 4  # sold by weight or length
        else:
            quantity = rng.randint(1, 500)
        qb.add_item(
            f"{parent[:3].upper()}-{n:06d}",
            quantity,
            parent=parent,
            manufacturer_part_number=f"MPN{rng.randint(10**7, 10**8 - 1)}" if rng.random() < 0.6 else None,
            price=Decimal(rng.randint(199, 19999)) / 100,
            is_active=rng.random() >= 0.03,
        )
    return qb


def item_request(full_rets: bool) -> str:
    """The engine's own item request, without MaxReturned or an iterator (every item in one Rs)."""
    request = item_query_rq("inventory", REQUEST_ID)
    stripped = re.sub(r"<MaxReturned>\d+</MaxReturned>", "", request).replace(' iterator="Start"', "")
    if full_rets:
        stripped = re.sub(r"<IncludeRetElement>\w+</IncludeRetElement>", "", stripped)
    if stripped == request or "iterator" in stripped:
        raise RuntimeError("item_query_rq no longer looks as expected: cannot take MaxReturned and the iterator out")
    return message_set([stripped])


@dataclass
class Response:
    text: str
    size_bytes: int
    items: int
    active: int
    build_seconds: float


def make_response(count: int, seed: int, full_rets: bool) -> Response:
    started = time.perf_counter()
    qb = build_company(count, random.Random(seed))
    text = qb.process(item_request(full_rets))
    active = sum(1 for item in qb.items.values() if item.is_active)
    return Response(text, len(text.encode("utf-8")), len(qb.items), active, time.perf_counter() - started)


# --------------------------------------------------------------------------- memory


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_hwm() -> bool:
    """Reset VmHWM to the current VmRSS (Linux 4.0+); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _load_trim() -> Callable[[], None]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


malloc_trim = _load_trim()


def settle_memory() -> None:
    gc.collect()
    malloc_trim()


# --------------------------------------------------------------------------- measuring


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    traced_peak: list[int] = field(default_factory=list)
    rss_peak_delta: list[int] = field(default_factory=list)  # empty when VmHWM cannot be reset


Prepare = Callable[[int], Awaitable[Any]]
Run = Callable[[Any], Awaitable[Any]]
Cleanup = Callable[[Any], Awaitable[None]]


async def measure(
    repeats: int,
    prepare: Prepare,
    run: Run,
    cleanup: Cleanup,
    samples: Samples,
    check: Callable[[Any, Any], Awaitable[None]] | None = None,
) -> None:
    """Each repeat: one plain run (time and RSS peak), then one under tracemalloc (its peak)."""
    for repeat in range(repeats):
        ctx = await prepare(2 * repeat)
        settle_memory()
        rss_before = _status_kb("VmRSS")
        hwm = reset_hwm()
        started = time.perf_counter()
        result = await run(ctx)
        samples.seconds.append(time.perf_counter() - started)
        peak = _status_kb("VmHWM")
        if hwm and rss_before is not None and peak is not None:
            samples.rss_peak_delta.append(max(peak - rss_before, 0) * 1024)
        if check is not None and repeat == 0:
            await check(ctx, result)
        del result
        await cleanup(ctx)

        ctx = await prepare(2 * repeat + 1)
        settle_memory()
        tracemalloc.start()
        try:
            result = await run(ctx)
            samples.traced_peak.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        del result
        await cleanup(ctx)


@dataclass
class Recorded:
    count: int = 0
    queued: int = 0
    item_rows: int = 0
    pending_rows: int = 0


async def run_phases(response: Response, repeats: int, folder: Path) -> tuple[dict[str, Samples], Recorded, int]:
    rets = parse_response(response.text)[0].rets
    recorded = Recorded()

    async def no_ctx(_n: int) -> None:
        return None

    async def no_cleanup(_ctx: Any) -> None:
        return None

    async def fresh_db(n: int) -> Database:
        return await Database.open(folder / f"record-{n}.db")

    async def drop_db(db: Database) -> None:
        await db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db.path}{suffix}").unlink(missing_ok=True)

    async def parse(_ctx: None) -> Any:
        return parse_response(response.text)

    async def record(db: Database) -> Any:
        async with db.transaction() as conn:
            return await record_items(
                conn, "inventory", rets, match=MATCH, quantity_mode=QUANTITY_MODE, now=db.clock.stamp()
            )

    async def both(db: Database) -> Any:
        responses = parse_response(response.text)
        async with db.transaction() as conn:
            return await record_items(
                conn, "inventory", responses[0].rets, match=MATCH, quantity_mode=QUANTITY_MODE, now=db.clock.stamp()
            )

    async def check_record(db: Database, result: Any) -> None:
        recorded.count, recorded.queued = result.count, result.queued
        recorded.item_rows = int(await db.fetchval("SELECT count(*) FROM items"))
        recorded.pending_rows = int(await db.fetchval("SELECT count(*) FROM pending"))

    samples = {name: Samples() for name in PHASES}
    await measure(repeats, no_ctx, parse, no_cleanup, samples["parse"])
    await measure(repeats, fresh_db, record, drop_db, samples["record"])
    await measure(repeats, fresh_db, both, drop_db, samples["both"], check=check_record)
    return samples, recorded, len(rets)


async def profile_once(response: Response, folder: Path, path: Path) -> None:
    db = await Database.open(folder / "profile.db")
    try:
        with profiled(path, interval=0.0005):  # finer than the 1 ms default: one parse + record is short
            responses = parse_response(response.text)
            async with db.transaction() as conn:
                await record_items(
                    conn, "inventory", responses[0].rets, match=MATCH, quantity_mode=QUANTITY_MODE, now=db.clock.stamp()
                )
    finally:
        await db.close()


# --------------------------------------------------------------------------- the report


def _stats(values: Sequence[float], scale: float, digits: int) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values) / scale, digits),
        "median": round(statistics.median(values) / scale, digits),
        "max": round(max(values) / scale, digits),
    }


def phase_report(samples: Samples) -> dict[str, Any]:
    seconds = _stats(samples.seconds, 1.0, 4)
    traced = _stats(samples.traced_peak, MB, 2)
    rss = _stats(samples.rss_peak_delta, MB, 2)
    peaks = [p["max"] for p in (traced, rss) if p is not None]
    return {
        "runs": len(samples.seconds),
        "seconds": seconds,
        "tracemalloc_peak_mb": traced,
        "rss_peak_delta_mb": rss,
        "meets_time_target": seconds is not None and seconds["median"] < TARGET_SECONDS,
        "meets_memory_target": bool(peaks) and max(peaks) < TARGET_PEAK_MB,
    }


def report(
    response: Response, samples: dict[str, Samples], recorded: Recorded, rets: int, repeats: int, full_rets: bool
) -> dict[str, Any]:
    return {
        "items": response.items,
        "active_items": response.active,
        "repeats": repeats,
        "full_rets": full_rets,
        "response_bytes": response.size_bytes,
        "response_mb": round(response.size_bytes / MB, 3),
        "response_build_s": round(response.build_seconds, 3),
        "rets_parsed": rets,
        "recorded": {
            "count": recorded.count,
            "queued": recorded.queued,
            "item_rows": recorded.item_rows,
            "pending_rows": recorded.pending_rows,
        },
        "rss_peak_measured": bool(samples["parse"].rss_peak_delta),
        "targets": {"seconds": TARGET_SECONDS, "peak_mb": TARGET_PEAK_MB},
        "phases": {name: phase_report(samples[name]) for name in PHASES},
    }


def problems(data: dict[str, Any]) -> list[str]:
    found = []
    if data["rets_parsed"] != data["items"]:
        found.append(f"{data['rets_parsed']} Rets parsed, expected {data['items']}")
    rec = data["recorded"]
    if rec["count"] != data["items"] or rec["item_rows"] != data["items"]:
        found.append(f"{rec['count']} items recorded ({rec['item_rows']} rows), expected {data['items']}")
    if rec["queued"] != data["active_items"] or rec["pending_rows"] != data["active_items"]:
        found.append(
            f"{rec['queued']} queued ({rec['pending_rows']} rows), expected the {data['active_items']} active items"
        )
    return found


# --------------------------------------------------------------------------- output

LABELS = {"parse": "parse_response", "record": "record_items", "both": "parse + record"}


def _triple(stats: dict[str, float] | None, digits: int) -> str:
    if stats is None:
        return "n/a"
    return f"min {stats['min']:.{digits}f}  median {stats['median']:.{digits}f}  max {stats['max']:.{digits}f}"


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    rec = data["recorded"]
    kind = "full Rets" if data["full_rets"] else "the engine's IncludeRetElement list"
    rows = [
        ("response", f"{data['items']} ItemInventoryRet in one ItemInventoryQueryRs ({kind})"),
        ("response size", f"{data['response_mb']:.3f} MB ({data['response_bytes']:,} bytes)"),
        (
            "recorded",
            f"{rec['count']} items, {rec['queued']} queued; {rec['item_rows']} item rows, "
            f"{rec['pending_rows']} pending rows",
        ),
        ("repeats", str(data["repeats"])),
    ]
    target_s, target_mb = data["targets"]["seconds"], data["targets"]["peak_mb"]
    for name in PHASES:
        phase = data["phases"][name]
        label = LABELS[name]
        rows.append(
            (
                f"{label} s",
                f"{_triple(phase['seconds'], 3)}   target < {target_s:g} s: {verdict(phase['meets_time_target'])}",
            )
        )
        rows.append((f"{label} tracemalloc MB", _triple(phase["tracemalloc_peak_mb"], 1)))
        rows.append(
            (
                f"{label} RSS peak MB",
                f"{_triple(phase['rss_peak_delta_mb'], 1)}   target < {target_mb:g} MB: "
                f"{verdict(phase['meets_memory_target'])}",
            )
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.parse_items", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS, help="items in the response (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs of each phase (default %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the item generator (default %(default)s)"
    )
    parser.add_argument(
        "--full-rets", action="store_true", help="ask for every element of each Ret (no IncludeRetElement)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="write a pyinstrument text report of one parse + record to FILE"
    )
    args = parser.parse_args(argv)
    if args.items < 1 or args.repeats < 1:
        parser.error("--items and --repeats must be 1 or more")
    if args.items > 999_999:
        parser.error("--items must be at most 999999 (the item names are XXX-nnnnnn)")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    response = make_response(args.items, args.seed, args.full_rets)
    with tempfile.TemporaryDirectory(prefix="connex-bench-") as tmp:
        folder = Path(tmp)
        samples, recorded, rets = await run_phases(response, args.repeats, folder)
        if args.profile is not None:
            await profile_once(response, folder, args.profile)
    return report(response, samples, recorded, rets, args.repeats, args.full_rets)


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    configure_logging(level="warning", json=False)
    data = asyncio.run(run(args))
    text = json.dumps(data, indent=2) if args.json else format_table(_rows(data))
    return finish(text, problems(data), out)


if __name__ == "__main__":
    sys.exit(main())
