"""The WooCommerce stock benchmark runs end to end and reports the figures issue 10 asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def test_bench_woocommerce_stock_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.woocommerce_stock", "--rereads", "2", "--json"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["restocked_refund"]["credit_memos"] == 1
    assert data["parent_managed"]["parent_stock"] == 7
    assert data["parent_managed"]["variations"] == ["parent", "parent"]
    assert data["cancelled"]["qb_after_cancel"] == 20 and data["cancelled"]["credit_memos"] == 1
