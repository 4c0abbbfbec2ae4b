"""The interface benchmark runs end to end at a tiny size and reports what it measured.

It runs as a subprocess so the benchmark's event loop, its forked SOAP client and its logging set-up
stay out of this one. No timing is asserted: only that the figures are there, consistent with each
other and with the sizes asked for (about 20 s on the 2-core machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
LOG_LINES, PENDING = 2000, 200
MODES = ("pending", "sku_log", "orders", "tasks", "events", "dashboard")
WINDOWS = ("no_app", "app_idle", "app_busy")


def _latency(stats: dict, high: str) -> None:
    assert {"n", "p50", high, "max"} <= stats.keys(), stats
    if stats["n"]:
        assert 0 <= stats["p50"] <= stats[high] <= stats["max"], stats


def test_bench_tui_tiny_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.tui", "--log-lines", str(LOG_LINES), "--pending", str(PENDING), "--json"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)

    assert (data["log_lines"], data["pending"]) == (LOG_LINES, PENDING)
    assert data["errors"] == []
    machine = data["machine"]
    assert machine["cpus"] >= 1 and machine["cpus_usable"] >= 1 and machine["python"] and machine["textual"]
    assert data["targets"] == {"switch_ms": 200.0, "p99_ms": 50.0}
    assert data["size"] == [100, 30]

    switch = data["switch"]
    assert switch["switches"] == switch["rounds"] * len(MODES)
    for mode in (*MODES, "all"):
        _latency(switch[mode]["loaded_ms"], "p95")
        _latency(switch[mode]["shown_ms"], "p95")
        assert switch[mode]["loaded_ms"]["max"] <= switch[mode]["shown_ms"]["max"]
    for mode in MODES:
        assert switch[mode]["shown_ms"]["n"] == switch["rounds"]
    assert switch["all"]["shown_ms"]["n"] == switch["switches"]
    assert 0 <= switch["all"]["over_half_target_with_gen2"] <= switch["all"]["over_half_target"] <= switch["switches"]
    assert isinstance(switch["meets_target"], bool) and isinstance(switch["meets_target_max"], bool)
    assert {"gen0", "gen1", "gen2"} <= switch["gc"].keys()

    endpoint = data["endpoint"]
    assert set(endpoint) == set(WINDOWS)
    for name in WINDOWS:
        window = endpoint[name]
        assert window["calls"] > 0 and window["seconds"] > 0, name
        assert window["failed_calls"] == 0 and window["errors"] == [], (name, window["errors"])
        assert window["sessions"] > 0 and window["sessions_not_ok"] == [], name
        for key in ("all", "light", "probe", "server_ms", "loop_lag_ms"):
            _latency(window[key], "p99")
        assert window["all"]["n"] == window["calls"]
        assert window["light"]["n"] <= window["calls"]
        assert window["probe"]["n"] > 0
        assert {"serverVersion", "getLastError", "session:sendRequestXML", "session:receiveResponseXML"} <= (
            window["by_method"].keys()
        )
        assert window["cpu_s"] >= 0 and window["gc"]["gen2"]["count"] >= 0
    assert isinstance(data["endpoint_meets_target"], bool) and isinstance(data["probe_meets_target"], bool)

    busy = data["busy"]
    _latency(busy["switch"]["shown_ms"], "p95")
    assert busy["switch"]["shown_ms"]["n"] == busy["rounds"] * len(MODES)
    assert busy["older_page_ms"]["n"] > 0
    assert busy["sku_log_rows_loaded"] > 200  # older pages were read as the log was scrolled

    shown = data["shown"]
    assert shown["pending_rows"] == PENDING and shown["pending_total"] >= PENDING
    assert shown["sku_log_rows"] == busy["sku_log_rows_loaded"]
    assert shown["orders_rows"] == 200 and shown["tasks_rows"] == 5
    for label in ("after_warm_up", "after_busy"):
        heap = data["heap"][label]
        assert heap["tracked_objects"] > 0 and heap["full_collection_ms"] >= 0 and heap["detached_widgets_alive"] >= 0
