"""Tests for connex_tui.engine.config: loading, validation, error wording, secrets, starter file."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from connex_tui.engine import config as cfg
from connex_tui.engine.config import (
    Config,
    ConfigError,
    Secret,
    load_config,
    parse_config,
    permission_warning,
    resolve_config_path,
    starter_config_text,
    write_starter_config,
)

PASSWORD = "s3cret-Pa55word-xyz"
CK = "ck_live_abcdef123456"
CS = "cs_live_zyxwvu987654"


def write(tmp_path: Path, text: str, name: str = "connex.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def minimal(extra_qbwc: str = "", rest: str = "") -> str:
    return f'[qbwc]\npassword = "{PASSWORD}"\n{extra_qbwc}\n{rest}'


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path, so messages name the file as the user typed it: "connex.toml: ..."."""
    monkeypatch.chdir(tmp_path)


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(Path("connex.toml"), environ or {})
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert "connex.toml" in message, message
    return message


# --------------------------------------------------------------------------- starter file


def test_starter_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "connex.toml"
    write_starter_config(path)
    config = load_config(path, {})
    assert config.source == path
    assert config.database.path == tmp_path / "connex.db"
    q = config.qbwc
    assert (q.host, q.port, q.path, q.username) == ("127.0.0.1", 8080, "/qbwc", "qbwc")
    assert q.run_every_minutes == 2 and q.max_returned == 100 and q.orders_per_request == 50
    assert q.max_body_bytes == 64 * 1024 * 1024 and q.ticket_idle_minutes == 30
    assert q.app_name == "connex-tui" and q.public_url is None and q.read_min_interval_seconds == 60
    assert q.tls_cert is None and q.tls_key is None
    assert q.password.reveal() not in ("", "change-me")
    assert len(q.password.reveal()) >= 20
    s = config.storefront
    assert (s.platform, s.url) == ("woocommerce", "https://shop.example.com")
    assert s.consumer_key is not None and s.consumer_secret is not None
    assert s.access_token is None and s.location_id is None and s.api_version == "2026-10"
    o = config.orders
    assert (o.poll_seconds, o.post_as, o.customer) == (60, "sales_receipt", "Web Store")
    assert o.statuses == ("processing", "completed", "paid", "partially_refunded")
    i = config.inventory
    assert (i.match, i.quantity, i.max_attempts) == ("name", "available", 8)
    assert config.logging.level == "info"


def test_starter_passwords_are_random() -> None:
    first = tomllib.loads(starter_config_text())["qbwc"]["password"]
    second = tomllib.loads(starter_config_text())["qbwc"]["password"]
    assert first != second


def test_starter_mentions_every_key_with_a_comment() -> None:
    text = starter_config_text()
    for section in cfg.SECTIONS:
        assert f"[{section}]" in text
        for key in cfg.section_specs(section):
            lines = [ln for ln in text.splitlines() if ln.lstrip("# ").startswith(f"{key} = ")]
            assert lines, key
            assert any(" # " in ln for ln in lines), key
    assert 'password_env = "NAME_OF_VARIABLE"' in text
    assert "sales_receipt | invoice | sales_order" in text
    assert "name | full_name | manufacturer_part_number" in text


