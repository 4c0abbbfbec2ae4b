"""The TOML configuration: where it is, what it may hold, and what it means.

Every key is declared once, as a field of its section's dataclass, through `setting(...)`:
kind, default, range or choices, and a one-line comment. That declaration drives the
validation, the error messages and the starter file `connex-tui init` writes, so adding a
key is one line.

Errors are `ConfigError`s of one line naming the file, the section and key, and what was
expected. Secret values (passwords, API keys) are wrapped in `Secret`, which never shows
itself, and are never echoed in an error. Each secret key may instead be given as
`<key>_env = "VARIABLE"`, naming an environment variable that holds the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hmac
import ipaddress
import json
import os
import secrets as _secrets
import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "InterfaceConfig",
    "InventoryConfig",
    "LoggingConfig",
    "OrdersConfig",
    "QBWCConfig",
    "Secret",
    "StorefrontConfig",
    "load_config",
    "parse_config",
    "permission_warning",
    "resolve_config_path",
    "starter_config_text",
    "write_starter_config",
]

DEFAULT_FILE_NAME = "connex.toml"
CONFIG_ENV_VAR = "CONNEX_CONFIG"
ENV_SUFFIX = "_env"


class ConfigError(Exception):
    """One line that names the file, the key and what was expected, e.g.
    "connex.toml: [qbwc] port: expected an integer from 1 to 65535, got 'eighty'"."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


