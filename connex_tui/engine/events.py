"""Engine events: small frozen dataclasses sent to whoever listens (the interface, tests).

The engine never knows who listens; the interface turns these into Textual messages, the headless
runner ignores them (its record is the structured log).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class SessionStarted(Event):
    session_id: int
    client: str


@dataclass(frozen=True)
class SessionEnded(Event):
    session_id: int
    result: str
    requests: int
    summary: str


@dataclass(frozen=True)
class OrderPosted(Event):
    order_id: int
    number: str
    txn_id: str


@dataclass(frozen=True)
class OrderFailed(Event):
    order_id: int
    number: str
    reason: str


@dataclass(frozen=True)
class PendingQueued(Event):
    """Stock updates were queued for the store (the inventory task wakes up)."""

    count: int


@dataclass(frozen=True)
class ItemsRead(Event):
    count: int
    queued: int


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out to listeners; a failing listener is dropped from this event, never the engine."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the sync
                pass
