"""The storefront client named by the configuration."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from .base import Storefront
from .retry import RetryPolicy


class TimeSource(Protocol):
    """The engine's `Clock` as this package sees it (it does not import the engine)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


def make_storefront(
    storefront_config: Any,
    *,
    session: aiohttp.ClientSession | None = None,
    policy: RetryPolicy | None = None,
    clock: TimeSource | None = None,
) -> Storefront | None:
    """`storefront_config` is the engine's StorefrontConfig (duck-typed: this package does not
    import the engine). None for platform "none". `session`: an HTTP session the caller owns
    (`connex-tui doctor` passes one that records the store's Date header, and a short retry policy).
    `clock`: the engine's clock, which the client reads for every wait and timestamp (the
    machine's clocks when None)."""
    c = storefront_config
    elapsed: Callable[[], float] = time.monotonic if clock is None else clock.monotonic
    unix: Callable[[], float] = time.time if clock is None else (lambda: clock.now().timestamp())
    verify = tls_context(c.ca_bundle)
    policy = policy or RetryPolicy(timeout=float(c.timeout_seconds))
    if c.platform == "woocommerce":
        from .woocommerce import WooCommerceClient

        return WooCommerceClient(
            c.url,
            c.consumer_key.reveal(),
            c.consumer_secret.reveal(),
            ssl=verify,
            policy=policy,
            session=session,
            concurrency=c.max_concurrency,
            clock=elapsed,
            wall_clock=unix,
        )
    if c.platform == "shopify":
        from .shopify import ShopifyClient

        return ShopifyClient(
            c.url,
            c.access_token.reveal(),
            c.location_id,
            api_version=c.api_version,
            ssl=verify,
            policy=policy,
            concurrency=c.max_concurrency,
            session=session,
            clock=elapsed,
        )
    return None


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext | None:
    """Certificates are always verified; a CA bundle only changes which authorities are trusted."""
    if ca_bundle is None:
        return None
    return ssl.create_default_context(cafile=str(ca_bundle))