def test_write_starter_refuses_to_overwrite_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "connex.toml"
    write_starter_config(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("# mine\n")
    with pytest.raises(ConfigError) as info:
        write_starter_config(path)
    assert "connex.toml" in str(info.value) and "exists" in str(info.value)
    assert path.read_text() == "# mine\n"
    os.chmod(path, 0o644)
    write_starter_config(path, force=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "[qbwc]" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["connex.toml"]  # no temp file left


def test_write_starter_creates_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "connex.toml"
    write_starter_config(path)
    load_config(path, {})


# --------------------------------------------------------------------------- paths


def test_relative_database_path_is_relative_to_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, minimal(rest='[database]\npath = "data/sync.db"\n'))
    config = load_config(Path("etc/connex.toml"), {})
    assert config.database.path.is_absolute()
    assert config.database.path == path.parent / "data" / "sync.db"


def test_default_database_path_and_absolute_path(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    assert load_config(path, {}).database.path == tmp_path / "connex.db"
    absolute = tmp_path / "elsewhere" / "x.db"
    path = write(tmp_path, minimal(rest=f'[database]\npath = "{absolute}"\n'))
    assert load_config(path, {}).database.path == absolute


def test_tls_paths_relative_to_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, minimal('tls_cert = "c.pem"\ntls_key = "k.pem"'))
    q = load_config(path, {}).qbwc
    assert (q.tls_cert, q.tls_key) == (tmp_path / "c.pem", tmp_path / "k.pem")
    assert q.endpoint_url == "https://127.0.0.1:8080/qbwc"


def test_endpoint_url() -> None:
    q = parse_config({"qbwc": {"password": "x"}}, Path("connex.toml"), {}).qbwc
    assert q.endpoint_url == "http://127.0.0.1:8080/qbwc"
    data = {"qbwc": {"password": "x", "public_url": "https://qb.example.com/qbwc"}}
    assert parse_config(data, Path("c.toml"), {}).qbwc.endpoint_url == "https://qb.example.com/qbwc"


def test_resolve_config_path_order() -> None:
    env = {"CONNEX_CONFIG": "/etc/connex/env.toml"}
    assert resolve_config_path("/cli/path.toml", env) == Path("/cli/path.toml")
    assert resolve_config_path(None, env) == Path("/etc/connex/env.toml")
    assert resolve_config_path(None, {}) == Path("connex.toml")
    assert resolve_config_path("", {"CONNEX_CONFIG": ""}) == Path("connex.toml")


# --------------------------------------------------------------------------- defaults and values


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()), {})
    assert config.storefront.platform == "none" and config.storefront.url == ""
    assert config.storefront.consumer_key is None
    assert config.qbwc.password.reveal() == PASSWORD
    assert config.orders.statuses == ("processing", "completed", "paid", "partially_refunded")


def test_parse_config_for_tests_and_demo() -> None:
    data = {
        "qbwc": {"password": "pw", "port": 9000},
        "storefront": {
            "platform": "shopify",
            "url": "https://x.myshopify.com",
            "access_token": "shpat_1",
            "location_id": "42",
        },
        "orders": {"post_as": "invoice", "statuses": ["paid"]},
    }
    config = parse_config(data, Path("/srv/demo.toml"), {})
    assert isinstance(config, Config)
    assert config.qbwc.port == 9000 and config.orders.post_as == "invoice"
    assert config.orders.statuses == ("paid",)
    assert config.storefront.access_token == Secret("shpat_1")
    assert config.database.path == Path("/srv/connex.db")


def test_env_secrets(tmp_path: Path) -> None:
    text = (
        '[qbwc]\npassword_env = "CONNEX_QBWC_PASSWORD"\n'
        '[storefront]\nplatform = "woocommerce"\nurl = "https://shop.example.com"\n'
        'consumer_key_env = "CK"\nconsumer_secret_env = "CS"\n'
    )
    env = {"CONNEX_QBWC_PASSWORD": PASSWORD, "CK": CK, "CS": CS}
    config = load_config(write(tmp_path, text), env)
    assert config.qbwc.password.reveal() == PASSWORD
    assert config.storefront.consumer_key.reveal() == CK
    assert config.storefront.consumer_secret.reveal() == CS


# --------------------------------------------------------------------------- errors


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    message = error_for(tmp_path, '[qbwc]\npasword = "x"\n')
    assert message == "connex.toml: [qbwc] pasword: unknown key (did you mean 'password'?)"


def test_unknown_key_without_close_match_lists_known(tmp_path: Path) -> None:
    message = error_for(tmp_path, minimal("zzzzzz = 1"))
    assert "[qbwc] zzzzzz: unknown key" in message and "password_env" in message