class Secret:
    """A string that never shows itself: repr/str give '***'; .reveal() gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


# --------------------------------------------------------------------------- the key table


class Kind(enum.Enum):
    INT = "int"
    STR = "str"
    ENUM = "enum"
    STRINGS = "strings"
    PATH = "path"
    SECRET = "secret"
    KEYMAP = "keymap"
    NETWORKS = "networks"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a key with no default: it must be given
_SAME: Any = object()  # the starter file shows the default
_ABSENT: Any = object()  # the key is not in the file

# Given a section's values so far, why a key is needed (for the message), or None.
Condition = Callable[[Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Spec:
    """One key: what it holds, its default, its limits and its line in the starter file."""

    kind: Kind
    default: Any
    comment: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()  # a string must start with one of these
    allow_empty: bool = False
    starter: Any = _SAME  # the value `init` writes; a callable is called
    commented: bool = False  # the starter shows the key commented out
    required_when: Condition | None = None

    @property
    def secret(self) -> bool:
        return self.kind is Kind.SECRET

    def expected(self) -> str:
        """What a valid value looks like, for error messages."""
        return _EXPECTED[self.kind](self)


def setting(kind: Kind, default: Any, comment: str, **options: Any) -> Any:
    """Declare a key as a dataclass field carrying its `Spec`."""
    spec = Spec(kind, default, comment, **options)
    meta = {"spec": spec}
    if default is REQUIRED or (kind is Kind.PATH and default is not None):
        return field(metadata=meta)  # a relative default path is only known at load time
    return field(default=default, metadata=meta)


def _platform_in(*platforms: str) -> Condition:
    def needed(values: Mapping[str, Any]) -> str | None:
        platform = values.get("platform")
        return f"platform = {json.dumps(platform)}" if platform in platforms else None

    return needed


def _is_set(other: str) -> Condition:
    def needed(values: Mapping[str, Any]) -> str | None:
        return f"{other} is set" if values.get(other) is not None else None

    return needed


def _new_password() -> str:
    return _secrets.token_urlsafe(24)


_HTTP = ("https://", "http://")


@dataclass(frozen=True)
class DatabaseConfig:
    path: Path = setting(Kind.PATH, "connex.db", "relative paths are relative to the config file")


@dataclass(frozen=True, kw_only=True)
class QBWCConfig:
    host: str = setting(Kind.STR, "127.0.0.1", "address the Web Connector SOAP server listens on")
    port: int = setting(Kind.INT, 8080, "TCP port of the SOAP server (0: any free port)", lo=0, hi=65535)
    path: str = setting(Kind.STR, "/qbwc", "URL path of the SOAP endpoint", prefixes=("/",))
    username: str = setting(Kind.STR, "qbwc", "user name the Web Connector logs in with")
    password: Secret = setting(Kind.SECRET, REQUIRED, 'or password_env = "NAME_OF_VARIABLE"', starter=_new_password)
    run_every_minutes: int = setting(Kind.INT, 2, "how often the Web Connector calls", lo=1)
    max_returned: int = setting(Kind.INT, 100, "qbXML iterator page size", lo=1, hi=1000)
    orders_per_request: int = setting(Kind.INT, 50, "orders sent to QuickBooks per request", lo=1, hi=500)
    max_body_bytes: int = setting(
        Kind.INT, 64 * 1024 * 1024, "largest SOAP request accepted, in bytes (64 MiB)", lo=1024
    )
    ticket_idle_minutes: int = setting(Kind.INT, 30, "a session ticket unused this long expires", lo=1)
    app_name: str = setting(Kind.STR, "connex-tui", "application name shown in the Web Connector")
    app_unique_name: str | None = setting(
        Kind.STR,
        None,
        "the .qwc's AppUniqueName (default: app_name); re-adding the file replaces the application",
        commented=True,
        starter="connex-tui",
    )
    unattended_mode: Literal["optional", "required"] = setting(
        Kind.ENUM,
        "optional",
        "required: ask for QuickBooks' automatic login (runs while QuickBooks is closed)",
        choices=("optional", "required"),
    )
    personal_data: Literal["not_needed", "optional", "required"] = setting(
        Kind.ENUM,
        "not_needed",
        "access to personal data (SSNs, card numbers) asked for in the .qwc",
        choices=("not_needed", "optional", "required"),
    )
    public_url: str | None = setting(
        Kind.STR,
        None,
        "URL the Web Connector reaches us at; default http://host:port/path",
        prefixes=_HTTP,
        starter="https://connex.example.com/qbwc",
        commented=True,
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        Kind.NETWORKS,
        (),
        "reverse proxies (addresses or networks) whose X-Forwarded-For names the client",
        starter=["127.0.0.1"],
        commented=True,
    )
    max_connections: int = setting(
        Kind.INT,
        256,
        "open connections the endpoint holds at most (keep below the open-files limit)",
        lo=8,
        hi=100_000,
    )
    read_min_interval_seconds: int = setting(
        Kind.INT, 60, "with no orders waiting, skip item reads newer than this", lo=0
    )
    concurrent_seconds: int = setting(
        Kind.INT,
        15,
        "a session that answered a call this recently makes another Web Connector wait (busy);"
        " a quieter one was dropped and is superseded",
        lo=0,
        hi=3600,
    )
    tls_cert: Path | None = setting(
        Kind.PATH,
        None,
        "TLS certificate (PEM); needs tls_key",
        starter="cert.pem",
        commented=True,
        required_when=_is_set("tls_key"),
    )
    tls_key: Path | None = setting(
        Kind.PATH,
        None,
        "TLS private key (PEM); needs tls_cert",
        starter="key.pem",
        commented=True,
        required_when=_is_set("tls_cert"),
    )

    @property
    def endpoint_url(self) -> str:
        """The URL for the .qwc file: public_url, else http(s)://host:port/path."""
        return self.public_url or self.local_url()

    def local_url(self, port: int | None = None) -> str:
        """Where we listen: http(s)://host:port/path (`port` is the one bound when 0 was asked for)."""
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{port or self.port}{self.path}"


