"""Helpers the benchmarks in `bench/` share, kept here once instead of a copy in each script.

Each benchmark still decides what it measures and how its report reads; these are only the pieces
whose logic was the same in every script that had a copy: nearest-rank latency figures, the
label/value table, the met/MISSED verdict, the optional pyinstrument profile, the engine
configuration a benchmark starts from, the item names, the SIGTERM handler and the end of `main`
(report on stdout, errors on stderr, exit status). Where the scripts differ (a p95 instead of a
p99, the count under "n", two decimals, a profile appended under a label), the difference is a
parameter, so that their printed output and their JSON stay exactly what they were.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connex_tui.engine.config import Config, parse_config

# --------------------------------------------------------------------------- set-up


def item_names(count: int, prefix: str = "BENCH", digits: int = 5) -> list[str]:
    """`count` SKUs PREFIX-00001..; zero-padded so that they sort in the order they were made."""
    return [f"{prefix}-{n:0{digits}d}" for n in range(1, count + 1)]


def bench_config(folder: Path, password: str, *, name: str = "bench", **sections: Mapping[str, Any]) -> Config:
    """The engine's configuration for a benchmark, built as tests/conftest.py make_config builds it:
    the database `folder`/`name`.db, the endpoint on a free port of 127.0.0.1 (port 0), storefront
    "none", and item reads never skipped (read_min_interval_seconds 0: every session reads what the
    benchmark changed). `sections` are merged into those, e.g. storefront=..., orders=...; every
    other setting stays at its default."""
    data: dict[str, dict[str, Any]] = {
        "database": {"path": str(folder / f"{name}.db")},
        "qbwc": {"host": "127.0.0.1", "port": 0, "password": password, "read_min_interval_seconds": 0},
        "storefront": {"platform": "none"},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return parse_config(data, folder / f"{name}.toml", {})


# --------------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values): always one of the values measured, never an
    interpolation between two of them."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_ms(
    seconds: Sequence[float], *, high: float = 0.99, count_key: str = "calls", digits: int = 3
) -> dict[str, float | int]:
    """How many, p50, the `high` percentile (named after it: 0.99 is "p99", 0.95 "p95") and max, in
    milliseconds rounded to `digits`. `count_key` and `digits` differ between the benchmarks because
    their JSON already differs (bench.tui says "n" and keeps two decimals)."""
    return {
        count_key: len(seconds),
        "p50": round(percentile(seconds, 0.50) * 1000, digits),
        f"p{round(high * 100)}": round(percentile(seconds, high) * 1000, digits),
        "max": round(max(seconds, default=0.0) * 1000, digits),
    }


def latency_text(stats: Mapping[str, Any]) -> str:
    """A table cell for a `latency_ms` result with the default keys (bench.qbwc_session and
    bench.engine_load; bench.tui pads its figures and says "n", with a `_lat` of its own)."""
    return f"p50 {stats['p50']:.2f}  p99 {stats['p99']:.2f}  max {stats['max']:.2f}  ({stats['calls']} calls)"


@contextmanager
def profiled(
    path: Path | None,
    *,
    interval: float = 0.001,
    label: str | None = None,
    processor_options: dict[str, Any] | None = None,
) -> Iterator[None]:
    """Profile the block with pyinstrument into `path`, if asked (a path) and installed (else say so
    on stderr and run the block unprofiled: the benchmark's figures are still worth having).

    With a `label` the report is appended under a "===== label" line instead of replacing the file,
    so that several profiled blocks of one run share it (the caller empties the file first).
    `processor_options` go to pyinstrument's text renderer (which frames to show)."""
    if path is None:
        yield
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        print(f"--profile: pyinstrument is not installed; {path} not written", file=sys.stderr)
        yield
        return
    # async_mode "disabled": sample the whole thread, so every task on the event loop is in the
    # report (the server's handlers and the interface run in tasks other than the one profiled).
    profiler = Profiler(interval=interval, async_mode="disabled")
    # Start the report at the benchmark's `with` line, not here: this generator's caller is
    # contextlib's __enter__, and that one's caller is the benchmark (pyinstrument's advice for wrappers).
    profiler.start(caller_frame=inspect.currentframe().f_back.f_back)  # type: ignore[union-attr]
    try:
        yield
    finally:
        profiler.stop()
        text = profiler.output_text(unicode=True, color=False, processor_options=processor_options)
        if label is None:
            path.write_text(text, encoding="utf-8")
            print(f"--profile: pyinstrument report written to {path}", file=sys.stderr)
        else:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"===== {label}\n{text}\n")
            print(f"--profile: pyinstrument report of {label} appended to {path}", file=sys.stderr)


# --------------------------------------------------------------------------- output


def verdict(ok: bool) -> str:
    """A target's outcome; MISSED in capitals so that it stands out in a long table."""
    return "met" if ok else "MISSED"


def format_table(rows: Sequence[tuple[str, str]]) -> str:
    """Label/value rows, the values in one column after the longest label. (bench.stock_push has a
    table of another shape, one column per figure, and its own format_table.)"""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def finish(text: str, errors: Sequence[str], out: Callable[[str], None] = print) -> int:
    """The end of every benchmark's `main`: the report through `out`, then each error on stderr (so
    that --json output stays parseable), and the exit status: 1 if anything did not work."""
    out(text)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def raise_keyboard_interrupt(_signum: int, _frame: Any) -> None:
    """A SIGTERM handler: unwind as Ctrl-C does, so that the `finally` blocks stop the child
    processes (engine, store, SOAP client) instead of leaving them behind."""
    raise KeyboardInterrupt
