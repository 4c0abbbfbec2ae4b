"""ShopifyPacer on an injected clock: the client's picture of Shopify's bucket never runs ahead of
the bucket itself, so a call it sends is never answered THROTTLED.

Shopify's bucket (shopify.dev "Shopify API rate limits", GraphQL cost: a leaky bucket of
maximumAvailable points refilled at restoreRate per second, a call charged when Shopify receives
it) is modelled by connex_tui/sim/shopify.py `ShopifyEmulator._refill`/`execute_document`."""

from __future__ import annotations

from connex_tui.storefronts.base import RequestStats
from connex_tui.storefronts.shopify import ShopifyPacer


class Clock:
    """Time that moves only when the pacer sleeps; `during_sleep` runs once, in the first sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.during_sleep: list[object] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        while self.during_sleep:
            action = self.during_sleep.pop(0)
            assert callable(action)
            action()


def pacer_with_full_bucket(clock: Clock) -> ShopifyPacer:
    pacer = ShopifyPacer(clock, clock.sleep, RequestStats())
    pacer.budget.seed(maximum=60, available=60, restore_rate=50, now=clock())
    return pacer


async def send(pacer: ShopifyPacer, cost: float) -> None:
    """What ShopifyClient._call does before the request goes out."""
    await pacer.before(cost)
    pacer.reserved += cost


async def test_calls_under_way_cap_the_bucket_until_they_are_answered() -> None:
    # Four calls of 14 points leave a full 60-point bucket; Shopify charges them only when they
    # arrive, and a full bucket does not fill meanwhile, so until they are answered Shopify may
    # hold as little as 60 - 56 = 4 points, however long they travel. Counting refill from the
    # moment they were sent (4 + 0.3 s x 50 = 19 points) would send a fifth that Shopify throttles.
    clock = Clock()
    pacer = pacer_with_full_bucket(clock)
    for _ in range(4):
        await send(pacer, 14)
    assert clock.slept == []
    clock.now += 0.3  # the four are still on their way
    assert pacer.budget.estimate(clock()) <= 60 - 56
    assert pacer.budget.wait_for(14, clock()) > 0, "a fifth must wait for the answers"
    for _ in range(4):  # the answers come: Shopify charged them, and the bucket refills from there
        pacer.reserved -= 14
        pacer.after(
            {
                "requestedQueryCost": 14,
                "actualQueryCost": 14,
                "throttleStatus": {"maximumAvailable": 60, "currentlyAvailable": 20, "restoreRate": 50},
            }
        )
    assert pacer.budget.wait_for(14, clock()) == 0


async def test_a_call_looks_at_the_bucket_again_after_waiting() -> None:
    # A call waits for the 14 points its estimate lacks; meanwhile the answer of the call before it
    # reports that Shopify's bucket holds only 2 points. Sending when the first wait is over would
    # be answered THROTTLED: the call must wait again, for what that answer says.
    clock = Clock()
    pacer = pacer_with_full_bucket(clock)
    await send(pacer, 60)
    pacer.reserved -= 60
    pacer.budget.available, pacer.budget.stamp = 0.0, clock()
    status = {"maximumAvailable": 60, "currentlyAvailable": 2, "restoreRate": 50}
    clock.during_sleep.append(
        lambda: pacer.after({"requestedQueryCost": 60, "actualQueryCost": 60, "throttleStatus": status})
    )
    await pacer.before(14)
    answered_at = clock.slept[0]
    assert len(clock.slept) == 2, "it waited again after the answer"
    # Shopify's bucket at send time: 2 points when the answer came, refilled since at 50 a second.
    assert 2 + (clock() - answered_at) * 50 >= 14