@dataclass(frozen=True)
class StorefrontConfig:
    platform: Literal["woocommerce", "shopify", "none"] = setting(
        Kind.ENUM, "none", "", choices=("woocommerce", "shopify", "none"), starter="woocommerce"
    )
    url: str = setting(
        Kind.STR,
        "",
        "the store's address",
        prefixes=_HTTP,
        allow_empty=True,
        starter="https://shop.example.com",
        required_when=_platform_in("woocommerce", "shopify"),
    )
    consumer_key: Secret | None = setting(
        Kind.SECRET,
        None,
        "each secret may also come from a *_env variable",
        starter="ck_...",
        required_when=_platform_in("woocommerce"),
    )
    consumer_secret: Secret | None = setting(
        Kind.SECRET,
        None,
        "WooCommerce REST API secret",
        starter="cs_...",
        required_when=_platform_in("woocommerce"),
    )
    access_token: Secret | None = setting(
        Kind.SECRET,
        None,
        "Shopify Admin API access token",
        starter="shpat_...",
        commented=True,
        required_when=_platform_in("shopify"),
    )
    location_id: str | None = setting(
        Kind.STR,
        None,
        "Shopify location whose stock is set (a string)",
        starter="12345678",
        commented=True,
        required_when=_platform_in("shopify"),
    )
    api_version: str = setting(Kind.STR, "2026-10", "Shopify Admin API version")
    timeout_seconds: int = setting(Kind.INT, 60, "the longest one request to the store may take", lo=1, hi=600)
    max_concurrency: int = setting(
        Kind.INT,
        8,
        "the most requests to the store at once (starts at 2, grows while the store keeps up)",
        lo=1,
        hi=64,
    )
    ca_bundle: Path | None = setting(
        Kind.PATH,
        None,
        "CA certificates (PEM) to verify the store with, e.g. a TLS-inspecting proxy's; default: the system's",
        starter="/etc/ssl/certs/proxy-ca.pem",
        commented=True,
    )


@dataclass(frozen=True)
class OrdersConfig:
    poll_seconds: int = setting(Kind.INT, 60, "how often the store is asked for new orders", lo=1)
    post_as: Literal["sales_receipt", "invoice", "sales_order"] = setting(
        Kind.ENUM, "sales_receipt", "", choices=("sales_receipt", "invoice", "sales_order")
    )
    customer: str = setting(Kind.STR, "Web Store", "QuickBooks customer web orders are posted to")
    statuses: tuple[str, ...] = setting(
        Kind.STRINGS,
        ("processing", "completed", "paid", "partially_refunded"),
        "store order statuses that are imported (WooCommerce status, Shopify financial status)",
    )
    raw_retention_days: int = setting(
        Kind.INT, 30, "days a store order's own data (trimmed, no addresses) is kept before it is dropped", lo=1
    )


@dataclass(frozen=True)
class InventoryConfig:
    match: Literal["name", "full_name", "manufacturer_part_number"] = setting(
        Kind.ENUM,
        "name",
        "which QuickBooks field equals the store SKU",
        choices=("name", "full_name", "manufacturer_part_number"),
    )
    quantity: Literal["available", "on_hand"] = setting(
        Kind.ENUM,
        "available",
        "QuickBooks quantity sent to the store",
        choices=("available", "on_hand"),
    )
    max_attempts: int = setting(Kind.INT, 8, "tries before a failing stock update gives up", lo=1)
    catalog_refresh_minutes: int = setting(Kind.INT, 60, "how often the store's SKU index is refreshed", lo=1)
    reconcile_hours: int = setting(
        Kind.INT, 24, "how often every matched SKU's store stock is compared with QuickBooks", lo=1
    )
    log_retention_days: int = setting(Kind.INT, 30, "how long SKU log lines are kept", lo=1)


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = setting(
        Kind.ENUM, "info", "", choices=("debug", "info", "warning", "error")
    )
    file: Path | None = setting(
        Kind.PATH,
        None,
        "JSON log lines go here instead of stderr (a Windows service has no stderr); "
        "the interface logs here too, else beside the database",
        starter="connex.log",
        commented=True,
    )
    rotate: Literal["size", "external"] = setting(
        Kind.ENUM,
        "size",
        "size: the file is rotated at max_megabytes, keeping `backups` old ones (any OS); "
        "external: logrotate moves it and it is reopened (POSIX only)",
        choices=("size", "external"),
    )
    max_megabytes: int = setting(Kind.INT, 10, "rotate the log file at this size (rotate = size)", lo=1, hi=10_000)
    backups: int = setting(Kind.INT, 5, "rotated log files kept: connex.log.1 ... (rotate = size)", lo=1, hi=1000)