def test_unknown_section(tmp_path: Path) -> None:
    message = error_for(tmp_path, minimal(rest="[invetory]\nmatch = 'name'\n"))
    assert "[invetory]" in message and "unknown section" in message
    assert "did you mean 'inventory'?" in message


def test_key_outside_any_section(tmp_path: Path) -> None:
    message = error_for(tmp_path, "port = 8080\n" + minimal())
    assert "port" in message and "[qbwc]" in message


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    message = error_for(tmp_path, 'orders = "x"\n' + minimal())
    assert "[orders]" in message and "expected a table" in message


def test_wrong_type(tmp_path: Path) -> None:
    message = error_for(tmp_path, minimal('port = "eighty"'))
    assert message == ("connex.toml: [qbwc] port: expected an integer from 0 to 65535, got 'eighty'")


@pytest.mark.parametrize("value", ["true", "false"])
def test_bool_is_not_an_int(tmp_path: Path, value: str) -> None:
    message = error_for(tmp_path, minimal(f"port = {value}"))
    assert "[qbwc] port: expected an integer from 0 to 65535" in message
    assert f"got {value}" in message


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ("port = 70000", "port", "expected an integer from 0 to 65535, got 70000"),
        ("port = -1", "port", "expected an integer from 0 to 65535, got -1"),
        ("max_returned = 1001", "max_returned", "expected an integer from 1 to 1000"),
        ("orders_per_request = 501", "orders_per_request", "from 1 to 500"),
        ("run_every_minutes = 0", "run_every_minutes", "expected an integer of at least 1, got 0"),
        ("port = 80.5", "port", "got 80.5"),
        ('path = "qbwc"', "path", 'expected a non-empty string starting with "/"'),
        ('host = ""', "host", "expected a non-empty string, got ''"),
        ("host = 5", "host", "expected a non-empty string, got 5"),
        ('public_url = "ftp://x"', "public_url", 'starting with "https://" or "http://"'),
    ],
)
def test_out_of_range_and_bad_values(tmp_path: Path, line: str, key: str, expected: str) -> None:
    message = error_for(tmp_path, minimal(line))
    assert f"[qbwc] {key}: " in message and expected in message


def test_bad_enum_lists_choices(tmp_path: Path) -> None:
    message = error_for(tmp_path, minimal(rest='[orders]\npost_as = "receipt"\n'))
    assert message == (
        "connex.toml: [orders] post_as: expected one of 'sales_receipt', 'invoice', 'sales_order', got 'receipt'"
    )


def test_bad_string_array(tmp_path: Path) -> None:
    message = error_for(tmp_path, minimal(rest="[orders]\nstatuses = ['paid', 3]\n"))
    assert "[orders] statuses: expected a non-empty array of non-empty strings" in message


