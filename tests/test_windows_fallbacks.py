"""The engine and the interface start where POSIX-only parts are missing, as on Windows.

Each test runs a real process whose `sitecustomize` takes away what Windows lacks: `termios`,
`fcntl`, `resource`, `pwd`, `grp`, `tty` and `pty` raise ImportError, `signal.SIGHUP` does not
exist, and the event loop's `add_signal_handler` raises NotImplementedError as Windows'
ProactorEventLoop does (asyncio/windows_events.py has no add_signal_handler; the base class raises).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.test_headless import PASSWORD, free_port, start_headless, wait_for, write_config

ROOT = Path(__file__).resolve().parent.parent

WINDOWS_LIKE = textwrap.dedent(
    """
    import asyncio, signal, sys

    BLOCKED = {"termios", "fcntl", "resource", "pwd", "grp", "tty", "pty"}

    class _NotOnWindows:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r} (simulated Windows)")
            return None

    sys.meta_path.insert(0, _NotOnWindows())
    for _name in BLOCKED:
        sys.modules.pop(_name, None)
    del signal.SIGHUP

    def _not_implemented(self, *args, **kwargs):
        raise NotImplementedError

    asyncio.AbstractEventLoop.add_signal_handler = _not_implemented
    asyncio.AbstractEventLoop.remove_signal_handler = _not_implemented
    import asyncio.unix_events
    asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _not_implemented
    asyncio.unix_events._UnixSelectorEventLoop.remove_signal_handler = _not_implemented
    """
)


def windows_like_env(folder: Path) -> dict[str, str]:
    hooks = folder / "windows_like"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(WINDOWS_LIKE)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)]), "QBWC_PW": PASSWORD}


def test_the_simulation_takes_the_posix_parts_away(tmp_path: Path) -> None:
    code = (
        "import asyncio, signal\n"
        "for name in ('termios', 'fcntl', 'resource'):\n"
        "    try:\n        __import__(name)\n    except ImportError:\n        print('no', name)\n"
        "print('SIGHUP' if hasattr(signal, 'SIGHUP') else 'no SIGHUP')\n"
        "async def main():\n"
        "    try:\n        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, print)\n"
        "    except NotImplementedError:\n        print('no add_signal_handler')\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=windows_like_env(tmp_path), timeout=60
    )
    assert out.stdout.split("\n")[:5] == [
        "no termios",
        "no fcntl",
        "no resource",
        "no SIGHUP",
        "no add_signal_handler",
    ], out.stdout + out.stderr


def test_headless_engine_starts_serves_and_stops_on_sigterm_without_posix_parts(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    proc = start_headless(config, windows_like_env(tmp_path))
    try:
        assert wait_for(f"http://127.0.0.1:{port}/qbwc", proc) == 200
        # The fallback handler (signal.signal, then call_soon_threadsafe) stops the engine cleanly.
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    names = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "qbwc_endpoint_listening" in names and names[-1] == "engine_stopped", stderr
    assert not (tmp_path / "state" / "connex.db-wal").exists()


INTERFACE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path

    from connex_tui.app import ConnexApp, run_app
    from connex_tui.backend import Backend
    from connex_tui.engine.config import load_config
    from connex_tui.engine.runtime import Engine

    seen = []

    class Driven(ConnexApp):
        CSS_PATH = str(Path(sys.modules[ConnexApp.__module__].__file__).with_name("app.tcss"))

        def on_ready(self) -> None:
            self.run_worker(self.drive())

        async def drive(self) -> None:
            # The app composes every screen once at start (a warm-up); then each switch lands.
            for mode in ("pending", "orders", "events", "dashboard"):
                await self.action_show(mode)
                for _ in range(100):
                    if self.current_mode == mode:
                        break
                    await asyncio.sleep(0.05)
                seen.append(type(self.screen).__name__)
            os.kill(os.getpid(), signal.SIGTERM)  # ends the interface like `q`, via the fallback

    async def main() -> None:
        engine = Engine(load_config(Path(sys.argv[1]), os.environ))
        await engine.start()
        try:
            await asyncio.wait_for(run_app(Driven(Backend.attached(engine)), headless=True), 60)
            print("screens", " ".join(seen))
        finally:
            await engine.stop()
        print("stopped cleanly")

    asyncio.run(main())
    """
)


def test_interface_runs_and_stops_on_sigterm_without_posix_parts(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    script = tmp_path / "interface.py"
    script.write_text(INTERFACE)
    started = time.monotonic()
    # Textual picks its driver from the platform (WindowsDriver there, LinuxDriver here, which needs
    # termios); TEXTUAL_DRIVER stands the headless driver in for the Windows one.
    env = {**windows_like_env(tmp_path), "TEXTUAL_DRIVER": "textual.drivers.headless_driver:HeadlessDriver"}
    out = subprocess.run(
        [sys.executable, str(script), str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(("screens", "stopped"))]
    assert lines == [
        "screens PendingScreen OrdersScreen EventsScreen DashboardScreen",
        "stopped cleanly",
    ], out.stdout + out.stderr
    assert time.monotonic() - started < 90


def test_stop_signals_are_those_the_platform_has(monkeypatch) -> None:
    from connex_tui import stopsignals

    monkeypatch.delattr(signal, "SIGHUP", raising=False)
    names = [sig.name for sig in stopsignals.stop_signals()]
    assert "SIGHUP" not in names and {"SIGTERM", "SIGINT"} <= set(names)


def test_sigterm_reaches_the_loop_through_the_fallback() -> None:
    """In-process: a loop refusing add_signal_handler still gets the stop, and the undo puts the
    previous handler back."""
    import asyncio

    from connex_tui.stopsignals import on_stop_signals

    class WindowsLikeLoop(asyncio.SelectorEventLoop):
        def add_signal_handler(self, *args: object, **kwargs: object) -> None:
            raise NotImplementedError

    loop = WindowsLikeLoop()
    before = signal.getsignal(signal.SIGTERM)
    try:
        stop = asyncio.Event()

        async def main() -> None:
            restore = on_stop_signals(asyncio.get_running_loop(), stop.set, ("SIGTERM",))
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(stop.wait(), 5)
            finally:
                restore()

        loop.run_until_complete(main())
    finally:
        loop.close()
    assert stop.is_set()
    assert signal.getsignal(signal.SIGTERM) == before
