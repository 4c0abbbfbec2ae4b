"""One face for both store emulators: what a merchant does on the store, and what tests count."""

from __future__ import annotations

from typing import Any


class EmulatedStore:
    """The same few merchant actions on either store emulator (for the demo and the tests)."""

    def __init__(self, platform: str, **options: Any) -> None:
        self.platform = platform
        if platform == "shopify":
            from .shopify import ShopifyEmulator

            self.emulator: Any = ShopifyEmulator(**options)
        else:
            from .woocommerce import WooCommerceEmulator

            self.emulator = WooCommerceEmulator(**options)
        self.url = ""

    async def start(self) -> str:
        self.url = await self.emulator.start()
        return self.url

    async def stop(self) -> None:
        await self.emulator.stop()

    def seed(self, skus: dict[str, int]) -> None:
        if self.platform == "shopify":
            for n, (sku, qty) in enumerate(skus.items()):
                self.emulator.add_product(f"Product {n}", {sku: qty})
        else:
            for sku, qty in skus.items():
                self.emulator.add_product(sku, qty)

    def stock(self, sku: str) -> int | None:
        if self.platform == "shopify":
            return self.emulator.available(sku)
        return self.emulator.stock(sku)

    def order(self, lines: list[tuple[str, int]]) -> Any:
        return self.emulator.place_order(lines)

    def refund(self, order_id: Any, lines: list[tuple[str, int]]) -> None:
        self.emulator.refund(order_id, lines, restock=True)

    def set_stock(self, sku: str, quantity: int) -> None:
        """An edit made by hand in the store's admin."""
        if self.platform == "shopify":
            self.emulator.set_available(sku, quantity)
        else:
            self.emulator.set_stock(sku, quantity)

    @property
    def faults(self) -> Any:
        return self.emulator.faults

    def stock_requests(self) -> int:
        """Requests that set stock: batch POSTs on WooCommerce, inventorySetQuantities on Shopify."""
        if self.platform == "shopify":
            return self.emulator.operations["mutation:inventorySetQuantities"]
        return sum(n for route, n in self.emulator.counters.items() if route.endswith("/batch"))

    def throttled(self) -> int:
        return getattr(self.emulator, "throttled", 0)

    def storefront_config(self) -> dict[str, str]:
        """The [storefront] section that points connex-tui at this emulator."""
        if self.platform == "shopify":
            return {
                "platform": "shopify",
                "url": self.url,
                "access_token": "shpat_test",
                "location_id": self.emulator.location_id,
            }
        return {"platform": "woocommerce", "url": self.url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}