@dataclass(frozen=True)
class MetricsConfig:
    port: int | None = setting(
        Kind.INT,
        None,
        "serve GET /metrics (Prometheus text format) on this port; off when not set (0: any free port)",
        lo=0,
        hi=65535,
        starter=9464,
        commented=True,
    )
    host: str = setting(Kind.STR, "127.0.0.1", "address /metrics listens on; 127.0.0.1: this machine only")


@dataclass(frozen=True)
class InterfaceConfig:
    # (binding id, key string) pairs; the interface checks the ids and key names (keymap.py).
    keymap: tuple[tuple[str, str], ...] = setting(
        Kind.KEYMAP,
        (),
        'your keys by binding id (README "Keys"); a key string: "t", "ctrl+t" or "t,f5"',
        starter={"pending.retry": "t"},
        commented=True,
    )


SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "qbwc": QBWCConfig,
    "storefront": StorefrontConfig,
    "orders": OrdersConfig,
    "inventory": InventoryConfig,
    "logging": LoggingConfig,
    "metrics": MetricsConfig,
    "interface": InterfaceConfig,
}


def section_specs(section: str) -> dict[str, Spec]:
    """The keys of one section, in declaration order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(SECTIONS[section])}


@dataclass(frozen=True)
class Config:
    source: Path | None
    database: DatabaseConfig
    qbwc: QBWCConfig
    storefront: StorefrontConfig
    orders: OrdersConfig
    inventory: InventoryConfig
    logging: LoggingConfig
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    interface: InterfaceConfig = field(default_factory=InterfaceConfig)

    def secrets(self) -> list[str]:
        """Every non-empty secret value, for log redaction."""
        found: list[str] = []
        for name in SECTIONS:
            for value in _values_of(getattr(self, name)):
                if isinstance(value, Secret) and value and value.reveal() not in found:
                    found.append(value.reveal())
        return found


def _values_of(instance: Any) -> Iterator[Any]:
    return (getattr(instance, f.name) for f in dataclasses.fields(instance))


# --------------------------------------------------------------------------- expectations


def _expected_int(spec: Spec) -> str:
    if spec.lo is not None and spec.hi is not None:
        return f"an integer from {spec.lo} to {spec.hi}"
    if spec.lo is not None:
        return f"an integer of at least {spec.lo}"
    return "an integer"


def _expected_str(spec: Spec) -> str:
    text = "a string" if spec.allow_empty else "a non-empty string"
    if spec.prefixes:
        text += " starting with " + " or ".join(json.dumps(p) for p in spec.prefixes)
    return text


_EXPECTED: dict[Kind, Callable[[Spec], str]] = {
    Kind.INT: _expected_int,
    Kind.STR: _expected_str,
    Kind.ENUM: lambda spec: "one of " + ", ".join(repr(c) for c in spec.choices),
    Kind.STRINGS: lambda spec: "a non-empty array of non-empty strings",
    Kind.PATH: lambda spec: "a file path (a non-empty string)",
    Kind.SECRET: lambda spec: "a non-empty string",
    Kind.KEYMAP: lambda spec: 'a table of binding id = key string, such as { "pending.retry" = "t" }',
    Kind.NETWORKS: lambda spec: 'an array of IP addresses or networks, such as ["127.0.0.1", "10.0.0.0/8"]',
}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "an integer", float: "a float", str: "a string", list: "an array"}
    names[dict] = "a table"
    return next((n for t, n in names.items() if isinstance(value, t)), "a date/time value")


def describe(value: Any, *, secret: bool = False) -> str:
    """A short one-line picture of a bad value; a secret's value is never shown."""
    if secret:
        if isinstance(value, str):
            return f"a string of {len(value)} characters"
        return _type_name(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- conversion


@dataclass(frozen=True)
class _Ctx:
    label: str
    base: Path
    environ: Mapping[str, str]

    def error(self, section: str, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.label}: [{section}] {key}: {problem}")


class _Bad(Exception):
    """A value that does not fit its spec; the caller words the message (an argument, when
    given, says which part was wrong)."""


def _to_int(spec: Spec, value: Any, ctx: _Ctx) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad
    if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
        raise _Bad
    return value


def _to_str(spec: Spec, value: Any, ctx: _Ctx) -> str:
    if not isinstance(value, str) or (not value and not spec.allow_empty):
        raise _Bad
    if value and spec.prefixes and not value.startswith(spec.prefixes):
        raise _Bad
    return value


def _to_enum(spec: Spec, value: Any, ctx: _Ctx) -> str:
    if value not in spec.choices or not isinstance(value, str):
        raise _Bad
    return value


def _to_strings(spec: Spec, value: Any, ctx: _Ctx) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad
    if not all(isinstance(item, str) and item for item in value):
        raise _Bad
    return tuple(value)


def _to_path(spec: Spec, value: Any, ctx: _Ctx) -> Path:
    if not isinstance(value, str) or not value:
        raise _Bad
    path = Path(value).expanduser()
    return path if path.is_absolute() else ctx.base / path


def _to_networks(spec: Spec, value: Any, ctx: _Ctx) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list):
        raise _Bad
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except (AttributeError, TypeError, ValueError):
            raise _Bad(f"{describe(item)} is not an IP address or network") from None
    return tuple(networks)


