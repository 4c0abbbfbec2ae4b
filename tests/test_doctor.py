"""`connex-tui doctor` against a running engine (TLS on a real port) and the store emulators over
real HTTP; the command itself in a real process."""

from __future__ import annotations

import asyncio
import io
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme

from connex_tui.doctor import run_doctor
from connex_tui.engine.clock import SYSTEM_CLOCK
from connex_tui.engine.config import load_config
from connex_tui.engine.runtime import Engine
from connex_tui.sim.stores import EmulatedStore

from .clocks import ManualClock
from .test_headless import PASSWORD, free_port

ENV = {"QBWC_PW": PASSWORD}


@dataclass
class Site:
    config_path: Path
    ca: trustme.CA
    ca_file: Path
    store: EmulatedStore
    engine: Engine

    def trusting(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def write_site_config(folder: Path, store: EmulatedStore, port: int, cert: Path, key: Path, **store_over: str) -> Path:
    storefront = {**store.storefront_config(), **store_over}
    lines = "".join(f'{k} = "{v}"\n' for k, v in storefront.items())
    path = folder / "connex.toml"
    path.write_text(
        f'[database]\npath = "state/connex.db"\n'
        f'[qbwc]\nhost = "127.0.0.1"\nport = {port}\npassword_env = "QBWC_PW"\n'
        f'public_url = "https://localhost:{port}/qbwc"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
        f"[storefront]\n{lines}"
    )
    path.chmod(0o600)
    return path


@pytest.fixture(params=["woocommerce", "shopify"])
async def site(request, tmp_path: Path) -> AsyncIterator[Site]:
    ca = trustme.CA()
    # 90 days, as Let's Encrypt issues them.
    issued = ca.issue_cert("localhost", "127.0.0.1", not_after=datetime.now(timezone.utc) + timedelta(days=90))
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    ca.cert_pem.write_to_path(str(ca_file))
    store = EmulatedStore(request.param)
    await store.start()
    store.seed({"redwine": 20})
    path = write_site_config(tmp_path, store, free_port(), cert, key)
    engine = Engine(load_config(path, ENV))
    await engine.start()
    try:
        yield Site(path, ca, ca_file, store, engine)
    finally:
        await engine.stop()
        await store.stop()


async def doctor(site: Site, **kwargs) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await run_doctor(site.config_path, out, environ=ENV, endpoint_ssl=site.trusting(), **kwargs)
    return code, out.getvalue().splitlines()


def by_name(lines: list[str]) -> dict[str, tuple[str, str]]:
    return {line[6:15].strip(): (line[:5].strip(), line[16:]) for line in lines}


async def test_a_healthy_site_passes_every_check(site: Site) -> None:
    code, lines = await doctor(site)
    checks = by_name(lines)
    assert list(checks) == ["config", "database", "store", "clock", "endpoint", "tls"], lines
    assert {name: status for name, (status, _) in checks.items()} == dict.fromkeys(checks, "ok"), lines
    assert code == 0
    assert "schema" in checks["database"][1] and "integrity ok" in checks["database"][1]
    assert checks["endpoint"][1].startswith(f"https://localhost:{site.engine.port}/qbwc")
    assert "valid until" in checks["tls"][1]
    assert PASSWORD not in "\n".join(lines)


async def test_wrong_credentials_fail_the_store_check(site: Site, tmp_path: Path) -> None:
    over = {"consumer_secret": "cs_wrong"} if site.store.platform == "woocommerce" else {"access_token": "shpat_wrong"}
    q = site.engine.config.qbwc
    site.config_path = write_site_config(tmp_path, site.store, q.port, q.tls_cert, q.tls_key, **over)
    code, lines = await doctor(site)
    status, detail = by_name(lines)["store"]
    assert status == "FAIL" and "credentials" in detail, lines
    assert "cs_wrong" not in detail and "shpat_wrong" not in detail
    assert code == 1


async def test_a_skewed_clock_and_an_expiring_certificate_are_reported(site: Site) -> None:
    # Ten minutes ahead of the store: past the order import's 5-minute overlap.
    code, lines = await doctor(site, clock=ManualClock(datetime.now(timezone.utc) + timedelta(minutes=10)))
    status, detail = by_name(lines)["clock"]
    assert status == "FAIL" and detail.startswith(("599 s ahead", "600 s ahead", "601 s ahead")), lines
    assert code == 1
    # The certificate is valid for 90 days: seen 80 days on, it is about to expire; 100 days on, expired.
    code, lines = await doctor(site, clock=ManualClock(datetime.now(timezone.utc) + timedelta(days=80)))
    status, detail = by_name(lines)["tls"]
    assert status == "warn" and "in 9 days" in detail, lines
    code, lines = await doctor(site, clock=ManualClock(datetime.now(timezone.utc) + timedelta(days=100)))
    status, detail = by_name(lines)["tls"]
    assert status == "FAIL" and "expired" in detail, lines


async def test_an_untrusted_certificate_fails_the_endpoint_check(site: Site) -> None:
    out = io.StringIO()
    code = await run_doctor(site.config_path, out, environ=ENV)  # the system's trust store only
    checks = by_name(out.getvalue().splitlines())
    assert checks["endpoint"][0] == "FAIL" and "not trusted" in checks["endpoint"][1]
    assert checks["tls"][0] == "FAIL"
    assert code == 1


def run_cli(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", "connex_tui.cli", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root), **ENV, **(env or {})},
    )


async def test_the_command_passes_against_a_running_engine(site: Site) -> None:
    # The engine and the store run in this test's loop: the command runs beside it, not blocking it.
    # The system trust store is OpenSSL's: SSL_CERT_FILE points it at the test CA.
    root = Path(__file__).resolve().parent.parent
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connex_tui.cli",
        "doctor",
        "--config",
        str(site.config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root), **ENV, "SSL_CERT_FILE": str(site.ca_file)},
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (stdout + stderr).decode()
    assert [line.split()[0] for line in stdout.decode().splitlines()] == ["ok"] * 6


