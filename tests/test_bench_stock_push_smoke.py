"""The stock push benchmark runs end to end at a tiny size, on both store emulators, and reports
what it did.

It runs as a subprocess so the benchmark's logging set-up and event loops stay out of this one.
No timing is asserted: only that the figures are there and the counts are the fewest possible.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
ITEMS = 30


def test_bench_stock_push_tiny_json_both_platforms() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.stock_push", "--platform", "both", "--items", str(ITEMS), "--json"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)

    rows = data["rows"]
    assert sorted(row["platform"] for row in rows) == ["shopify", "woocommerce"]
    for row in rows:
        assert row["items"] == ITEMS
        assert row["status"] == "ok"
        assert row["stock_calls_min"] == math.ceil(ITEMS / row["batch_limit"])
        assert row["stock_calls"] == row["stock_calls_min"], row
        assert row["requests"] >= row["stock_calls"]
        assert row["client_requests"] == row["requests"]
        assert row["throttled_emulator"] == 0
        assert row["throttled_client"] == 0
        assert row["client_retries"] == 0
        assert row["skus_checked"] == ITEMS
        assert row["skus_differing"] == 0
        assert row["failed"] == 0
        for key in (
            "session_s",
            "close_to_last_update_s",
            "start_to_last_update_s",
            "queue_empty_after_close_s",
            "updates_per_s_from_start",
        ):
            assert row[key] is not None, key
        assert row["start_to_last_update_s"] > 0
