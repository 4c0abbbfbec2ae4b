"""Events: the tail of the engine's event log.

Lines come from the `events` table (`events_tail(after_id=...)`, so this works from another
process too) and are appended, never re-read; the log keeps the last `MAX_LINES`. In the engine's
own process an event is shown the moment it happens; when the same event then arrives from the
table it is not shown twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Label, Log

from ..engine.events import Event
from ..engine.views import EventRow
from ..textsafe import short
from ..widgets import fmt
from .base import DataScreen

MAX_LINES = 2000
LIVE_TTL_SECONDS = 30.0
LEVEL_WIDTH = 7


class LevelHighlighter(Highlighter):
    """Colours the level word of each line from the theme."""

    def __init__(self, styles: dict[str, Style]) -> None:
        self.styles = styles

    def highlight(self, text: Text) -> None:
        plain = text.plain
        start = 9  # after "HH:MM:SS "
        end = start + LEVEL_WIDTH
        level = plain[start:end].strip()
        style = self.styles.get({"error": "error", "warning": "warning"}.get(level, "muted"))
        if style is not None:
            text.stylize(style, start, end)
        if level == "error":
            text.stylize(self.styles.get("error", Style()), end)


class EventsScreen(DataScreen):
    MODE = "events"
    TITLE = "Events"
    BINDINGS = DataScreen.BINDINGS + []

    def __init__(self) -> None:
        super().__init__()
        self.after_id = 0
        self.lines_written = 0
        self._live: deque[tuple[float, str, str]] = deque(maxlen=500)  # (monotonic, kind, message)

    def compose_body(self) -> Iterable[Widget]:
        yield Label("", id="summary", classes="summary")
        yield Log(max_lines=MAX_LINES, highlight=True, auto_scroll=True, id="events-log")

    def on_mount(self) -> None:
        from ..widgets.fmt import role_styles

        log = self.query_one(Log)
        log.highlighter = LevelHighlighter(role_styles(self.app.get_css_variables()))
        log.focus()
        self._summary()
        self.connex.events_screen = self

    def _summary(self) -> None:
        source = "live, and from the engine's event log" if self.backend.live else "from the engine's event log"
        self.query_one("#summary", Label).update(Content(f"newest at the bottom · {source} · last {MAX_LINES:,} kept"))

    def _line(self, at: str, level: str, kind: str, message: str) -> str:
        # The level is matched by position (LevelHighlighter): it is cut to its width.
        return (
            f"{fmt.hms(at, self.now)} {short(level, LEVEL_WIDTH):<{LEVEL_WIDTH}} {short(kind, 24):<14}"
            f" {fmt.one_line(message, 1000)}"
        )

    def _write(self, line: str) -> None:
        self.query_one(Log).write_line(line)
        self.lines_written += 1

    # ------------------------------------------------------------------ live (attached mode)

    def add_live(self, event: Event) -> None:
        level, message = event.describe()
        message = self.backend.redact(message[:2000])
        kind = type(event).__name__
        self._live.append((self.backend.clock.monotonic(), kind, message))
        self._write(self._line(self.now.isoformat(), level, kind, message))

    def _already_shown(self, row: EventRow) -> bool:
        cutoff = self.backend.clock.monotonic() - LIVE_TTL_SECONDS
        while self._live and self._live[0][0] < cutoff:
            self._live.popleft()
        for index, (_at, kind, message) in enumerate(self._live):
            if kind == row.kind and message == row.message:
                del self._live[index]
                return True
        return False

    # ------------------------------------------------------------------ from the table

    def params(self) -> int:
        return 0

    async def fetch(self, params: Any) -> list[EventRow]:
        return await self.backend.events_tail(after_id=self.after_id)

    def apply(self, rows: list[EventRow]) -> None:
        if not rows:
            return
        if rows[0].id <= self.after_id:
            rows = [row for row in rows if row.id > self.after_id]
        if rows and self.after_id and rows[0].id > self.after_id + 1:
            skipped = rows[0].id - self.after_id - 1
            self._write(f"{'':8} {'':<{LEVEL_WIDTH}} … {skipped:,} more events arrived at once and are not shown here")
        for row in rows:
            if not self._already_shown(row):
                self._write(self._line(row.at, row.level, row.kind, row.message))
        if rows:
            self.after_id = rows[-1].id