def test_the_command_fails_with_one_line_on_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "connex.toml"
    bad.write_text('[qbwc]\npassword = "x-password"\nprot = 8080\n')
    result = run_cli(bad)
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("FAIL  config") and "prot" in first


async def test_a_store_that_does_not_answer_fails_quickly(tmp_path: Path) -> None:
    config = tmp_path / "connex.toml"
    config.write_text(
        f'[qbwc]\nport = {free_port()}\npassword_env = "QBWC_PW"\n'
        f'[storefront]\nplatform = "woocommerce"\nurl = "http://127.0.0.1:{free_port()}"\n'
        'consumer_key = "ck_x"\nconsumer_secret = "cs_x"\n'
    )
    config.chmod(0o600)
    out = io.StringIO()
    started = asyncio.get_running_loop().time()
    assert await run_doctor(config, out, environ=ENV) == 1
    checks = by_name(out.getvalue().splitlines())
    assert checks["store"][0] == "FAIL" and "unavailable" in checks["store"][1], checks
    assert checks["clock"][0] == "skip"
    assert asyncio.get_running_loop().time() - started < 15


def test_the_command_fails_when_the_engine_is_not_running(tmp_path: Path) -> None:
    config = tmp_path / "connex.toml"
    config.write_text(f'[qbwc]\nport = {free_port()}\npassword_env = "QBWC_PW"\n')
    result = run_cli(config)
    assert result.returncode == 1
    checks = by_name(result.stdout.splitlines())
    assert checks["endpoint"][0] == "FAIL" and "is the engine running?" in checks["endpoint"][1]
    assert checks["store"][0] == "skip" and checks["tls"][0] == "skip" and checks["database"][0] == "warn"


def test_an_engine_on_every_address_is_checked_on_loopback(tmp_path: Path) -> None:
    from connex_tui.doctor import Doctor
    from connex_tui.engine.config import parse_config

    config = parse_config({"qbwc": {"host": "0.0.0.0", "port": 8123, "password": "x-password"}}, None, {})
    assert Doctor(config, SYSTEM_CLOCK)._endpoint_url() == "http://127.0.0.1:8123/qbwc"
