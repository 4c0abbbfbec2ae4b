"""Shared fixtures: a real engine on a free port with a real SQLite file, and the simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connex_tui.engine.config import Config, parse_config
from connex_tui.engine.runtime import Engine
from connex_tui.sim.quickbooks import QuickBooksSim
from connex_tui.sim.webconnector import WebConnectorSim
from connex_tui.specdir import qbxml_schema

PASSWORD = "s3cret-Pa55word-for-tests"


def make_config(folder: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "database": {"path": str(folder / "connex.db")},
        "qbwc": {"host": "127.0.0.1", "port": 0, "password": PASSWORD},
        "storefront": {"platform": "none"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data, folder / "connex.toml", {})


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Config]:
    return lambda **sections: make_config(tmp_path, **sections)


@pytest.fixture
async def engine_factory() -> AsyncIterator[Callable[[Config], Any]]:
    started: list[Engine] = []

    async def start(config: Config) -> Engine:
        engine = Engine(config)
        await engine.start()
        started.append(engine)
        return engine

    yield start
    for engine in started:
        await engine.stop()


@pytest.fixture
async def engine(engine_factory: Callable[[Config], Any], config_factory: Callable[..., Config]) -> Engine:
    return await engine_factory(config_factory())


# QuickBooks editions a module's tests run against: `pytestmark = pytest.mark.parametrize("qb",
# EDITIONS, indirect=True)` (Pro has no assemblies and no sales orders; see sim/quickbooks.py).
EDITIONS = ("premier", "pro")


@pytest.fixture
def qb(request: pytest.FixtureRequest) -> QuickBooksSim:
    sim = QuickBooksSim(edition=getattr(request, "param", "premier"))
    sim.add_item("redwine", 20)
    return sim


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def web_connector(engine: Engine, qb: QuickBooksSim, http: aiohttp.ClientSession) -> WebConnectorSim:
    return WebConnectorSim(engine.url, engine.config.qbwc.username, PASSWORD, qb, http=http)


@pytest.fixture(scope="session")
def schema() -> Any:
    found = qbxml_schema()
    if found is None:
        pytest.skip("qbXML schema not found: set CONNEX_QBXML_SPEC_DIR or put shared/spec beside the checkout")
    return found


# --------------------------------------------------------------------------- interface snapshots
# pytest-textual-snapshot stores SVGs in <test dir>/__snapshots__/; ours live in the top-level
# `snapshots/<test module>/` folder. `snap_compare` looks `SVGImageExtension` up as a module global
# when it runs, so rebinding it here is enough (pinned: pytest-textual-snapshot 1.1.0).
try:
    import pytest_textual_snapshot as _pts
except ImportError:  # pragma: no cover - the plugin is a test extra
    _pts = None

if _pts is not None:
    _SNAPSHOT_ROOT = Path(__file__).resolve().parents[1] / "snapshots"

    class TopLevelSVG(_pts.SVGImageExtension):
        @classmethod
        def dirname(cls, *, test_location: Any) -> str:
            return str(_SNAPSHOT_ROOT / test_location.basename)

    _pts.SVGImageExtension = TopLevelSVG
