"""The log file, rotated: a text stream that structlog prints JSON lines to.

Two ways, chosen by `[logging] rotate`:

* "size" (the default): `logging.handlers.RotatingFileHandler`. The process itself renames
  connex.log to connex.log.1 at `max_megabytes`, keeping `backups` files. It needs nothing outside
  the process, so it is the one that works on Windows (a service has no logrotate, and Windows
  cannot rename a file another handle holds open).
* "external": `logging.handlers.WatchedFileHandler`. logrotate (or newsyslog) moves the file; the
  handler sees the inode change before the next line and reopens the path. For servers where
  logrotate already owns every log's policy (no `copytruncate` needed). POSIX only, as the stdlib
  documentation says of WatchedFileHandler.

Writes are line-buffered into whole records, so a rotation never splits a JSON line. Every file
the handlers open (the first, and each new one after a rotation) is created readable by its owner
only (0600): the log names orders, SKUs and client addresses.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from .config import LoggingConfig
from .private_files import create_private

MEGABYTE = 1024 * 1024


class LogFile:
    """A file-like object (`write`, `flush`, `close`, `isatty`) over a rotating handler."""

    def __init__(self, handler: logging.FileHandler) -> None:
        self.handler = handler
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.path = Path(handler.baseFilename)
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            record = logging.LogRecord("connex", logging.INFO, "", 0, line, None, None)
            self.handler.handle(record)
        return len(text)

    def flush(self) -> None:
        self.handler.flush()

    def close(self) -> None:
        if self._partial:
            self.write("\n")
        self.handler.close()

    def isatty(self) -> bool:
        return False

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PrivateRotating(logging.handlers.RotatingFileHandler):
    def _open(self):  # type: ignore[no-untyped-def]  # typeshed: a TextIOWrapper
        create_private(Path(self.baseFilename))  # a new file after a rollover, too
        return super()._open()


class _PrivateWatched(logging.handlers.WatchedFileHandler):
    def _open(self):  # type: ignore[no-untyped-def]
        create_private(Path(self.baseFilename))  # the file logrotate's move left us to create
        return super()._open()


def open_log_file(path: Path, config: LoggingConfig) -> LogFile:
    """The log file at `path`, rotated as `config` says; its folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler: logging.FileHandler
    if config.rotate == "external":
        handler = _PrivateWatched(path, encoding="utf-8")
    else:
        handler = _PrivateRotating(
            path, maxBytes=config.max_megabytes * MEGABYTE, backupCount=config.backups, encoding="utf-8"
        )
    return LogFile(handler)
