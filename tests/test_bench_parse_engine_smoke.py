"""The item-parsing benchmark and the engine load benchmark run end to end at a tiny size and
report what they did.

They run as subprocesses so the benchmarks' logging set-up, event loops, forked store emulator and
engine subprocess stay out of this one. No timing or memory figure is asserted: only that the
figures are there, well-ordered, and that the counts match the sizes asked for.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
PARSE_ITEMS, REPEATS = 200, 2
LOAD_ITEMS, LOAD_PENDING = 300, 100
HAMMER_METHODS = ("serverVersion", "authenticate", "getLastError")


def run_json(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", *args, "--json"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_ordered(stats: dict[str, float]) -> None:
    assert 0 <= stats["min"] <= stats["median"] <= stats["max"], stats


def assert_latency(stats: dict[str, Any]) -> None:
    assert {"calls", "p50", "p99", "max"} <= stats.keys()
    assert 0 <= stats["p50"] <= stats["p99"] <= stats["max"], stats


def test_bench_parse_items_tiny_json() -> None:
    data = run_json("bench.parse_items", "--items", str(PARSE_ITEMS), "--repeats", str(REPEATS))

    assert data["items"] == PARSE_ITEMS
    assert data["repeats"] == REPEATS
    assert data["rets_parsed"] == PARSE_ITEMS
    assert 0 < data["active_items"] <= PARSE_ITEMS
    assert data["response_bytes"] > 100 * PARSE_ITEMS
    assert math.isclose(data["response_mb"], data["response_bytes"] / 1_000_000, abs_tol=0.001)
    recorded = data["recorded"]
    assert recorded["count"] == recorded["item_rows"] == PARSE_ITEMS
    assert recorded["queued"] == recorded["pending_rows"] == data["active_items"]
    assert data["targets"] == {"seconds": 1.0, "peak_mb": 150.0}

    assert set(data["phases"]) == {"parse", "record", "both"}
    for phase in data["phases"].values():
        assert phase["runs"] == REPEATS
        assert_ordered(phase["seconds"])
        assert_ordered(phase["tracemalloc_peak_mb"])
        if data["rss_peak_measured"]:
            assert_ordered(phase["rss_peak_delta_mb"])
        assert isinstance(phase["meets_time_target"], bool)
        assert isinstance(phase["meets_memory_target"], bool)


def test_bench_engine_load_tiny_json() -> None:
    data = run_json(
        "bench.engine_load",
        "--items",
        str(LOAD_ITEMS),
        "--pending",
        str(LOAD_PENDING),
        "--settle-seconds",
        "0.1",
        "--idle-seconds",
        "0.3",
    )

    assert (data["items"], data["pending"], data["store_skus"]) == (LOAD_ITEMS, LOAD_PENDING, LOAD_PENDING)
    assert data["targets"] == {"rss_mb": 200.0, "p99_ms": 50.0}
    engine = data["engine"]
    assert engine["exit_code"] == 0
    assert engine["pid"] > 0 and engine["startup_s"] > 0
    assert engine["command"][1:5] == ["-m", "connex_tui.cli", "run", "--headless"]

    memory = data["memory"]
    assert list(memory["snapshots"]) == ["listening", "settled", "after_session", "after_push"]
    for label, snap in memory["snapshots"].items():
        assert 0 < snap["vm_rss_mb"] <= snap["vm_hwm_mb"], snap
        if label != "listening":
            assert snap["pending_rows"] == 0, snap
    assert memory["peak_hwm_mb"] == max(s["vm_hwm_mb"] for s in memory["snapshots"].values())
    assert {"settle", "session", "push"} <= memory["phase_max_rss_mb"].keys()
    assert isinstance(memory["meets_target_rss"], bool) and isinstance(memory["meets_target_hwm"], bool)

    assert data["initial_drain"]["rows"] == LOAD_PENDING
    assert data["initial_drain"]["failed"] == 0
    session = data["session"]
    assert session["status"] == "ok"
    assert session["queued"] == LOAD_PENDING
    assert session["items_read"] >= LOAD_PENDING  # the watermark is inclusive: the newest item comes again
    assert session["failed"] == 0
    assert session["exchanges"] >= 2
    for method in ("sendRequestXML", "receiveResponseXML"):
        assert_latency(session["server_ms"][method])
        assert session["server_ms"][method]["calls"] == session["exchanges"]

    push = data["push"]
    assert push["queued"] == push["store_checked"] == LOAD_PENDING
    assert push["failed"] == 0 and push["store_differing"] == 0
    assert push["drain_s"] > 0
    assert push["batch_calls_all_phases"] >= 3 * math.ceil(LOAD_PENDING / 100)  # start-up, session, push

    endpoint = data["endpoint"]
    assert endpoint["errors"] == []
    assert not endpoint["bounded"]
    for window in ("idle", "pushing"):
        stats = endpoint[window]
        assert stats["failed_calls"] == 0
        assert_latency(stats["all"])
        assert stats["all"]["calls"] == sum(stats[m]["calls"] for m in HAMMER_METHODS)
        for method in HAMMER_METHODS:
            assert_latency(stats[method])
    assert endpoint["pushing"]["all"]["calls"] > 0
    assert endpoint["calls"] >= endpoint["idle"]["all"]["calls"] + endpoint["pushing"]["all"]["calls"]
    assert_latency(endpoint["server_ms_pushing"]["all"])
    assert isinstance(endpoint["meets_target"], bool)
