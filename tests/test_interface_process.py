"""`connex-tui run` with the interface, as a process on a real terminal (a pseudo-terminal): it
serves the Web Connector while the screen draws, writes its log to a file and never to the screen,
and stops cleanly (engine stopped, database closed) when the terminal goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .pty_terminal import start_on_terminal
from .test_headless import free_port

PASSWORD = "pty-Pa55word-x"


def start_in_terminal(tmp_path: Path, port: int) -> tuple[subprocess.Popen, int, list[bytes]]:
    config = tmp_path / "connex.toml"
    config.write_text(
        f'[database]\npath = "connex.db"\n[qbwc]\nport = {port}\npassword = "{PASSWORD}"\n'
        '[storefront]\nplatform = "none"\n'
    )
    config.chmod(0o600)
    proc, master, screen, _reader = start_on_terminal(
        ["run", "--config", str(config), "--no-mouse"], columns=100, lines=30
    )
    return proc, master, screen


def wait_for_endpoint(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "connex-tui exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/qbwc", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the endpoint did not answer")


def soap_authenticate(port: int) -> bytes:
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<authenticate xmlns="http://developer.intuit.com/"><strUserName>qbwc</strUserName>'
        f"<strPassword>{PASSWORD}</strPassword></authenticate></soap:Body></soap:Envelope>"
    ).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/qbwc", data=body, headers={"Content-Type": "text/xml"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.read()


@pytest.mark.parametrize("how", ["SIGHUP", "terminal closed"])
def test_interface_serves_logs_off_screen_and_stops_cleanly_when_the_terminal_goes(tmp_path: Path, how: str) -> None:
    port = free_port()
    proc, master, screen = start_in_terminal(tmp_path, port)
    try:
        wait_for_endpoint(port, proc)
        time.sleep(1.5)  # the interface is up and drawing
        assert b"<string>" in soap_authenticate(port)  # answered while the screen renders
        if how == "SIGHUP":
            proc.send_signal(signal.SIGHUP)
        else:
            os.close(master)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if how == "SIGHUP":
            os.close(master)
    drawn = b"".join(screen).decode("utf-8", "replace")
    assert "Dashboard" in drawn
    assert "qbwc_call" not in drawn and '"event"' not in drawn  # no log line on the screen
    events = [json.loads(line)["event"] for line in (tmp_path / "connex.log").read_text().splitlines()]
    assert "qbwc_call" in events and events[-1] == "engine_stopped"
    assert PASSWORD not in (tmp_path / "connex.log").read_text()
    assert not (tmp_path / "connex.db-wal").exists()  # closed cleanly