def _to_secret(spec: Spec, value: Any, ctx: _Ctx) -> Secret:
    if not isinstance(value, str) or not value:
        raise _Bad
    return Secret(value)


KEY_MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")


def _to_keymap(spec: Spec, value: Any, ctx: _Ctx) -> tuple[tuple[str, str], ...]:
    """[interface] keymap: the table's shape and each key string's syntax (comma-separated keys,
    each `modifier+...+name`). Whether the binding id exists and Textual knows the name is checked
    by the interface, which owns the bindings (`connex_tui/keymap.py`)."""
    if not isinstance(value, dict):
        raise _Bad
    pairs: list[tuple[str, str]] = []
    for binding_id, keys in value.items():
        where = f"keymap.{binding_id}"
        if not isinstance(keys, str) or not keys:
            raise ctx.error("interface", where, f'expected a key string such as "ctrl+r", got {describe(keys)}')
        if any(c.isspace() for c in keys):
            raise ctx.error("interface", where, f'malformed key string {keys!r}: no spaces ("ctrl+r,f5")')
        for key in keys.split(","):
            *modifiers, name = key.split("+")
            unknown = [m for m in modifiers if m not in KEY_MODIFIERS]
            if not name or unknown:
                problem = f"unknown modifier {unknown[0]!r}" if unknown else "a key name is missing"
                raise ctx.error(
                    "interface",
                    where,
                    f"malformed key {key!r} in {keys!r}: {problem}"
                    f' (modifiers: {", ".join(KEY_MODIFIERS)}; several keys: "r,f5")',
                )
        pairs.append((binding_id, keys))
    return tuple(pairs)


_CONVERT: dict[Kind, Callable[[Spec, Any, _Ctx], Any]] = {
    Kind.INT: _to_int,
    Kind.STR: _to_str,
    Kind.ENUM: _to_enum,
    Kind.STRINGS: _to_strings,
    Kind.PATH: _to_path,
    Kind.SECRET: _to_secret,
    Kind.KEYMAP: _to_keymap,
    Kind.NETWORKS: _to_networks,
}


def _convert(section: str, key: str, spec: Spec, value: Any, ctx: _Ctx) -> Any:
    try:
        return _CONVERT[spec.kind](spec, value, ctx)
    except _Bad as bad:
        got = bad.args[0] if bad.args else f"got {describe(value, secret=spec.secret)}"
        raise ctx.error(
            section, key, f"expected {spec.expected()}; {got}" if bad.args else f"expected {spec.expected()}, {got}"
        ) from None


