"""Clocks and emulator fixtures shared by the store emulator and client tests.

Import what a test module uses explicitly (pytest finds fixtures imported into a module):
`from .store_fixtures import StepClock, clock, make_shop`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from connex_tui.sim import shopify_schema
from connex_tui.sim.shopify import ShopifyEmulator

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


class StepClock:
    """A wall clock the test moves by hand (WooCommerce emulator: dates, OAuth timestamps)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


class Wall:
    """A settable wall clock for Shopify's createdAt/updatedAt."""

    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@functools.cache
def real_schemas() -> bool:
    """Shopify's real Admin schemas on this machine (fetched once with npm, then cached), so the
    emulator validates every document against them. CI must have them; elsewhere a machine without
    npm or the registry falls back, with a warning, to the checked subset."""
    try:
        shopify_schema.fetch_schemas()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        if os.environ.get("CI"):
            raise
        warnings.warn(f"Shopify's real Admin schemas are not available: {exc}", stacklevel=1)
        return False
    return True


@pytest.fixture(scope="session")
def shopify_schemas() -> bool:
    return real_schemas()


@pytest.fixture
async def make_shop() -> AsyncIterator[Callable[..., Any]]:
    """Shopify emulators started on free ports, stopped after the test."""
    real_schemas()
    started: list[ShopifyEmulator] = []

    async def make(**kwargs: Any) -> ShopifyEmulator:
        shop = ShopifyEmulator(**kwargs)
        await shop.start()
        started.append(shop)
        return shop

    yield make
    for shop in started:
        await shop.stop()
