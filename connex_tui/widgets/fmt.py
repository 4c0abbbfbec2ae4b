"""Formatting for people: relative times from the backend's clock, quantities, durations, styles.

Every function that needs "now" takes it as an argument (the backend's injected clock), so the
same data renders the same text in tests and snapshots. Every value from the database is text, made
safe to show by `textsafe.visible` (control characters and bidi overrides written as escapes), and
rendered as Rich `Text` or Textual `Content`, never parsed as markup.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from rich.style import Style
from rich.text import Text

from ..engine.clock import parse_stamp_or_none
from ..textsafe import clip, visible


class Styled(NamedTuple):
    """A table cell with a role ("error", "warning", "success", "muted", "bold", "" = plain)."""

    text: str
    role: str = ""


Cell = str | Styled


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        hours = seconds / 3600
        return f"{int(hours)} h" if hours >= 10 or hours == int(hours) else f"{hours:.1f} h"
    return f"{int(seconds // 86400)} d"


def relative(value: str | None, now: datetime, *, empty: str = "-") -> str:
    """ "12 s ago", "in 4 min", "now"."""
    moment = parse_stamp_or_none(value)
    if moment is None:
        return empty
    delta = (moment - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago"


def due(value: str | None, now: datetime) -> str:
    """When a queued row is next tried: "due" once the time has passed."""
    moment = parse_stamp_or_none(value)
    if moment is None:
        return "-"
    delta = (moment - now).total_seconds()
    return "due" if delta <= 0 else f"in {_span(delta)}"


def clock_time(value: str | None, now: datetime) -> str:
    """ "14:03:27" today (in the clock's time zone), else "03-09 14:03"."""
    moment = parse_stamp_or_none(value)
    if moment is None:
        return "-"
    tz = now.tzinfo or timezone.utc
    local, today = moment.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%m-%d %H:%M")


def hms(value: str | None, now: datetime) -> str:
    """ "14:03:27" in the clock's time zone, whatever the day."""
    moment = parse_stamp_or_none(value)
    if moment is None:
        return "--:--:--"
    return moment.astimezone(now.tzinfo or timezone.utc).strftime("%H:%M:%S")


def full_time(value: str | None, now: datetime) -> str:
    moment = parse_stamp_or_none(value)
    if moment is None:
        return "-"
    tz = now.tzinfo or timezone.utc
    return f"{moment.astimezone(tz).strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({relative(value, now)})"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


QUANTITY_DIGITS = 24  # a stored quantity with more digits than this is shown as written


def quantity(value: str | None) -> str:
    if value is None or value == "":
        return "-"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return visible(value)
    if not number.is_finite() or abs(number.adjusted()) > QUANTITY_DIGITS:
        # Shown as stored: NaN, or "1e999999999", whose integer would take minutes and gigabytes.
        return visible(value)
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def one_line(text: str | None, limit: int = 500) -> str:
    """Safe, on one line (runs of whitespace become one space), cut to `limit` with an ellipsis."""
    if not text:
        return ""
    return clip(" ".join(visible(text).split()), limit)


def count(value: int) -> str:
    return f"{value:,}"


# ---------------------------------------------------------------------- styles from the theme

_ROLE_VARIABLE = {"error": "text-error", "warning": "text-warning", "success": "text-success", "accent": "text-accent"}


def role_styles(variables: dict[str, str]) -> dict[str, Style]:
    """Rich styles for cell roles, from the current theme's variables (so they follow the theme,
    16/256 colours and NO_COLOR, instead of hard-coding a truecolor value)."""
    from textual.color import Color, ColorParseError

    styles: dict[str, Style] = {"": Style(), "muted": Style(dim=True), "bold": Style(bold=True)}
    for role, name in _ROLE_VARIABLE.items():
        try:
            color = Color.parse(variables.get(name, ""))
            styles[role] = Style(color=color.rich_color, bold=role == "error")
        except (ColorParseError, ValueError, TypeError):
            styles[role] = Style(bold=True)
    return styles


def to_text(cell: Cell, styles: dict[str, Style]) -> Text:
    """A cell as Rich Text: never parsed as markup (SKUs and errors may contain brackets), control
    characters and bidi overrides written as escapes, cut with an ellipsis where the column ends."""
    if isinstance(cell, Styled):
        return Text(visible(cell.text), style=styles.get(cell.role, Style()), no_wrap=True, overflow="ellipsis", end="")
    return Text(visible(cell), no_wrap=True, overflow="ellipsis", end="")


def plain(cell: object) -> str:
    if isinstance(cell, Styled):
        return cell.text
    if isinstance(cell, Text):
        return cell.plain
    return str(cell)
