"""Structured logging: JSON lines on stderr (headless) with every known secret masked.

Redaction is the last line of defence: secrets are never passed to the logger on purpose, but a
value that slips into an exception message is still replaced before it is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Protocol, TextIO, cast

import structlog

MASK = "***"


class SecretRedactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._clean(v) for v in value)
        return value

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        return {key: self._clean(value) for key, value in event.items()}


class LineSink(Protocol):
    """Where lines are printed: a text file or stream, or the rotating `LogFile`."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def configure_logging(
    *, level: str = "info", secrets: Iterable[str] = (), stream: TextIO | LineSink | None = None, json: bool = True
) -> None:
    """JSON lines to `stream` (stderr by default); call once at start-up."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, stream or sys.stderr)),
        cache_logger_on_first_use=False,
    )
