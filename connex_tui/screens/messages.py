"""Messages between the engine side and the widgets (workers post them, handlers update widgets)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ..engine.events import Event


class EngineEvent(Message):
    """An engine event, in-process (attached mode), delivered on the App's loop."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class Loaded(Message):
    """A screen's snapshot has been read from the database; its handler applies it."""

    def __init__(self, params: Any, data: Any) -> None:
        super().__init__()
        self.params = params
        self.data = data
