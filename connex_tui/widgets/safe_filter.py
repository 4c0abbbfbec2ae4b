"""The last line of defence: no character a terminal would obey leaves a widget.

Every screen writes stored values through `textsafe.visible`, which shows an ESC or a bidi override
as an escape. This line filter (applied by Textual to every line of every widget, toasts and
the command palette included) catches whatever a widget renders that did not pass there, such as
text pasted into an input: such characters are zero cells wide and are removed, so the layout is
unchanged; a lone surrogate (one cell, and unencodable) becomes U+FFFD.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from ..textsafe import UNSAFE


def _replace(match: re.Match[str]) -> str:
    return "\ufffd" if cell_len(match.group()) else ""


class UnsafeTextFilter(LineFilter):
    def __init__(self) -> None:
        super().__init__(enabled=True)
        self.removed = 0  # characters removed or replaced (tests: what reached this layer)

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        search = UNSAFE.search
        if not any(search(segment.text) for segment in segments if not segment.control):
            return segments
        cleaned: list[Segment] = []
        for segment in segments:
            if segment.control or not search(segment.text):
                cleaned.append(segment)
                continue
            self.removed += len(UNSAFE.findall(segment.text))
            text = UNSAFE.sub(_replace, segment.text)
            if text:
                cleaned.append(Segment(text, segment.style))
        return cleaned
