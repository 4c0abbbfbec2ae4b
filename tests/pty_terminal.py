"""A connex-tui command on a real terminal (a pseudo-terminal), for the tests that watch what the
process draws: it returns the process, the terminal's side of the pty, everything drawn so far, and the thread
reading it (done once the terminal closes)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence


def start_on_terminal(
    args: Sequence[str], *, columns: int, lines: int, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int, list[bytes], threading.Thread]:
    master, slave = pty.openpty()
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(lines), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "connex_tui.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    screen: list[bytes] = []

    def drain() -> None:  # the terminal's side: read everything the app draws
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            screen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return proc, master, screen, reader