def test_missing_password(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[qbwc]\nport = 8080\n")
    assert "[qbwc] password: missing" in message
    assert "password_env" in message and "expected" in message


def test_missing_qbwc_section_means_missing_password(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[orders]\npoll_seconds = 5\n")
    assert "[qbwc] password: missing" in message


def test_both_password_and_password_env(tmp_path: Path) -> None:
    text = minimal('password_env = "CONNEX_QBWC_PASSWORD"')
    message = error_for(tmp_path, text, {"CONNEX_QBWC_PASSWORD": "other"})
    assert "[qbwc] password:" in message and "password_env" in message and "not both" in message
    assert PASSWORD not in message and "other" not in message


def test_missing_env_var(tmp_path: Path) -> None:
    message = error_for(tmp_path, '[qbwc]\npassword_env = "CONNEX_QBWC_PASSWORD"\n')
    assert message == ("connex.toml: [qbwc] password_env: environment variable CONNEX_QBWC_PASSWORD is not set")


def test_empty_env_var(tmp_path: Path) -> None:
    text = '[qbwc]\npassword_env = "CONNEX_QBWC_PASSWORD"\n'
    message = error_for(tmp_path, text, {"CONNEX_QBWC_PASSWORD": ""})
    assert "[qbwc] password_env:" in message and "CONNEX_QBWC_PASSWORD is empty" in message


def test_env_name_must_be_a_string(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[qbwc]\npassword_env = 5\n")
    assert "[qbwc] password_env: expected the name of an environment variable, got 5" in message


@pytest.mark.parametrize(
    ("storefront", "key"),
    [
        ('platform = "woocommerce"\nconsumer_key = "a"\nconsumer_secret = "b"', "url"),
        ('platform = "woocommerce"\nurl = "https://s"\nconsumer_secret = "b"', "consumer_key"),
        ('platform = "woocommerce"\nurl = "https://s"\nconsumer_key = "a"', "consumer_secret"),
        ('platform = "shopify"\nurl = "https://s"\nlocation_id = "1"', "access_token"),
        ('platform = "shopify"\nurl = "https://s"\naccess_token = "t"', "location_id"),
    ],
)
def test_platform_requirements(tmp_path: Path, storefront: str, key: str) -> None:
    message = error_for(tmp_path, minimal(rest=f"[storefront]\n{storefront}\n"))
    assert f"[storefront] {key}: missing" in message and "platform =" in message


def test_platform_none_needs_nothing(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal(rest='[storefront]\nplatform = "none"\n')), {})
    assert config.storefront.platform == "none"


def test_tls_needs_both(tmp_path: Path) -> None:
    message = error_for(tmp_path, minimal('tls_cert = "c.pem"'))
    assert "[qbwc] tls_key: missing" in message and "tls_cert is set" in message
    message = error_for(tmp_path, minimal('tls_key = "k.pem"'))
    assert "[qbwc] tls_cert: missing" in message


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    message = error_for(tmp_path, '[qbwc]\npassword = "x"\nport = = 3\n')
    assert message.startswith("connex.toml: TOML syntax error")
    assert "line 3" in message and "column" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "connex.toml"
    path.write_bytes(b'[qbwc]\npassword = "\xff"\n')
    with pytest.raises(ConfigError, match="connex.toml"):
        load_config(path, {})


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Path("connex.toml"), {})
    assert str(info.value) == ("connex.toml: file not found; run `connex-tui init` to write a starter file")


# --------------------------------------------------------------------------- secrets


def test_secret_never_shows_itself() -> None:
    secret = Secret(PASSWORD)
    assert repr(secret) == "***" and str(secret) == "***"
    assert f"{secret}" == "***" and PASSWORD not in f"{secret!r} {[secret]}"
    assert secret.reveal() == PASSWORD
    assert secret == Secret(PASSWORD) and secret != Secret("other")


def test_config_repr_hides_secrets(tmp_path: Path) -> None:
    text = minimal(
        rest=f'[storefront]\nplatform = "woocommerce"\nurl = "https://s"\n'
        f'consumer_key = "{CK}"\nconsumer_secret_env = "CS"\n'
    )
    config = load_config(write(tmp_path, text), {"CS": CS})
    for shown in (repr(config), str(config), repr(config.qbwc), str(config.storefront)):
        for value in (PASSWORD, CK, CS):
            assert value not in shown
    assert config.secrets() == [PASSWORD, CK, CS]


def test_secrets_skips_unset() -> None:
    config = parse_config({"qbwc": {"password": "pw"}}, Path("connex.toml"), {})
    assert config.secrets() == ["pw"]


@pytest.mark.parametrize(
    "line",
    [
        f"password = {123456}",
        'password = ""',
        "password = true",
        "password = ['hunter2secret']",
    ],
)
def test_secret_type_errors_do_not_echo(tmp_path: Path, line: str) -> None:
    message = error_for(tmp_path, f"[qbwc]\n{line}\n")
    assert "[qbwc] password: expected a non-empty string" in message
    for leaked in ("123456", "hunter2secret", "true"):
        assert leaked not in message


def test_secret_length_only(tmp_path: Path) -> None:
    data = {"qbwc": {"password": "pw"}, "storefront": {"consumer_key": 987654321}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("connex.toml"), {})
    assert "987654321" not in str(info.value) and "got an integer" in str(info.value)
    assert cfg.describe("hunter2", secret=True) == "a string of 7 characters"


def test_errors_never_contain_secret_values(tmp_path: Path) -> None:
    bad_files = [
        minimal("port = 'x'"),
        minimal("pasword = 'y'"),
        minimal(rest=f'[storefront]\nplatform = "woocommerce"\nconsumer_key = "{CK}"\n'),
        minimal(rest=f'[storefront]\nconsumer_key = "{CK}"\nconsumer_key_env = "CK"\n'),
    ]
    for text in bad_files:
        message = error_for(tmp_path, text, {"CK": CS})
        for value in (PASSWORD, CK, CS):
            assert value not in message, message


# --------------------------------------------------------------------------- permissions


def test_permission_warning(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    os.chmod(path, 0o644)
    warning = permission_warning(path)
    assert warning is not None and "\n" not in warning
    assert str(path) in warning and "chmod 600" in warning and "0644" in warning
    assert PASSWORD not in warning
    os.chmod(path, 0o600)
    assert permission_warning(path) is None


def test_no_permission_warning_without_literal_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[qbwc]\npassword_env = "CONNEX_QBWC_PASSWORD"\n')
    os.chmod(path, 0o644)
    assert permission_warning(path) is None
    assert permission_warning(tmp_path / "absent.toml") is None


# --------------------------------------------------------------------------- [interface] keymap


def test_keymap_is_read_in_order(tmp_path: Path) -> None:
    write(tmp_path, minimal(rest='[interface]\nkeymap = { "pending.retry" = "t", "app.help" = "f1,?" }\n'))
    config = load_config(Path("connex.toml"), {})
    assert config.interface.keymap == (("pending.retry", "t"), ("app.help", "f1,?"))
    assert load_config(write(tmp_path, minimal(), "plain.toml"), {}).interface.keymap == ()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('keymap = "t"', "connex.toml: [interface] keymap: expected a table of binding id = key string"),
        (
            'keymap = { "pending.retry" = 3 }',
            'connex.toml: [interface] keymap.pending.retry: expected a key string such as "ctrl+r", got 3',
        ),
        (
            'keymap = { "pending.retry" = "ctl+t" }',
            "connex.toml: [interface] keymap.pending.retry: malformed key 'ctl+t' in 'ctl+t': unknown modifier 'ctl'",
        ),
        (
            'keymap = { "pending.retry" = "ctrl+" }',
            "connex.toml: [interface] keymap.pending.retry: malformed key 'ctrl+' in 'ctrl+': a key name is missing",
        ),
        (
            'keymap = { "pending.retry" = "t,,f5" }',
            "connex.toml: [interface] keymap.pending.retry: malformed key '' in 't,,f5': a key name is missing",
        ),
        (
            'keymap = { "pending.retry" = "t, f5" }',
            "connex.toml: [interface] keymap.pending.retry: malformed key string 't, f5': no spaces",
        ),
    ],
)
def test_a_malformed_keymap_entry_is_named(tmp_path: Path, table: str, expected: str) -> None:
    assert error_for(tmp_path, minimal(rest=f"[interface]\n{table}\n")).startswith(expected)


def test_an_unknown_binding_id_stops_the_interface_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ids are the interface's: `run` checks them (connex_tui.keymap) before the engine starts."""
    from connex_tui.cli import main

    database = tmp_path / "connex.db"
    write(
        tmp_path, minimal(rest=f'[database]\npath = "{database}"\n[interface]\nkeymap = {{ "pending.retyr" = "t" }}\n')
    )
    assert main(["run", "--config", "connex.toml"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "connex-tui: connex.toml: [interface] keymap.pending.retyr: unknown binding id (did you mean 'pending.retry'?)"
    )
    assert not database.exists()  # nothing was started
    assert main(["monitor", "--config", "connex.toml"]) == 2
    assert "keymap.pending.retyr: unknown binding id" in capsys.readouterr().err
