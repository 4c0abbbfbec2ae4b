"""The Web Connector session benchmark runs end to end at a tiny size and reports what it did.

It runs as a subprocess so the benchmark's logging set-up and event loop stay out of this one.
No timing is asserted: only that the figures are there and the counts match the sizes asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
ORDERS, ITEMS = 5, 30


def test_bench_qbwc_session_tiny_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.qbwc_session", "--orders", str(ORDERS), "--items", str(ITEMS), "--json"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)

    assert {"soap", "qbxml", "server_ms", "server_total_s", "sim_s", "wall_s"} <= data.keys()
    assert (data["orders"], data["items"]) == (ORDERS, ITEMS)
    assert data["posted"] == ORDERS
    assert data["sales_receipts"] == ORDERS
    assert data["item_rows"] == ITEMS
    assert data["status"] == "ok"

    soap = data["soap"]
    assert soap["by_method"]["sendRequestXML"] == soap["by_method"]["receiveResponseXML"] == soap["exchanges"]
    assert soap["http_calls"] == sum(soap["by_method"].values())
    qbxml = data["qbxml"]
    assert qbxml["order_adds"] == ORDERS
    assert qbxml["lookups"] == 0
    assert qbxml["item_pages"] >= 1
    assert qbxml["message_sets"] == soap["exchanges"]
    assert data["sim_calls"] == qbxml["message_sets"]
    for name in ("all", "sendRequestXML", "receiveResponseXML"):
        stats = data["server_ms"][name]
        assert {"calls", "p50", "p99", "max"} <= stats.keys()
        assert 0 <= stats["p50"] <= stats["p99"] <= stats["max"]
    assert data["server_ms"]["all"]["calls"] == soap["http_calls"]
