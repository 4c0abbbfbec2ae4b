"""Engine events: small frozen dataclasses sent to whoever listens (the interface, tests).

The engine never knows who listens; the interface turns these into Textual messages, the headless
runner ignores them (its record is the structured log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("connex.events")


@dataclass(frozen=True)
class Event:
    def describe(self) -> tuple[str, str]:
        """(level, one line for a person) as the event log shows it."""
        return "info", type(self).__name__


@dataclass(frozen=True)
class SessionStarted(Event):
    session_id: int
    client: str

    def describe(self) -> tuple[str, str]:
        return "info", f"Web Connector session {self.session_id} started ({self.client or 'unknown address'})"


@dataclass(frozen=True)
class SessionEnded(Event):
    session_id: int
    result: str
    requests: int
    summary: str

    def describe(self) -> tuple[str, str]:
        # A superseded session is a dropped connection the next run has already taken over from.
        level = {"ok": "info", "superseded": "warning"}.get(self.result, "error")
        return level, f"Web Connector session {self.session_id} ended: {self.summary} ({self.requests} calls)"


@dataclass(frozen=True)
class OrderPosted(Event):
    order_id: int
    number: str
    txn_id: str

    def describe(self) -> tuple[str, str]:
        return "info", f"order {self.number} posted to QuickBooks (TxnID {self.txn_id})"


@dataclass(frozen=True)
class OrderFailed(Event):
    order_id: int
    number: str
    reason: str

    def describe(self) -> tuple[str, str]:
        return "error", f"order {self.number} failed: {self.reason}"


@dataclass(frozen=True)
class PendingQueued(Event):
    """Stock updates were queued for the store (the inventory task wakes up)."""

    count: int

    def describe(self) -> tuple[str, str]:
        return "info", f"{self.count} stock updates queued"


@dataclass(frozen=True)
class ItemsRead(Event):
    count: int
    queued: int

    def describe(self) -> tuple[str, str]:
        return "info", f"{self.count} QuickBooks items read, {self.queued} stock updates queued"


@dataclass(frozen=True)
class StockPushed(Event):
    pushed: int
    failed: int
    retrying: int

    def describe(self) -> tuple[str, str]:
        level = "warning" if self.failed or self.retrying else "info"
        return level, f"stock batch: {self.pushed} pushed, {self.failed} failed, {self.retrying} to retry"


@dataclass(frozen=True)
class TaskFinished(Event):
    name: str
    summary: str
    ok: bool

    def describe(self) -> tuple[str, str]:
        return ("info" if self.ok else "error"), f"task {self.name}: {self.summary}"


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out to listeners. A listener that raises misses only this event: the error is logged
    (`event listener failed`, with the event's kind, the listener and the traceback) and the other
    listeners and the engine carry on."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the sync, but is not hidden either
                log.exception("event listener failed", kind=type(event).__name__, listener=_name(listener))


def _name(listener: Listener) -> str:
    """`module.qualname` of a function or bound method (what a person can look up), else its type."""
    target = getattr(listener, "__func__", listener)
    qualname = getattr(target, "__qualname__", None) or type(listener).__qualname__
    return f"{getattr(target, '__module__', '?')}.{qualname}"
