"""The `connex-tui` command: run, run --headless, demo, init, qwc.

Nothing here imports Textual at module level: headless mode and the admin commands must work on a
server where the interface is never drawn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO, cast

from .admin import ADMIN_COMMANDS, add_admin_commands, run_admin
from .soap.qwc import QWCError
from .stopsignals import on_stop_signals
from .engine.config import (
    Config,
    ConfigError,
    load_config,
    permission_warning,
    resolve_config_path,
    write_starter_config,
)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", help="configuration file (default: $CONNEX_CONFIG, else ./connex.toml)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connex-tui", description="QuickBooks Desktop <-> web store sync.")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the engine (the Web Connector endpoint and the sync) with the interface")
    _add_config(run)
    run.add_argument("--headless", action="store_true", help="no interface; JSON log lines on stderr")
    run.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (keyboard only)")

    demo = sub.add_parser("demo", help="the whole sync, live, against a simulated store, QuickBooks and Web Connector")
    demo.add_argument("--headless", action="store_true", help="print what happens instead of drawing the interface")
    demo.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (keyboard only)")
    demo.add_argument(
        "--platform", choices=("woocommerce", "shopify"), default="woocommerce", help="which store to emulate"
    )
    demo.add_argument(
        "--seconds", type=float, default=60.0, metavar="N", help="give up waiting for agreement after N seconds"
    )

    monitor = sub.add_parser("monitor", help="the interface on the database of an engine running elsewhere (headless)")
    _add_config(monitor)
    monitor.add_argument("--no-mouse", action="store_true", help="do not capture the mouse (keyboard only)")

    init = sub.add_parser("init", help="write a commented starter configuration file")
    init.add_argument("path", nargs="?", default=None, help="where to write it (default: ./connex.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    mapping = sub.add_parser("map", help="map a store SKU to a QuickBooks item that has another name")
    _add_config(mapping)
    mapping.add_argument("store_sku", nargs="?", help="the SKU on the store (omit to list the mappings)")
    mapping.add_argument("qb_item", nargs="?", help="the QuickBooks item (the [inventory] match field's value)")
    mapping.add_argument("--remove", action="store_true", help="remove the mapping of STORE_SKU")

    company = sub.add_parser(
        "company", help="the QuickBooks company file connex-tui works with; `company accept` switches"
    )
    _add_config(company)
    company.add_argument(
        "action",
        nargs="?",
        choices=("show", "accept"),
        default="show",
        help="show (default), or accept: work with the file the last refused session came from",
    )

    add_admin_commands(sub, _add_config)

    doctor = sub.add_parser("doctor", help="check the configuration, database, store, clock, endpoint and certificate")
    _add_config(doctor)

    qwc = sub.add_parser("qwc", help="write the .qwc file to add connex-tui to the Web Connector")
    _add_config(qwc)
    qwc.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    return parser


def _load(args: argparse.Namespace) -> Config:
    path = resolve_config_path(getattr(args, "config", None), os.environ)
    config = load_config(path, os.environ)
    warning = permission_warning(path)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return config


async def run_headless(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly (the database is closed, WAL checkpointed).
    Log lines go to stderr (journald), or to `[logging] file`, rotated."""
    from .engine.logfile import open_log_file
    from .engine.logs import configure_logging

    log_file = open_log_file(config.logging.file, config.logging) if config.logging.file else None
    if config.logging.file:
        from .engine.private_files import wider_than_private

        warning = wider_than_private(config.logging.file)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    configure_logging(level=config.logging.level, secrets=config.secrets(), stream=log_file)
    try:
        await _serve_until_stopped(config)
    finally:
        if log_file is not None:
            log_file.close()


async def _serve_until_stopped(config: Config) -> None:
    from .engine.runtime import Engine

    stop = asyncio.Event()
    restore = on_stop_signals(asyncio.get_running_loop(), stop.set)  # SIGBREAK instead of SIGHUP on Windows
    engine = Engine(config)
    try:
        await engine.start()
        try:
            await stop.wait()
        finally:
            await engine.stop()
    finally:
        restore()


def log_file_for(config: Config) -> Path:
    """Where the engine's log lines go while the interface owns the terminal."""
    return config.logging.file or config.database.path.with_name(config.database.path.stem + ".log")


async def run_with_interface(config: Config, *, mouse: bool) -> None:
    """The engine first, then the interface in the same loop: the Web Connector endpoint keeps
    answering while the screen renders. The engine stops when the interface ends, also when the
    terminal goes away (SIGHUP) or on SIGTERM."""
    from .app import ConnexApp, run_app
    from .backend import Backend
    from .engine.logfile import open_log_file
    from .engine.logs import configure_logging
    from .engine.private_files import wider_than_private
    from .engine.runtime import Engine
    from .keymap import keymap_of

    keymap = keymap_of(config)  # a bad entry stops here, before anything starts
    log_path = log_file_for(config)
    warning = wider_than_private(log_path)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    with open_log_file(log_path, config.logging) as log_stream:  # created 0600
        # Every log line goes to the file, before, during and after the interface: none on screen.
        configure_logging(level=config.logging.level, secrets=config.secrets(), stream=log_stream)
        engine = Engine(config)
        await engine.start()
        try:
            app = ConnexApp(Backend.attached(engine), keymap=keymap)
            await run_app(app, mouse=mouse, log_file=cast(TextIO, log_stream))  # borrowed, not closed
        finally:
            await engine.stop()


