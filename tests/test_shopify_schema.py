"""The Shopify emulator's schema against Shopify's real Admin schemas, and our documents in every
version we may be served."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from graphql import build_schema, parse, validate

from connex_tui.sim import shopify_schema
from connex_tui.sim.shopify import schema_sdl
from connex_tui.storefronts import shopify as client_module

from .shopify_real_schema import differences
from .store_fixtures import make_shop, shopify_schemas  # noqa: F401 - fixtures

TOKEN = "shpat_test"


@pytest.fixture
def real(shopify_schemas: bool) -> None:
    if not shopify_schemas:
        pytest.skip("Shopify's real Admin schemas could not be fetched here")


@pytest.mark.parametrize("version", shopify_schema.PACKAGED_VERSIONS)
def test_subset_is_part_of_the_real_schema(real: None, version: str) -> None:
    """Every type, field, argument, enum value and directive the emulator models exists in Shopify's
    schema of that version, with the same type."""
    assert differences(build_schema(schema_sdl(version)), shopify_schema.real_schema(version)) == []


def test_the_subset_knows_what_changed_between_versions(real: None) -> None:
    """The versioned lines of the subset say what the real schemas say (removed in 2026-04 etc.)."""
    for version in shopify_schema.PACKAGED_VERSIONS:
        real_schema = shopify_schema.real_schema(version)
        subset = build_schema(schema_sdl(version))
        quantity_input = real_schema.type_map["InventoryQuantityInput"].fields  # type: ignore[union-attr]
        set_input = real_schema.type_map["InventorySetQuantitiesInput"].fields  # type: ignore[union-attr]
        ours_quantity = subset.type_map["InventoryQuantityInput"].fields  # type: ignore[union-attr]
        ours_set = subset.type_map["InventorySetQuantitiesInput"].fields  # type: ignore[union-attr]
        assert ("changeFromQuantity" in quantity_input) == ("changeFromQuantity" in ours_quantity), version
        assert ("compareQuantity" in quantity_input) == ("compareQuantity" in ours_quantity), version
        assert ("ignoreCompareQuantity" in set_input) == ("ignoreCompareQuantity" in ours_set), version
        real_directives = {d.name for d in real_schema.directives}
        assert ("idempotent" in real_directives) == (subset.get_directive("idempotent") is not None), version


QUERIES = ["PROBE", "CATALOG", "ORDERS", "ORDER_LINES", "ORDER_RETURNS", "ORDERS_REFUNDS"]


@pytest.mark.parametrize("version", shopify_schema.PACKAGED_VERSIONS)
def test_every_client_document_is_valid_in_the_real_schema(real: None, version: str) -> None:
    schema = shopify_schema.real_schema(version)
    for name in QUERIES:
        assert validate(schema, parse(getattr(client_module, name))) == [], (name, version)
    mutation = (
        client_module.SET_QUANTITIES_IDEMPOTENT
        if version >= client_module.IDEMPOTENT_FROM
        else client_module.SET_QUANTITIES
    )
    assert validate(schema, parse(mutation)) == [], version


async def gql(http: aiohttp.ClientSession, url: str, query: str, version: str) -> dict[str, Any]:
    async with http.post(
        f"{url}/admin/api/{version}/graphql.json", json={"query": query}, headers={"X-Shopify-Access-Token": TOKEN}
    ) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_the_emulator_validates_against_the_real_schema(
    real: None, make_shop: Any, http: aiohttp.ClientSession
) -> None:
    shop = await make_shop()
    assert shop.url is not None
    # valid on Shopify, not modelled here: said plainly, not dressed up as Shopify's refusal
    body = await gql(http, shop.url, "{ shop { name } }", "2026-10")
    assert body["errors"][0]["extensions"]["code"] == "EMULATOR_UNMODELLED"
    # invalid on Shopify: Shopify's own validation message
    body = await gql(http, shop.url, "{ orders(first: 1) { nodes { nosuchfield } } }", "2026-10")
    assert body["errors"][0]["message"] == "Field 'nosuchfield' doesn't exist on type 'Order'"
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"
    # ignoreCompareQuantity is gone from 2026-04 in the real schema
    mutation = """mutation { inventorySetQuantities(input: {name: "available", reason: "correction",
        ignoreCompareQuantity: true, quantities: []}) @idempotent(key: "k") { userErrors { code } } }"""
    body = await gql(http, shop.url, mutation, "2026-04")
    assert "ignoreCompareQuantity" in body["errors"][0]["message"]
    assert shop.real_schema_checks == 3
