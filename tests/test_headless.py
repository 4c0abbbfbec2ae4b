"""The `connex-tui` command as an admin runs it: real processes, real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from lxml import etree


PASSWORD = "headless-S3cret-value"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "connex_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def write_config(folder: Path, port: int) -> Path:
    path = folder / "connex.toml"
    path.write_text(
        f'[database]\npath = "state/connex.db"\n[qbwc]\nport = {port}\npassword_env = "QBWC_PW"\n'
        '[storefront]\nplatform = "none"\n'
    )
    return path


def start_headless(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`connex-tui run --headless` as a merchant's server runs it: its own process, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "connex_tui.cli", "run", "--headless", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else {**os.environ, "QBWC_PW": PASSWORD},
    )


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 20) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"engine exited early: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return resp.status
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {seconds} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_headless_starts_answers_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    proc = start_headless(config)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/qbwc", proc) == 200
        body = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f'<authenticate xmlns="http://developer.intuit.com/"><strUserName>qbwc</strUserName><strPassword>{PASSWORD}'
            "</strPassword></authenticate></soap:Body></soap:Envelope>"
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/qbwc", data=body, headers={"Content-Type": "text/xml"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert b"<string>" in resp.read()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "qbwc_endpoint_listening" in names and "qbwc_call" in names and names[-1] == "engine_stopped"
    assert PASSWORD not in stderr
    # The database was closed cleanly: no write-ahead log left behind to replay.
    db = tmp_path / "state" / "connex.db"
    assert db.exists() and not (tmp_path / "state" / "connex.db-wal").exists()


def test_engine_and_headless_path_do_not_import_textual() -> None:
    # Rich itself may be loaded: structlog imports it when installed, for its console renderer.
    code = (
        "import sys\n"
        "import connex_tui.cli, connex_tui.engine.runtime, connex_tui.engine.qbwc_session, connex_tui.soap.server\n"
        "from connex_tui.cli import run_headless\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_layers_import_neither_textual_nor_rich() -> None:
    import ast

    package = Path(__file__).resolve().parent.parent / "connex_tui"
    offenders = []
    for layer in ("engine", "soap", "storefronts", "sim"):
        for source in (package / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                )
                offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in ("textual", "rich")]
    assert offenders == []


def test_bad_config_stops_startup_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "connex.toml"
    config.write_text('[qbwc]\npassword = "x"\nprot = 80\n')
    result = cli("run", "--headless", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "connex.toml" in lines[0] and "prot" in lines[0] and "did you mean 'port'" in lines[0]


def test_config_comes_from_connex_config_variable(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("[qbwc]\nport = 'eighty'\n")
    result = cli("qwc", env={"CONNEX_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 2 and "elsewhere.toml" in result.stderr and "port" in result.stderr


def test_init_writes_a_starter_file_that_loads(tmp_path: Path) -> None:
    result = cli("init", str(tmp_path / "connex.toml"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "connex.toml").stat().st_mode & 0o777 == 0o600
    again = cli("init", str(tmp_path / "connex.toml"))
    assert again.returncode == 2 and "exists" in again.stderr


def test_qwc_file_has_the_fields_and_stable_guids(tmp_path: Path) -> None:
    config = write_config(tmp_path, 8123)
    env = {"QBWC_PW": PASSWORD}
    first = cli("qwc", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    second = cli("qwc", "--config", str(config), "-o", str(tmp_path / "connex.qwc"), env=env)
    assert second.returncode == 0
    root = etree.fromstring(first.stdout.encode())
    saved = etree.fromstring((tmp_path / "connex.qwc").read_bytes())
    assert root.tag == "QBWCXML"
    assert root.findtext("AppURL") == "http://localhost:8123/qbwc"  # a host name, as QBWC requires
    assert root.findtext("AppSupport") == root.findtext("AppURL")
    assert root.findtext("UserName") == "qbwc" and root.findtext("QBType") == "QBFS"
    assert root.findtext("Scheduler/RunEveryNMinutes") == "2"
    assert root.findtext("IsReadOnly") == "false"
    # Re-adding the file replaces the application; the preferences QBWC reads (guide ch.4, Table 4-1).
    assert root.findtext("AppUniqueName") == root.findtext("AppName") == "connex-tui"
    assert root.findtext("UnattendedModePref") == "umpOptional"
    assert root.findtext("PersonalDataPref") == "pdpNotNeeded"
    assert root.findtext("AuthFlags") == "0xE"  # Pro, Premier, Enterprise
    for field in ("OwnerID", "FileID"):
        assert root.findtext(field) == saved.findtext(field)
        assert root.findtext(field).startswith("{") and len(root.findtext(field)) == 38
    assert root.findtext("OwnerID") != root.findtext("FileID")
    assert PASSWORD not in first.stdout


@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_demo_runs_and_ends_in_agreement(platform: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connex_tui.cli", "demo", "--headless", "--platform", platform, "--seconds", "45"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "QuickBooks: order posted, redwine 15" in out
    assert "orders posted once each: 6; credit memos from refunds: 1" in out
    assert "failed: QB-ONLY-1: SKU not found on the store" in out
    assert "redwine: QuickBooks 15, store 15" in out
    assert "store and QuickBooks agree on all 300 matched SKUs" in out


def test_qwc_preferences_come_from_the_configuration(tmp_path: Path) -> None:
    config = write_config(tmp_path, 8125)
    config.write_text(
        config.read_text().replace(
            "[storefront]",
            'app_unique_name = "shop-sync-main"\nunattended_mode = "required"\n'
            'personal_data = "optional"\n[storefront]',
        )
    )
    result = cli("qwc", "--config", str(config), env={"QBWC_PW": PASSWORD})
    assert result.returncode == 0, result.stderr
    root = etree.fromstring(result.stdout.encode())
    assert root.findtext("AppUniqueName") == "shop-sync-main"
    assert root.findtext("UnattendedModePref") == "umpRequired"
    assert root.findtext("PersonalDataPref") == "pdpOptional"
    config.write_text(config.read_text().replace('"required"', '"always"'))
    bad = cli("qwc", "--config", str(config), env={"QBWC_PW": PASSWORD})
    assert bad.returncode == 2 and "unattended_mode" in bad.stderr


def test_map_command_adds_lists_and_removes_mappings(tmp_path: Path) -> None:
    config = write_config(tmp_path, 8124)
    env = {"QBWC_PW": PASSWORD}
    assert cli("map", "--config", str(config), "WEB-RED-750", "redwine", env=env).returncode == 0
    listed = cli("map", "--config", str(config), env=env)
    assert listed.stdout.strip() == "WEB-RED-750\tredwine"
    assert cli("map", "--config", str(config), "WEB-RED-750", "--remove", env=env).returncode == 0
    assert cli("map", "--config", str(config), env=env).stdout.strip() == ""
    missing = cli("map", "--config", str(config), "nope", "--remove", env=env)
    assert missing.returncode == 1 and "nope" in missing.stderr
