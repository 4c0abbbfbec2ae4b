"""The concurrent push benchmark runs end to end at a tiny size and reports what it did.

A subprocess, as the other benchmark smoke tests. No timing is asserted: only that the figures are
there, the store got every update, and the counts are the fewest possible.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def test_bench_concurrent_push_tiny_json() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.concurrent_push",
            "--latencies",
            "0.05",
            "--items",
            "300",
            "--serial-items",
            "100",
            "--per-item",
            "0.0002",
            "--shopify-latency",
            "0.05",
            "--shopify-variants",
            "300",
            "--shopify-rounds",
            "2",
            "--json",
        ],
        check=False,
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (row,) = data["woocommerce"]
    assert row["latency_s"] == 0.05 and row["items"] == 300 and row["serial_items"] == 100
    assert row["bound_updates_per_s"] == round(8 * 100 / (0.05 + 100 * 0.0002), 1)
    for kind, items in (("concurrent", 300), ("serial", 100)):
        case = row[kind]
        assert case["batch_calls"] == math.ceil(items / 100)
        assert case["wrong_on_store"] == case["left_in_queue"] == case["same_item_overlaps"] == 0
        assert case["throttled"] == 0
    assert row["serial"]["gate_peak"] == 1 and row["serial"]["server_peak"] == 1
    shop = data["shopify"]
    assert shop["updates"] == 600 and shop["points"] >= 2 * 10
    assert shop["throttled_emulator"] == shop["throttled_client"] == 0
    assert shop["wrong_on_store"] == shop["left_in_queue"] == 0
