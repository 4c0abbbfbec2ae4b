"""The Shopify order-import benchmark runs at a tiny size, for the client as it is and for an
earlier commit's client, and reports the same orders read by both. No figure is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def test_bench_shopify_orders_tiny_json() -> None:
    before = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "82f984a^{commit}"], cwd=CHECKOUT, capture_output=True
    )
    command = [sys.executable, "-m", "bench.shopify_orders", "--orders", "60", "--json"]
    if before.returncode == 0:  # a shallow clone may not have it
        command += ["--before", "82f984a"]
    done = subprocess.run(command, cwd=CHECKOUT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for figures in data.values():
        assert figures["orders read"] == 60
        assert figures["throttled answers"] == 0
        assert figures["calls"] >= figures["orders queries (pages, refund batches)"] >= 1
        assert figures["actual points"] <= figures["requested points"]
