"""The store's pace as the dashboard shows it: what engine/dispatch.py writes after a drain (meta
`store.throughput`) and the read model reads back. Kept apart from the dispatcher so that the read
models (and `connex-tui status`) import nothing that logs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

THROUGHPUT_KEY = "store.throughput"


@dataclass(frozen=True)
class Throughput:
    concurrency: int
    maximum: int
    rtt_p50: float | None
    rtt_p95: float | None
    updates_per_second: float | None
    at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Throughput | None:
        """None for nothing recorded or anything unreadable (the dashboard then shows nothing)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(
                concurrency=int(data["concurrency"]),
                maximum=int(data["maximum"]),
                rtt_p50=None if data.get("rtt_p50") is None else float(data["rtt_p50"]),
                rtt_p95=None if data.get("rtt_p95") is None else float(data["rtt_p95"]),
                updates_per_second=None
                if data.get("updates_per_second") is None
                else float(data["updates_per_second"]),
                at=str(data.get("at") or ""),
            )
        except (ValueError, KeyError, TypeError):
            return None
