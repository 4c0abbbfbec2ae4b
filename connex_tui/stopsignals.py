"""Stop the process cleanly on the signals this platform has.

POSIX: SIGTERM (systemd, kill), SIGINT (ctrl+c) and SIGHUP (the terminal went away), through the
event loop's `add_signal_handler`. Windows has no SIGHUP, and its ProactorEventLoop raises
NotImplementedError from `add_signal_handler`; there SIGINT, SIGTERM and SIGBREAK (ctrl+break, and
what a service wrapper sends a console program) go through `signal.signal`, whose handler hands the
stop to the loop thread-safely.

Evidence: https://docs.python.org/3/library/asyncio-platforms.html ("All event loops on Windows do
not support ... loop.add_signal_handler() and loop.remove_signal_handler()"; the base class in
asyncio/events.py raises NotImplementedError, as python/cpython#137863 shows). NSSM stops a console
program with a Control-C event first (nssm README.txt, "Stopping the service"), which Python
delivers as SIGINT; the console's ctrl+break is SIGBREAK.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable
from typing import Any

STOP_SIGNAL_NAMES = ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK")


def stop_signals(names: Iterable[str] = STOP_SIGNAL_NAMES) -> list[signal.Signals]:
    """The named signals this platform defines (SIGHUP is POSIX only, SIGBREAK Windows only)."""
    found = (getattr(signal, name, None) for name in names)
    return [sig for sig in found if isinstance(sig, signal.Signals)]


def on_stop_signals(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], Any], names: Iterable[str] = STOP_SIGNAL_NAMES
) -> Callable[[], None]:
    """Call `callback` in the loop when one of the signals arrives; returns the undo."""
    undo: list[Callable[[], None]] = []
    for sig in stop_signals(names):
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError):
            undo.append(_with_signal_module(loop, sig, callback))
        else:
            undo.append(_remover(loop, sig))

    def restore() -> None:
        for step in undo:
            with contextlib.suppress(Exception):
                step()

    return restore


def _remover(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> Callable[[], None]:
    def remove() -> None:
        loop.remove_signal_handler(sig)

    return remove


def _with_signal_module(
    loop: asyncio.AbstractEventLoop, sig: signal.Signals, callback: Callable[[], Any]
) -> Callable[[], None]:
    """The fallback: a plain handler (it runs between bytecodes of the main thread) that only
    schedules the callback on the loop."""

    def handler(_signum: int, _frame: object) -> None:
        loop.call_soon_threadsafe(callback)

    try:
        previous = signal.signal(sig, handler)
    except (OSError, ValueError, RuntimeError):  # not the main thread, or a signal this OS refuses
        return lambda: None

    def put_back() -> None:
        signal.signal(sig, previous)

    return put_back
