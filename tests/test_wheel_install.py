"""A merchant's install: build the wheel, install it into a fresh virtual environment, run it there.

`pip install -e .` hides every data file the wheel forgets (the interface's stylesheet once was one),
so this test never imports the project from the source tree: the venv gets the project only from
the wheel, its dependencies from this interpreter's site-packages (a .pth line, not a download),
and every command runs from an empty folder with PYTHONPATH unset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
BIN = "Scripts" if os.name == "nt" else "bin"

# The interface, driven by Textual's pilot inside the installed package: the demo world, the six
# screens, then `q`. Fails on a stylesheet or any other data file missing from the wheel.
PILOT = textwrap.dedent(
    """
    import asyncio, sys, tempfile
    from pathlib import Path

    import connex_tui
    from connex_tui.app import ConnexApp
    from connex_tui.backend import Backend
    from connex_tui.demo import DemoWorld

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with DemoWorld("shopify", Path(tmp)) as world:
                app = ConnexApp(Backend.attached(world.engine), title_suffix="wheel")
                async with app.run_test(size=(100, 30)) as pilot:
                    seen = []
                    for key in "234561":
                        await pilot.press(key)
                        await pilot.pause()
                        seen.append(type(app.screen).__name__)
                    await pilot.press("q")
        print("package", connex_tui.__file__)
        print("screens", " ".join(seen))

    asyncio.run(main())
    """
)


def _clean_env() -> dict[str, str]:
    # Without CONNEX_QBXML_SPEC_DIR an installed package finds no qbXML schema beside it: the
    # simulator's optional validation is off, which it may say in the log only, never as a warning.
    hidden = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CONNEX_QBXML_SPEC_DIR")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _clean_source(folder: Path) -> Path:
    """The checkout's files without build leftovers: setuptools builds in the tree, and a stale
    build/lib or egg-info from an earlier build would put a file in the wheel that the package
    data configuration forgot."""
    leftovers = shutil.ignore_patterns(
        "build", "dist", "*.egg-info", ".git", ".venv", "__pycache__", ".*_cache", "tests", "bench", "snapshots"
    )
    shutil.copytree(ROOT, folder, ignore=leftovers)
    return folder


def _build_wheel(out: Path, source: Path) -> Path:
    """The wheel pip builds for `pip install .`: without build isolation when this environment has
    the build backend (offline), else the standard isolated build."""
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)]
    first = subprocess.run([*base, "--no-build-isolation"], capture_output=True, text=True, timeout=120)
    if first.returncode != 0:
        second = subprocess.run(base, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, f"wheel build failed:\n{first.stderr}\n{second.stderr}"
    (wheel,) = out.glob("connex_tui-*.whl")
    return wheel


def _venv_with(wheel: Path, folder: Path) -> Path:
    """A fresh venv holding the project only as installed from `wheel`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    python = folder / BIN / ("python.exe" if os.name == "nt" else "python")
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env=_clean_env(),
        ).stdout.strip()
    )
    # Installed first: pip must not see the source tree's own (editable) install through the line below.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
        timeout=120,
        capture_output=True,
        env=_clean_env(),
    )
    # Dependencies without a download: this interpreter's site-packages, appended after the venv's
    # own. Its editable-install hook (if any) is in a .pth there, which a plain path line does not run.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python


def test_wheel_carries_every_data_file_and_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    started = time.monotonic()
    wheel = _build_wheel(tmp_path / "dist", _clean_source(tmp_path / "source"))
    phases = {"build": time.monotonic() - started}

    # Every file the package reads at run time: everything under connex_tui/ that is not Python.
    shipped = set(zipfile.ZipFile(wheel).namelist())
    data_files = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "connex_tui").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert data_files, "expected data files (app.tcss, the Shopify schema)"
    assert data_files <= shipped, f"missing from the wheel: {sorted(data_files - shipped)}"

    python = _venv_with(wheel, tmp_path / "venv")
    phases["venv"] = time.monotonic() - started - sum(phases.values())
    venv = (tmp_path / "venv").resolve()
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = _clean_env()

    where = subprocess.run(
        [str(python), "-c", "import connex_tui; print(connex_tui.__file__)"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv), f"connex_tui imported from {where}, not the venv"

    demo = subprocess.run(
        [str(venv / BIN / "connex-tui"), "demo", "--headless", "--seconds", "40"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=90,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "store and QuickBooks agree on all" in demo.stdout
    phases["demo"] = time.monotonic() - started - sum(phases.values())
    assert "Warning" not in demo.stderr and "qbxml_schema_missing" not in demo.stdout + demo.stderr, demo.stderr

    (cwd / "pilot.py").write_text(PILOT)
    pilot = subprocess.run(
        [str(python), "pilot.py"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=90,
    )
    assert pilot.returncode == 0, pilot.stdout + pilot.stderr
    lines = dict(line.split(" ", 1) for line in pilot.stdout.splitlines() if " " in line)
    assert Path(lines["package"]).resolve().is_relative_to(venv)
    assert lines["screens"].split() == [
        "PendingScreen",
        "SkuLogScreen",
        "OrdersScreen",
        "TasksScreen",
        "EventsScreen",
        "DashboardScreen",
    ]
    assert "Warning" not in pilot.stderr, pilot.stderr
    # The schema is not beside the installed package: the simulator said so, in a log line.
    assert "qbxml_schema_missing" in pilot.stdout, pilot.stdout
    phases["interface"] = time.monotonic() - started - sum(phases.values())
    print(
        "wheel test:",
        ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()),
        f"(total {time.monotonic() - started:.1f} s)",
    )
