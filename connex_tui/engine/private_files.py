"""Files that hold the merchant's data are created readable by their owner only.

The database holds orders, customers' names and the sync's state; the log names SKUs, orders
and addresses. Both are created 0600 whatever the umask; SQLite then creates the database's
-wal, -shm and -journal files with the database file's own permissions (SQLite os_unix.c,
findCreateFileMode: a WAL or journal file takes the mode of its database). A file that already
exists and is readable by group or others is left as it is, with a warning naming the fix.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

PRIVATE = 0o600
COMPANIONS = ("-wal", "-shm", "-journal")


def create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (then nothing changes)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return
    try:
        if os.chmod in os.supports_fd:
            os.chmod(fd, PRIVATE)  # exactly 0600, whatever the umask
    finally:
        os.close(fd)


def wider_than_private(path: Path) -> str | None:
    """A one-line warning when `path` exists and group or others may read or write it."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if os.name == "nt" or not mode & 0o077:
        return None
    return (
        f"{path}: readable by group or others (mode {mode:04o}); it holds orders and customer names:"
        f" run `chmod 600 {shlex.quote(str(path))}`"
    )


def database_warnings(path: Path) -> list[str]:
    """Warnings for the database and its companion files."""
    found = [wider_than_private(path)]
    found += [wider_than_private(path.with_name(path.name + suffix)) for suffix in COMPANIONS]
    return [w for w in found if w]