def _from_env(section: str, key: str, table: Mapping[str, Any], ctx: _Ctx) -> Secret:
    env_key = key + ENV_SUFFIX
    variable = table[env_key]
    if not isinstance(variable, str) or not variable:
        expected = "the name of an environment variable"
        raise ctx.error(section, env_key, f"expected {expected}, got {describe(variable)}")
    value = ctx.environ.get(variable)
    if value is None:
        raise ctx.error(section, env_key, f"environment variable {variable} is not set")
    if not value:
        raise ctx.error(section, env_key, f"environment variable {variable} is empty")
    return Secret(value)


def _read_key(section: str, key: str, spec: Spec, table: Mapping[str, Any], ctx: _Ctx) -> Any:
    """The key's value from the table, or _ABSENT."""
    if spec.secret and key + ENV_SUFFIX in table:
        if key in table:
            both = f"give either {key} or {key}{ENV_SUFFIX}, not both"
            raise ctx.error(section, key, both)
        return _from_env(section, key, table, ctx)
    if key in table:
        return _convert(section, key, spec, table[key], ctx)
    return _ABSENT


def _missing(key: str, spec: Spec, reason: str | None = None) -> str:
    """The problem text for a key that must be given but is not."""
    if spec.secret:
        how = f'{key} = "..." or {key}{ENV_SUFFIX} = "NAME_OF_VARIABLE"'
    else:
        how = spec.expected()
    return f"missing; expected {how}" + (f" (needed when {reason})" if reason else "")


def _default(section: str, key: str, spec: Spec, ctx: _Ctx) -> Any:
    if spec.default is REQUIRED:
        raise ctx.error(section, key, _missing(key, spec))
    if spec.kind is Kind.PATH and spec.default is not None:
        return _to_path(spec, spec.default, ctx)
    return spec.default


def _check_required_when(section: str, specs: Mapping[str, Spec], values: Mapping[str, Any], ctx: _Ctx) -> None:
    for key, spec in specs.items():
        reason = spec.required_when(values) if spec.required_when else None
        if reason and values[key] in (None, ""):
            raise ctx.error(section, key, _missing(key, spec, reason))


# --------------------------------------------------------------------------- unknown names


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known: " + ", ".join(known)


def _known_keys(specs: Mapping[str, Spec]) -> list[str]:
    names = list(specs)
    names += [k + ENV_SUFFIX for k, spec in specs.items() if spec.secret]
    return names


def _check_keys(section: str, table: Mapping[str, Any], ctx: _Ctx) -> None:
    known = _known_keys(section_specs(section))
    for key in table:
        if key not in known:
            raise ctx.error(section, key, f"unknown key ({_suggest(key, known)})")


def _sections_with_key(key: str) -> list[str]:
    return [s for s in SECTIONS if key in _known_keys(section_specs(s))]


def _check_sections(data: Mapping[str, Any], ctx: _Ctx) -> None:
    for name, value in data.items():
        if name in SECTIONS and isinstance(value, dict):
            continue
        if name in SECTIONS:
            problem = f"[{name}]: expected a table, got {_type_name(value)}"
        elif not isinstance(value, dict) and (owners := _sections_with_key(name)):
            problem = f"{name}: key outside any section (put it under [{owners[0]}])"
        else:
            problem = f"[{name}]: unknown section ({_suggest(name, list(SECTIONS))})"
        raise ConfigError(f"{ctx.label}: {problem}")


# --------------------------------------------------------------------------- loading


def _parse_section(section: str, table: Mapping[str, Any], ctx: _Ctx) -> Any:
    _check_keys(section, table, ctx)
    specs = section_specs(section)
    values: dict[str, Any] = {}
    for key, spec in specs.items():
        value = _read_key(section, key, spec, table, ctx)
        values[key] = _default(section, key, spec, ctx) if value is _ABSENT else value
    _check_required_when(section, specs, values, ctx)
    return SECTIONS[section](**values)


