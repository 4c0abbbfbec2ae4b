"""TLS on both sides, password guessing, .qwc addresses the Web Connector accepts, secrets."""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import trustme

from connex_tui.engine.auth_throttle import AuthThrottle
from connex_tui.engine.logs import configure_logging
from connex_tui.engine.runtime import Engine
from connex_tui.sim.woocommerce import WooCommerceEmulator
from connex_tui.soap.qwc import QWCError, app_url_for_qwc
from connex_tui.storefronts.base import StockUpdate, StorefrontError
from connex_tui.storefronts.factory import tls_context
from connex_tui.storefronts.woocommerce import WooCommerceClient

from .conftest import PASSWORD, make_config


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_cert(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return cert_file, key_file


AUTH = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<authenticate xmlns="http://developer.intuit.com/"><strUserName>qbwc</strUserName>'
    "<strPassword>{}</strPassword></authenticate></soap:Body></soap:Envelope>"
)


async def test_endpoint_serves_tls_with_the_configured_certificate(ca, server_cert, tmp_path, engine_factory) -> None:
    cert_file, key_file = server_cert
    engine = await engine_factory(make_config(tmp_path, qbwc={"tls_cert": str(cert_file), "tls_key": str(key_file)}))
    assert engine.url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with aiohttp.ClientSession() as http:
        async with http.post(engine.url, data=AUTH.format(PASSWORD), ssl=trusting) as resp:
            assert resp.status == 200 and b"<string>" in await resp.read()
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(engine.url)  # an untrusted certificate is refused by a verifying client
        with pytest.raises(aiohttp.ClientError):
            await http.get(engine.url.replace("https://", "http://"))
    qwc = await engine.qwc()
    assert f"<AppURL>https://localhost:{engine.port}/qbwc</AppURL>" in qwc


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:8080/qbwc", "http://localhost:8080/qbwc"),
        ("https://[::1]:8443/qbwc", "https://localhost:8443/qbwc"),
        ("https://sync.example.com/qbwc", "https://sync.example.com/qbwc"),
    ],
)
def test_qwc_app_url_is_one_the_web_connector_accepts(url: str, expected: str) -> None:
    assert app_url_for_qwc(url) == expected


@pytest.mark.parametrize(
    "url, words",
    [("http://sync.example.com/qbwc", "only accepts https"), ("https://203.0.113.9/qbwc", "not an IP address")],
)
def test_qwc_refuses_addresses_the_web_connector_refuses(url: str, words: str) -> None:
    with pytest.raises(QWCError, match=words):
        app_url_for_qwc(url)


