"""The storefront client named by the configuration."""

from __future__ import annotations

from typing import Any

from .base import Storefront


def make_storefront(storefront_config: Any) -> Storefront | None:
    """`storefront_config` is the engine's StorefrontConfig (duck-typed: this package does not
    import the engine). None for platform "none"."""
    c = storefront_config
    if c.platform == "woocommerce":
        from .woocommerce import WooCommerceClient

        return WooCommerceClient(c.url, c.consumer_key.reveal(), c.consumer_secret.reveal())
    if c.platform == "shopify":
        from .shopify import ShopifyClient

        return ShopifyClient(c.url, c.access_token.reveal(), c.location_id, api_version=c.api_version)
    return None