def parse_config(data: Mapping[str, Any], source: Path | None, environ: Mapping[str, str]) -> Config:
    """Validate parsed TOML; relative paths are taken relative to source's folder."""
    label = str(source) if source is not None else DEFAULT_FILE_NAME
    base = source.absolute().parent if source is not None else Path.cwd()
    ctx = _Ctx(label, base, environ)
    _check_sections(data, ctx)
    sections = {name: _parse_section(name, data.get(name, {}), ctx) for name in SECTIONS}
    return Config(source=source, **sections)


def resolve_config_path(cli_path: str | None, environ: Mapping[str, str]) -> Path:
    """--config, else $CONNEX_CONFIG, else ./connex.toml."""
    chosen = cli_path or environ.get(CONFIG_ENV_VAR) or DEFAULT_FILE_NAME
    return Path(chosen).expanduser()


def _read_toml(path: Path) -> dict[str, Any]:
    label = str(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        hint = "run `connex-tui init` to write a starter file"
        raise ConfigError(f"{label}: file not found; {hint}") from None
    except OSError as err:
        raise ConfigError(f"{label}: cannot read the file ({err.strerror or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{label}: TOML syntax error: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: TOML syntax error: the file is not UTF-8 text") from None


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the file at path; environ defaults to os.environ."""
    data = _read_toml(path)
    return parse_config(data, path, os.environ if environ is None else environ)


def permission_warning(path: Path) -> str | None:
    """A one-line warning when a file holding a literal secret is readable by group or others."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if os.name == "nt" or not mode & 0o077 or not _has_literal_secret(path):
        return None
    fix = f"chmod 600 {shlex.quote(str(path))}"
    problem = f"holds a secret but is readable by group or others (mode {mode:04o})"
    return f"{path}: {problem}; run `{fix}`"


def _has_literal_secret(path: Path) -> bool:
    try:
        data = _read_toml(path)
    except ConfigError:
        return False
    for section in SECTIONS:
        table = data.get(section)
        if not isinstance(table, dict):
            continue
        for key, spec in section_specs(section).items():
            if spec.secret and isinstance(table.get(key), str) and table[key]:
                return True
    return False


# --------------------------------------------------------------------------- the starter file

_STARTER_HEADER = """\
# connex-tui configuration (TOML). Every key is shown with its default.
# Keep this file private (chmod 600): it holds passwords.
"""
_COMMENT_COLUMN = 32


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table (the keymap)
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def _starter_line(key: str, spec: Spec) -> str:
    value = spec.default if spec.starter is _SAME else spec.starter
    value = value() if callable(value) else value
    assignment = ("# " if spec.commented else "") + f"{key} = {_toml_value(value)}"
    comment = " | ".join(spec.choices)
    comment = f"{spec.comment}: {comment}" if spec.comment and comment else spec.comment or comment
    if not comment:
        return assignment
    return f"{assignment.ljust(_COMMENT_COLUMN - 1)} # {comment}"


def starter_config_text() -> str:
    """The commented starter file `connex-tui init` writes, with a fresh random password."""
    parts = [_STARTER_HEADER]
    for section in SECTIONS:
        lines = [f"[{section}]"] + [_starter_line(k, s) for k, s in section_specs(section).items()]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_starter_config(path: Path, *, force: bool = False) -> None:
    """Write the starter file with mode 0600; refuse to overwrite unless force."""
    data = starter_config_text().encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if force:
            _replace_private(path, data)
        else:
            _create_private(path, data)
    except FileExistsError:
        problem = "already exists; refusing to overwrite it without --force"
        raise ConfigError(f"{path}: {problem}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot write the file ({err.strerror or err})") from None


def _create_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        if os.chmod in os.supports_fd:
            os.chmod(handle.fileno(), 0o600)  # exactly 0600, whatever the umask
        handle.write(data)


def _replace_private(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{_secrets.token_hex(4)}.tmp")
    try:
        _create_private(temp, data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