def test_qwc_command_refuses_an_http_public_url(tmp_path: Path) -> None:
    config = tmp_path / "connex.toml"
    config.write_text('[qbwc]\npassword_env = "PW"\npublic_url = "http://sync.example.com/qbwc"\n')
    result = subprocess.run([sys.executable, "-m", "connex_tui.cli", "qwc", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PW": "x"})
    assert result.returncode == 2 and "only accepts https" in result.stderr and result.stdout == ""


def test_auth_throttle_locks_doubles_expires_and_forgets_on_success() -> None:
    now = [0.0]
    throttle = AuthThrottle(max_failures=3, window=60, base_lock=30, max_lock=100, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(3)] == [0, 0, 30]
    assert throttle.locked_for("a") == 30 and throttle.locked_for("b") == 0
    now[0] = 31
    assert throttle.locked_for("a") == 0
    assert [throttle.failed("a") for _ in range(3)][-1] == 60  # the second lockout doubles
    now[0] = 200
    assert [throttle.failed("a") for _ in range(3)][-1] == 100  # capped
    throttle.succeeded("a")
    now[0] = 400
    assert [throttle.failed("a") for _ in range(3)][-1] == 30
    # Failures spread over more than the window do not add up.
    for step in range(10):
        now[0] = 1000 + step * 61
        assert throttle.failed("slow") == 0


async def test_password_guessing_is_refused_per_address_and_not_logged(engine: Engine) -> None:
    stream = io.StringIO()
    configure_logging(level="info", secrets=[PASSWORD], stream=stream)
    try:
        async with aiohttp.ClientSession() as http:
            answers = []
            for guess in ["a", "b", "c", "d", "e", PASSWORD]:
                async with http.post(engine.url, data=AUTH.format(guess)) as resp:
                    answers.append("nvu" if b"<string>nvu</string>" in await resp.read() else "ok")
    finally:
        configure_logging(level="warning", json=False)
    assert answers == ["nvu"] * 6  # the right password too, once the address is locked
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events.count("qbwc_auth_failed") == 5 and "qbwc_auth_refused" in events
    for guess in ["a", "b", "c", "d", "e"]:
        assert f"<strPassword>{guess}" not in stream.getvalue()
    assert PASSWORD not in stream.getvalue()
    # Another address is not affected.
    assert (await engine.sessions.authenticate("qbwc", PASSWORD, "192.0.2.7"))[1] in ("", "none")


async def test_store_certificates_are_verified_and_a_ca_bundle_can_be_trusted(ca, server_cert, tmp_path) -> None:
    cert_file, key_file = server_cert
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(str(cert_file), str(key_file))
    emulator = WooCommerceEmulator()
    emulator.add_product("redwine", 20)
    url = await emulator.start(ssl_context=server_side)
    bundle = tmp_path / "proxy-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        untrusting = WooCommerceClient(url, "ck_test", "cs_test")
        with pytest.raises(StorefrontError, match="certificate could not be verified"):
            await untrusting.catalog()
        await untrusting.close()
        trusting = WooCommerceClient(url, "ck_test", "cs_test", ssl=tls_context(bundle))
        entries = await trusting.catalog()
        assert [e.sku for e in entries] == ["redwine"]
        result = await trusting.set_stock([StockUpdate("redwine", 15, entries[0])])
        assert result[0].ok and emulator.stock("redwine") == 15
        await trusting.close()
    finally:
        await emulator.stop()


def test_world_readable_config_with_secrets_gets_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "connex.toml"
    config.write_text('[qbwc]\npassword = "literal-secret-1"\n')
    config.chmod(0o644)
    result = subprocess.run([sys.executable, "-m", "connex_tui.cli", "qwc", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "warning:" in result.stderr and str(config) in result.stderr and "chmod 600" in result.stderr
    assert "literal-secret-1" not in result.stderr + result.stdout
    config.chmod(0o600)
    quiet = subprocess.run([sys.executable, "-m", "connex_tui.cli", "qwc", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert "warning" not in quiet.stderr


@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
async def test_a_whole_sync_writes_no_secret_anywhere_even_without_the_redactor(tmp_path, http, platform) -> None:
    """The redactor is a last line of defence; here it is given no secrets to mask, so a leak shows."""
    import argparse

    from connex_tui.admin import add_admin_commands, run_admin

    from .test_sync_e2e import start_sync

    stream = io.StringIO()
    configure_logging(level="debug", secrets=[], stream=stream)
    try:
        sync = await start_sync(tmp_path, platform, http)
        try:
            sync.qb.add_item("qb-only", 1)
            sync.store.order([("redwine", 2)])
            await sync.sync()
            wrong = sync.wc.password
            sync.wc.password = "not-the-password"
            await sync.wc.run_once()
            sync.wc.password = wrong
            parser = argparse.ArgumentParser()
            add_admin_commands(parser.add_subparsers(dest="command"), lambda p: p.add_argument("--config"))
            out = io.StringIO()
            for argv in (["status", "--json"], ["queue", "list", "--json"], ["log", "--json"], ["orders", "--json"]):
                await run_admin(parser.parse_args(argv), sync.config, out)
        finally:
            await sync.stop()
    finally:
        configure_logging(level="warning", json=False)
    written = stream.getvalue() + out.getvalue()
    assert "order_posted" in written and "qbwc_auth_failed" in written
    for secret in sync.config.secrets():
        assert secret not in written, f"a secret ({len(secret)} characters) was written"
