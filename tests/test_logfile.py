"""The log file: rotated by size in-process, or reopened after logrotate moved it; whole lines only."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import structlog

from connex_tui.engine.config import LoggingConfig
from connex_tui.engine.logfile import MEGABYTE, open_log_file
from connex_tui.engine.logs import configure_logging

from .test_headless import free_port, start_headless, wait_for, write_config


@pytest.fixture(autouse=True)
def _structlog_back_to_defaults():
    yield
    structlog.reset_defaults()  # later tests must not write into this test's (closed) file


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_size_rotation_keeps_backups_and_never_splits_a_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "connex.log"
    config = LoggingConfig(max_megabytes=1, backups=2)
    with open_log_file(path, config) as sink:
        configure_logging(stream=sink, secrets=["hunter2-secret"])
        log = structlog.get_logger("t")
        for n in range(7000):  # about 2.6 MB of JSON lines: two rotations and a third file
            log.info("line", n=n, padding="x" * 300, leaked="hunter2-secret")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["connex.log", "connex.log.1", "connex.log.2"]
    assert all(p.stat().st_size <= MEGABYTE for p in path.parent.iterdir())
    numbers = [e["n"] for name in ("connex.log.2", "connex.log.1", "connex.log") for e in lines_of(path.parent / name)]
    assert numbers == list(range(numbers[0], 7000)), "lines lost or split across a rotation"
    assert "hunter2-secret" not in "".join(p.read_text() for p in path.parent.iterdir())


@pytest.mark.skipif(os.name == "nt", reason="WatchedFileHandler is for logrotate on POSIX")
def test_external_rotation_reopens_the_file_logrotate_moved(tmp_path: Path) -> None:
    path = tmp_path / "connex.log"
    with open_log_file(path, LoggingConfig(rotate="external")) as sink:
        configure_logging(stream=sink)
        log = structlog.get_logger("t")
        log.info("before")
        path.rename(tmp_path / "connex.log.1")  # what logrotate does (without copytruncate)
        log.info("after")
    assert [e["event"] for e in lines_of(tmp_path / "connex.log.1")] == ["before"]
    assert [e["event"] for e in lines_of(path)] == ["after"]


def test_headless_with_a_log_file_writes_json_lines_there_not_on_stderr(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    config.write_text(config.read_text() + '[logging]\nfile = "logs/engine.log"\nmax_megabytes = 5\n')
    proc = start_headless(config)
    try:
        wait_for(f"http://127.0.0.1:{port}/qbwc", proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and stderr == "", stderr
    events = [e["event"] for e in lines_of(tmp_path / "logs" / "engine.log")]
    assert events[0] == "qbwc_endpoint_listening" and events[-1] == "engine_stopped"
