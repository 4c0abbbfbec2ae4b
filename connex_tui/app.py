"""The Textual interface of connex-tui: six screens over one `Backend`.

The App never starts the engine. The caller either starts the engine and runs the App in the same
loop (`ConnexApp(Backend.attached(engine))`), or attaches to a database (`await Backend.open(path)`,
monitor mode), then `await run_app(app)`.

Live and never in the way: one timer (`refresh_seconds`) refreshes the visible screen only, and
engine events (in-process) nudge it at most four times a second; each screen reads one bounded
snapshot in a worker and applies it by difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TextIO

import structlog
from textual.app import App, ScreenStackError, SystemCommand, UnknownModeError
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen

from .backend import Backend
from .harness import Harness
from .stopsignals import on_stop_signals
from .engine.event_log import QUIET
from .engine.events import Event
from .screens.base import FOCUS_BINDINGS, DataScreen
from .screens.dashboard import DashboardScreen
from .screens.dialogs import KeysDialog
from .screens.events import EventsScreen
from .screens.messages import EngineEvent
from .screens.orders import OrdersScreen
from .screens.pending import PendingScreen
from .screens.sku_log import SkuLogScreen
from .screens.tasks import TasksScreen
from .textsafe import clip, short, visible
from .widgets.safe_filter import UnsafeTextFilter
from .widgets.status_bar import SCREENS

try:
    import termios  # POSIX only: the watchdog for a terminal that went away
except ImportError:  # Windows
    termios = None  # type: ignore[assignment]

SCREEN_CLASSES: dict[str, type[DataScreen]] = {
    "dashboard": DashboardScreen,
    "pending": PendingScreen,
    "sku_log": SkuLogScreen,
    "orders": OrdersScreen,
    "tasks": TasksScreen,
    "events": EventsScreen,
}
log = structlog.get_logger("connex.interface")
NUDGE_SECONDS = 0.25  # engine events refresh the visible screen at most this often
TOAST_CHARACTERS = 400  # a toast quoting a long store error is cut here (the detail view has it all)


class ConnexCommands(Provider):
    """The command palette: every screen switch and every action of every screen."""

    def entries(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: ConnexApp = self.app  # type: ignore[assignment]
        found: list[tuple[str, str, Callable[[], Any]]] = []
        for key, mode, title in SCREENS:
            found.append((f"Go to {title}", f"Show the {title} screen (key {key})", partial(app.action_show, mode)))
        found.append(
            (
                "Resume pushing" if app.paused else "Pause pushing",
                "Stop or restart stock pushes to the store (key p); orders keep flowing",
                app.action_toggle_pause,
            )
        )
        found.append(("Show keys", "Every key of this screen and the global ones (key ?)", app.action_show_keys))
        found.append(("Quit", "Leave the interface (key q)", app.action_quit))
        for mode, screen_class in SCREEN_CLASSES.items():
            for binding in screen_class.BINDINGS:
                if not isinstance(binding, Binding) or binding in FOCUS_BINDINGS or not binding.description:
                    continue
                key = app.get_key_display(app.effective(binding))
                found.append(
                    (
                        f"{screen_class.TITLE}: {binding.description}",
                        f"{binding.tooltip or binding.description} (key {key} on {screen_class.TITLE})",
                        partial(app.run_screen_action, mode, binding.action),
                    )
                )
        return found

    async def discover(self) -> Hits:
        for title, help_text, callback in self.entries():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self.entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class ConnexApp(App[None], inherit_bindings=False):
    CSS_PATH = "app.tcss"
    TITLE = "connex-tui"
    MODES: ClassVar[dict[str, Any]] = dict(SCREEN_CLASSES)  # type: ignore[misc]
    DEFAULT_MODE = "dashboard"
    COMMANDS = App.COMMANDS | {ConnexCommands}
    BINDINGS = [
        *(
            Binding(key, f"show('{mode}')", title, show=False, tooltip=f"Show the {title} screen", id=f"screen.{mode}")
            for key, mode, title in SCREENS
        ),
        Binding("p", "pause", "Pause", tooltip="Pause stock pushes to the store", id="sync.pause"),
        Binding("p", "resume", "Resume", tooltip="Resume stock pushes to the store", id="sync.resume"),
        Binding("question_mark", "show_keys", "Keys", tooltip="Show the keys", id="app.help"),
        Binding("q", "quit", "Quit", tooltip="Leave the interface", id="app.quit"),
        Binding("ctrl+q,ctrl+c", "quit", "Quit", show=False, priority=True, id="app.quit_now"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True, id="app.palette"),
    ]

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]

    paused: reactive[bool | None] = reactive(None, bindings=True)

    def __init__(
        self,
        backend: Backend,
        *,
        title_suffix: str = "",
        refresh_seconds: float = 0.5,
        harness: Harness | None = None,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        """`keymap`: binding id -> key string, already checked (`keymap.keymap_of(config)`)."""
        super().__init__()
        self.backend = backend
        self.configured_keymap = dict(keymap or {})
        self.harness = harness or Harness()  # what tests and bench/ change (harness.py)
        self.refresh_seconds = refresh_seconds
        self.title = f"connex-tui{title_suffix}"
        self.events_screen: EventsScreen | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._last_nudge = 0.0
        self._nudge_pending = False
        self._status_busy = False
        self._status_error: str | None = None
        self.warmed_up = False
        self._warming = False
        self._wanted_mode: str | None = None
        self.unsafe_filter = UnsafeTextFilter()

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), self.unsafe_filter]

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast is plain text. Toasts quote SKUs, order numbers and store errors, which are
        never markup (Textual would parse `[/]` and fail, or run `[@click=app.quit]` when clicked)
        nor terminal commands; `markup` is accepted for Textual's callers and ignored."""
        super().notify(
            clip(visible(message, lines=True), TOAST_CHARACTERS),
            title=short(title, 80),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    # ------------------------------------------------------------------ lifetime

    async def on_mount(self) -> None:
        if self.configured_keymap:
            self.set_keymap(self.configured_keymap)  # Textual applies it to every binding by id
        await self.backend.connect()
        if (
            not self.is_headless
            and self.console.color_system in ("standard", "windows")
            and self.theme == "textual-dark"
        ):
            self.theme = "ansi-dark"  # 16 colours: use the terminal's own palette
        self._unsubscribe = self.backend.subscribe(self._engine_event)
        self.set_interval(self.refresh_seconds, self._tick, name="refresh")
        self._tick()
        if self.harness.warm_up:
            self.call_after_refresh(self._warm_up)

    async def _warm_up(self) -> None:
        """Compose every screen once, right after the first paint and behind a batch (nothing
        flashes), so that the first visit of a screen costs what any other visit costs: Textual
        re-reads the stylesheet and composes a mode's screen the first time it is shown.
        A screen key pressed meanwhile is honoured when the warm-up ends."""
        home = self.current_mode
        self._warming = True
        try:
            with self.batch_update():
                for mode in self.MODES:
                    if self._wanted_mode is not None or self._exit:
                        break
                    if mode != self.current_mode:
                        await self.switch_mode(mode)
                if not self._exit:
                    await self.switch_mode(self._wanted_mode or home)
        except Exception as exc:  # the interface still works, only first visits are slower
            self.log.warning("warm-up stopped", error=repr(exc))
        finally:
            self._warming = False
            self._wanted_mode = None
        self._freeze_start_up_objects()
        self.warmed_up = True

    @staticmethod
    def _freeze_start_up_objects() -> None:
        """A product measure, not a test hook: everything built so far lives as long as the
        interface, so it is moved out of the collector's way. Otherwise a full collection walks it
        (100-250 ms) now and then, stalling a screen switch and the Web Connector's call that waits
        meanwhile (README "Performance": a full collection of the busy interface's objects holds the
        endpoint; `bench.tui` reports `frozen_objects` and the collections inside each window)."""
        gc.collect()
        gc.freeze()

    async def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.backend.release()

    def _engine_event(self, event: Event) -> None:
        """Engine side (maybe another thread): only post a message, never touch widgets."""
        self.post_message(EngineEvent(event))

    # ------------------------------------------------------------------ refresh

    def _tick(self) -> None:
        self.refresh_visible()
        self._poll_status()

    def refresh_visible(self) -> None:
        try:
            screen = self.screen
        except (ScreenStackError, UnknownModeError):  # starting, switching or closing
            return
        if isinstance(screen, DataScreen):
            screen.request_refresh()

    def _poll_status(self) -> None:
        if self._status_busy or self.backend.db_or_none is None:
            return
        self._status_busy = True
        self.run_worker(self._read_status(), group="status", exit_on_error=False)

    async def _read_status(self) -> None:
        """The pause flag, every tick. A failed read leaves the flag as it was: the screens tell the
        person about database trouble; the log says why the flag could not be read, once per error
        (not every tick) until a read succeeds again."""
        try:
            self.paused = await self.backend.is_paused()
            self._status_error = None
        except Exception as exc:
            error = self.backend.redact(f"{type(exc).__name__}: {exc}")
            if error != self._status_error:
                self._status_error = error
                log.warning("pause flag unreadable", error=error)
        finally:
            self._status_busy = False

    def on_engine_event(self, message: EngineEvent) -> None:
        if self.events_screen is not None and not isinstance(message.event, QUIET):
            self.events_screen.add_live(message.event)
        self._nudge()

    def _nudge(self) -> None:
        if self._nudge_pending:
            return
        wait = NUDGE_SECONDS - (self.backend.clock.monotonic() - self._last_nudge)
        if wait <= 0:
            self._do_nudge()
        else:
            self._nudge_pending = True
            self.set_timer(wait, self._do_nudge)

    def _do_nudge(self) -> None:
        self._nudge_pending = False
        self._last_nudge = self.backend.clock.monotonic()
        self.refresh_visible()

    # ------------------------------------------------------------------ actions

    async def action_show(self, mode: str) -> None:
        if self._warming:
            self._wanted_mode = mode
            return
        if self.current_mode != mode:
            await self.switch_mode(mode)

    async def run_screen_action(self, mode: str, action: str) -> None:
        """From the command palette: go to the screen, then run its action there."""
        await self.action_show(mode)
        screen = self.screen
        if isinstance(screen, DataScreen) and screen.MODE == mode:
            await screen.run_action(action)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return not self.paused
        if action == "resume":
            return bool(self.paused)
        return True

    async def action_pause(self) -> None:
        await self.backend.set_paused(True)
        self._show_paused(True)

    async def action_resume(self) -> None:
        await self.backend.set_paused(False)
        self._show_paused(False)

    async def action_toggle_pause(self) -> None:
        self._show_paused(await self.backend.toggle_paused())

    def _show_paused(self, paused: bool) -> None:
        self.paused = paused
        self.notify(
            "Stock pushes to the store are paused" if paused else "Stock pushes to the store resumed",
            title="Paused" if paused else "Pushing",
            severity="warning" if paused else "information",
        )
        self.refresh_visible()

    def effective(self, binding: Binding) -> Binding:
        """The binding with the key the keymap gives it (the first, if several)."""
        keys = self._keymap.get(binding.id or "")
        return binding.with_key(keys.split(",")[0], key_display=None) if keys else binding

    def action_show_keys(self) -> None:
        screen = self.screen
        if isinstance(screen, KeysDialog):
            screen.dismiss(None)
            return
        groups: dict[str, dict[tuple[int, str], list[Any]]] = {"screen": {}, "move": {}, "app": {}}
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.system:
                continue
            if active.node is self:
                group = groups["app"]
            elif (binding.id or "").startswith(("table.", "focus.")):
                group = groups["move"]
            else:
                group = groups["screen"]
            slot = group.setdefault((id(active.node), binding.action), [[], binding.description, active.enabled])
            shown = self.get_key_display(binding.with_key(key))
            if shown not in slot[0]:
                slot[0].append(shown)
        title = getattr(screen, "TITLE", "") or "This screen"
        listing = [
            (heading, [("/".join(keys), description, enabled) for keys, description, enabled in groups[name].values()])
            for name, heading in (("screen", f"{title}"), ("app", "Everywhere"), ("move", "Moving around"))
            if groups[name]
        ]
        self.push_screen(KeysDialog("Keys", listing))

    def action_show_help_panel(self) -> None:  # the palette's system "Keys" command
        self.action_show_keys()

    def get_system_commands(self, screen: Screen) -> Iterator[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title not in ("Keys", "Quit"):  # ours are listed by ConnexCommands
                yield command


# ---------------------------------------------------------------------- running


class _LogLines:
    """A file-like object for log lines while the interface owns the terminal: lines go to the
    Textual devtools console and, if given, a file; never to the screen."""

    def __init__(self, app: App[Any], path: Path | TextIO | None) -> None:
        self.app = app
        # A path is opened (and closed) here; a stream (the engine's rotating log file) is borrowed.
        self._owned = isinstance(path, Path)
        self.file: TextIO | None = path.open("a", encoding="utf-8") if isinstance(path, Path) else path
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.strip():
                with contextlib.suppress(Exception):
                    self.app.log.logging(line)
                if self.file is not None:
                    self.file.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None and self._owned:
            self.file.close()

    def isatty(self) -> bool:
        return False


class _LogRecords(logging.Handler):
    def __init__(self, sink: _LogLines) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.sink.write(self.format(record) + "\n")


@contextlib.contextmanager
def logging_off_screen(app: App[Any], log_file: Path | TextIO | None = None) -> Iterator[None]:
    """While the App runs, structlog and stdlib logging write elsewhere than the terminal.

    structlog keeps its processors (the secret redaction stays); only where the lines go changes.
    """
    import structlog

    sink = _LogLines(app, log_file)
    saved_factory = structlog.get_config().get("logger_factory")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sink))  # type: ignore[arg-type]
    root = logging.getLogger()
    moved: list[logging.Handler] = []
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            moved.append(handler)
    replacement = _LogRecords(sink) if moved else None
    if replacement is not None:
        replacement.setFormatter(moved[0].formatter)
        root.addHandler(replacement)
    try:
        yield
    finally:
        if replacement is not None:
            root.removeHandler(replacement)
        for handler in moved:
            root.addHandler(handler)
        if saved_factory is not None:
            structlog.configure(logger_factory=saved_factory)
        sink.close()