async def run_monitor(config: Config, *, mouse: bool) -> int:
    """The interface on an engine's database; commands go through the database."""
    from .app import ConnexApp, run_app
    from .backend import Backend
    from .keymap import keymap_of

    keymap = keymap_of(config)
    if not config.database.path.exists():
        print(
            f"connex-tui: no database at {config.database.path}: is the engine running with this --config?",
            file=sys.stderr,
        )
        return 2
    backend = await Backend.open(config.database.path, secrets=config.secrets())
    try:
        app = ConnexApp(backend, title_suffix="monitor", keymap=keymap)
        await run_app(app, mouse=mouse)
    finally:
        await backend.close()
    return 0


async def write_qwc(config: Config, output: str | None) -> None:
    """The .qwc from the configuration and the database's GUIDs. Nothing is started: a running
    engine's open session, its queue and the store are left alone."""
    from .engine.db import Database
    from .engine.runtime import build_qwc

    db = await Database.open(config.database.path)
    try:
        text = await build_qwc(db, config, config.qbwc.endpoint_url)
    finally:
        await db.close()
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}: open it in the QuickBooks Web Connector (Add an application)")
    else:
        sys.stdout.write(text)


async def edit_mappings(config: Config, store_sku: str | None, qb_item: str | None, remove: bool) -> int:
    from .engine.db import Database
    from .engine.skus import list_mappings, remove_mapping, set_mapping
    from .textsafe import visible

    db = await Database.open(config.database.path)
    try:
        if store_sku and remove:
            if not await remove_mapping(db, store_sku):
                print(f"connex-tui: no mapping for store SKU {store_sku!r}", file=sys.stderr)
                return 1
            print(f"removed: {visible(store_sku)}")
        elif store_sku and qb_item:
            await set_mapping(db, store_sku, qb_item)
            print(f"mapped: store SKU {visible(store_sku)} -> QuickBooks item {visible(qb_item)}")
        elif store_sku:
            print("connex-tui: map needs STORE_SKU and QB_ITEM (or --remove)", file=sys.stderr)
            return 2
        else:
            for sku, item in await list_mappings(db):
                print(f"{visible(sku)}\t{visible(item)}")  # a tab separates the two: none inside
        return 0
    finally:
        await db.close()


async def company_command(config: Config, action: str) -> int:
    """Show or switch the recorded company file; opens the database and nothing else."""
    from .engine.company import accept_company, company_status
    from .textsafe import visible  # the path and name come from QuickBooks: shown as text
    from .engine.db import Database

    if not config.database.path.exists():
        print(
            f"connex-tui: no database at {config.database.path}: has the engine run with this --config?",
            file=sys.stderr,
        )
        return 2
    db = await Database.open(config.database.path)
    try:
        if action == "accept":
            adopted = await accept_company(db)
            if adopted is None:
                print("no company file recorded now: the next Web Connector session's file is recorded")
            else:
                print(f"company file accepted: {visible(adopted.describe())}")
            return 0
        status = await company_status(db)
        print(f"company file: {visible(status.recorded.describe()) if status.recorded else 'none recorded yet'}")
        if status.refused is not None:
            print(f"refused: {visible(status.refused.describe())} (`connex-tui company accept` switches to it)")
        return 1 if status.refused is not None else 0
    finally:
        await db.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        if command == "init":
            target = Path(args.path) if args.path else resolve_config_path(None, os.environ)
            write_starter_config(target, force=args.force)
            print(f"wrote {target} (mode 600): set [storefront] and check [qbwc], then run `connex-tui qwc`")
            return 0
        if command == "demo":
            from .demo import run_demo, run_demo_tui

            if args.headless or not sys.stdout.isatty():
                return asyncio.run(run_demo(platform=args.platform, seconds=args.seconds))
            return asyncio.run(run_demo_tui(platform=args.platform, mouse=not args.no_mouse))
        if command == "doctor":
            from .doctor import run_doctor

            return asyncio.run(run_doctor(resolve_config_path(args.config, os.environ), sys.stdout))
        if command == "monitor":
            return asyncio.run(run_monitor(_load(args), mouse=not args.no_mouse))
        if command in ADMIN_COMMANDS:
            return asyncio.run(run_admin(args, _load(args), sys.stdout))
        if command == "map":
            return asyncio.run(edit_mappings(_load(args), args.store_sku, args.qb_item, args.remove))
        if command == "company":
            return asyncio.run(company_command(_load(args), args.action))
        if command == "qwc":
            asyncio.run(write_qwc(_load(args), args.output))
            return 0
        if command == "run":
            config = _load(args)
            if getattr(args, "headless", False):
                asyncio.run(run_headless(config))
            else:
                asyncio.run(run_with_interface(config, mouse=not getattr(args, "no_mouse", False)))
            return 0
    except (ConfigError, QWCError) as exc:
        print(f"connex-tui: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
