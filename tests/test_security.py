"""TLS on both sides, password guessing, .qwc addresses the Web Connector accepts, secrets."""

from __future__ import annotations

import asyncio
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
    result = subprocess.run(
        [sys.executable, "-m", "connex_tui.cli", "qwc", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PW": "x"},
    )
    assert result.returncode == 2 and "only accepts https" in result.stderr and result.stdout == ""


def test_auth_throttle_slows_wrong_answers_per_user_and_address() -> None:
    now = [0.0]
    throttle = AuthThrottle(max_failures=3, window=60, base_lock=30, max_lock=100, delay=1.5, clock=lambda: now[0])
    assert [throttle.failed("qbwc", "a") for _ in range(3)] == [0, 0, 1.5]
    assert throttle.locked_for("qbwc", "a") == 30
    assert throttle.locked_for("qbwc", "b") == 0 and throttle.locked_for("other", "a") == 0  # per pair
    assert throttle.failed("qbwc", "a") == 1.5  # held back while slowed down
    now[0] = 31
    assert throttle.locked_for("qbwc", "a") == 0
    assert [throttle.failed("qbwc", "a") for _ in range(3)] == [0, 0, 1.5]
    assert throttle.locked_for("qbwc", "a") == 60  # the second lockout doubles
    now[0] = 200
    [throttle.failed("qbwc", "a") for _ in range(3)]
    assert throttle.locked_for("qbwc", "a") == 100  # capped
    throttle.succeeded("qbwc", "a")
    assert throttle.locked_for("qbwc", "a") == 0
    # Failures spread over more than the window do not add up.
    for step in range(10):
        now[0] = 1000 + step * 61
        assert throttle.failed("qbwc", "slow") == 0
    # A huge user name is one key, not a new one per byte.
    assert throttle._key("u" * 10**6, "a") == throttle._key("u" * 10**6 + "x", "a")


async def _authenticate(
    http: aiohttp.ClientSession,
    url: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> str:
    async with http.post(url, data=AUTH.format(password), headers=headers) as resp:
        body = await resp.read()
    return "nvu" if b"<string>nvu</string>" in body else "ticket"


async def test_the_right_password_gets_in_after_100_wrong_ones_from_the_same_address(engine: Engine) -> None:
    assert engine.sessions is not None
    engine.sessions.auth_throttle = AuthThrottle(delay=0.2)  # the default 1 s; shorter to keep the test quick
    stream = io.StringIO()
    configure_logging(level="info", secrets=[PASSWORD], stream=stream)
    guesses = [f"guess-{n}" for n in range(100)]
    try:
        connector = aiohttp.TCPConnector(limit=20)  # under the endpoint's per-address cap
        async with aiohttp.ClientSession(connector=connector) as http:
            wrong = await asyncio.gather(*(_authenticate(http, engine.url, g) for g in guesses))
            right = await _authenticate(http, engine.url, PASSWORD)
    finally:
        configure_logging(level="warning", json=False)
    assert wrong == ["nvu"] * 100 and right == "ticket"
    assert engine.sessions.auth_throttle.locked_for("qbwc", "127.0.0.1") == 0  # the success cleared it
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    held = [e for e in events if e["event"] == "qbwc_auth_failed" and e["held_seconds"]]
    assert len(held) >= 90  # all but the first few wrong answers were slowed down
    for guess in guesses:
        assert f">{guess}<" not in stream.getvalue()
    assert PASSWORD not in stream.getvalue()


async def test_forwarded_address_is_used_only_from_a_trusted_proxy(engine_factory, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = await engine_factory(make_config(tmp_path / "a"))
    proxied = await engine_factory(make_config(tmp_path / "b", qbwc={"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}))
    forwarded = {"X-Forwarded-For": "198.51.100.23, 203.0.113.9, 10.1.2.3"}
    async with aiohttp.ClientSession() as http:
        for engine in (plain, proxied):
            for _ in range(5):
                assert await _authenticate(http, engine.url, "wrong", forwarded) == "nvu"
            assert await _authenticate(http, engine.url, PASSWORD, forwarded) == "ticket"
    # Without trusted_proxies the header is the client's to write: ignored.
    assert plain.sessions.auth_throttle.locked_for("qbwc", "127.0.0.1") == 0
    clients = await plain.db.fetchall("SELECT client FROM qbwc_sessions")
    assert [row[0] for row in clients] == ["127.0.0.1"]
    # Behind the trusted proxy: the rightmost address that is not a proxy (10.1.2.3 is one).
    clients = await proxied.db.fetchall("SELECT client FROM qbwc_sessions")
    assert [row[0] for row in clients] == ["203.0.113.9"]
    # Failures from one client behind the proxy do not slow down another.
    async with aiohttp.ClientSession() as http:
        for _ in range(6):
            await _authenticate(http, proxied.url, "wrong", {"X-Forwarded-For": "198.51.100.99"})
    assert proxied.sessions.auth_throttle.locked_for("qbwc", "198.51.100.99") > 0
    assert proxied.sessions.auth_throttle.locked_for("qbwc", "203.0.113.9") == 0


@pytest.mark.parametrize(
    "value, words",
    [
        (["proxy.example.com"], "'proxy.example.com' is not an IP address or network"),
        ("127.0.0.1", "expected an array of IP addresses or networks"),
        ([8080], "8080 is not an IP address or network"),
    ],
)
def test_trusted_proxies_must_be_addresses(tmp_path: Path, value, words: str) -> None:
    from connex_tui.engine.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, qbwc={"trusted_proxies": value})
    assert "[qbwc] trusted_proxies" in str(caught.value) and words in str(caught.value)


async def test_the_wsdl_address_never_comes_from_the_host_header(engine_factory, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    local = await engine_factory(make_config(tmp_path / "a"))
    public = await engine_factory(make_config(tmp_path / "b", qbwc={"public_url": "https://sync.example.com/qbwc"}))
    async with aiohttp.ClientSession() as http:
        for engine, address in ((local, local.url), (public, "https://sync.example.com/qbwc")):
            async with http.get(engine.url + "?wsdl", headers={"Host": "evil.example:666"}) as resp:
                wsdl = (await resp.read()).decode()
            assert f'location="{address}"' in wsdl and "evil.example" not in wsdl


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
    result = subprocess.run(
        [sys.executable, "-m", "connex_tui.cli", "qwc", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "warning:" in result.stderr and str(config) in result.stderr and "chmod 600" in result.stderr
    assert "literal-secret-1" not in result.stderr + result.stdout
    config.chmod(0o600)
    quiet = subprocess.run(
        [sys.executable, "-m", "connex_tui.cli", "qwc", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
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
