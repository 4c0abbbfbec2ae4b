"""Text from a store, QuickBooks or the database, made safe to show: the one display boundary.

Shoppers, staff and plugins write SKUs, order numbers, names and error messages. Shown as they
are, a control character becomes a terminal command (`ESC]0;…BEL` retitles the terminal,
`ESC]52;c;…BEL` writes the clipboard, `ESC[2J` clears the screen; C1 `\\x9b` is a one-byte ESC[ on
some terminals), and a bidi override (U+202E) makes the rest of a line read backwards, so an
error can hide what it says. Everything shown by the interface and written by the admin commands
goes through `visible()` (text) or `safe_json()` (a JSON document); neither imports Textual or
Rich, because the admin commands run on servers without them.

`visible()` keeps every ordinary character (brackets, quotes, emoji with their joiners, any
script) and writes each unsafe one as a Python-style escape (`\\x1b`, `\\u202e`), so a person sees
that it is there and which it was. Markup is not this module's business: the interface renders
text as plain `Content`/`Text`, never parses it.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Unsafe anywhere on a terminal: C0 controls, DEL, C1 controls; the bidi embeddings, overrides,
# isolates and marks (U+061C ALM, U+200E LRM, U+200F RLM, U+202A-U+202E, U+2066-U+2069); the
# line and paragraph separators (U+2028/U+2029, line breaks to some terminals and to JavaScript);
# lone surrogates (they cannot be encoded: writing one raises UnicodeEncodeError).
UNSAFE_CLASS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
UNSAFE = re.compile(f"[{UNSAFE_CLASS}]")

# json.dumps escapes C0 controls inside strings itself; these it writes raw (and the newlines of
# an indented document are C0 controls that must stay).
JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")

_LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")


def escape_char(ch: str) -> str:
    """`\\x1b`, `\\x9b`, `\\u202e`: how an unsafe character is written."""
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escape(match: re.Match[str]) -> str:
    return escape_char(match.group())


def _one_line(text: str) -> str:
    return UNSAFE.sub(_escape, _LINE_BREAK.sub(" ", text).replace("\t", " "))


def visible(value: object, *, lines: bool = False) -> str:
    """`value` as text that cannot drive a terminal or reorder what follows it.

    Whitespace controls become spaces (tab, line breaks, NEL); with `lines=True` line breaks are
    kept as `\\n` (a detail view shows a multi-line message as lines). Every other unsafe character
    is written as its escape. Safe text comes back unchanged, and `visible(visible(x)) ==
    visible(x)`.
    """
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if not UNSAFE.search(text):
        return text
    if not lines:
        return _one_line(text)
    return "\n".join(UNSAFE.sub(_escape, line.replace("\t", " ")) for line in _LINE_BREAK.split(text))


def clip(text: str, width: int, ellipsis: str = "…") -> str:
    """At most `width` characters, the last one an ellipsis when something was cut."""
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return ellipsis[:width]
    return text[: width - len(ellipsis)] + ellipsis


def short(value: object, width: int = 60) -> str:
    """One line, safe, and cut: a value quoted inside a sentence (a toast, a dialog's title)."""
    return clip(visible(value), width)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def safe_json(document: Any, *, indent: int | None = 2) -> str:
    """`document` as JSON whose text holds no unsafe character: every one is a `\\uXXXX` escape.

    Non-ASCII text stays readable (`ensure_ascii=False`), but json.dumps then writes DEL, C1
    controls, bidi characters and U+2028/U+2029 raw, and a lone surrogate makes the write fail.
    In a JSON document those can only occur inside strings, where `\\uXXXX` means the same
    character: a script reading the document gets exactly the stored value.
    """
    text = json.dumps(document, indent=indent, ensure_ascii=False, default=str)
    return JSON_RAW.sub(_json_escape, text)