async def run_app(
    app: ConnexApp, *, mouse: bool = True, log_file: Path | TextIO | None = None, headless: bool = False
) -> None:
    """Run the interface in the current loop (next to an engine the caller started). The terminal
    going away (SIGHUP) or SIGTERM ends it like `q`, so the caller can stop the engine cleanly."""
    # SIGHUP where the platform has it; SIGBREAK and a plain handler on Windows (stopsignals).
    restore = on_stop_signals(asyncio.get_running_loop(), app.exit, ("SIGHUP", "SIGTERM", "SIGBREAK"))
    watchdog = asyncio.create_task(_exit_when_terminal_is_lost(app))
    try:
        with logging_off_screen(app, log_file):
            await app.run_async(mouse=mouse, headless=headless)
    finally:
        watchdog.cancel()
        restore()
        # A terminal that went away can end the App before its unmount handlers have run; the
        # connection it opened must still close, or SQLite leaves its WAL file behind.
        await app.backend.release()


async def _exit_when_terminal_is_lost(app: ConnexApp, every: float = 1.0) -> None:
    """A terminal that went away without a SIGHUP (no controlling terminal, a dropped pty): its
    attributes can no longer be read. Exit as on `q`, so the engine is stopped cleanly."""
    try:
        fd = sys.__stdin__.fileno() if sys.__stdin__ is not None else -1
    except (ValueError, OSError):
        return
    if termios is None or fd < 0 or not os.isatty(fd):
        return  # Windows: no termios; a closed console window ends the process itself
    while True:
        await asyncio.sleep(every)
        try:
            termios.tcgetattr(fd)
        except (termios.error, OSError):
            app.exit()
            return
