"""The store gate (connex_tui.storefronts.limiter) on its own, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from connex_tui.storefronts.limiter import Outcome, StoreGate, percentile, request_kind

from .clocks import VirtualTime


def gate(clock: VirtualTime, **kwargs: int) -> StoreGate:
    return StoreGate(clock=clock, sleep=clock.sleep, **kwargs)


async def answer(
    g: StoreGate,
    clock: VirtualTime,
    rtt: float,
    outcome: Outcome = Outcome.OK,
    what: str = "POST /batch",
    retry_after: float | None = None,
) -> None:
    ticket = await g.acquire(what)
    clock.now += rtt
    g.release(ticket, outcome, retry_after)


async def test_starts_at_two_and_doubles_per_round_while_round_trips_stay_flat() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=8)
    assert g.limit == 2
    for _ in range(2):  # one round at 2
        await answer(g, clock, 1.0)
    assert g.limit == 4
    for _ in range(4):
        await answer(g, clock, 1.0)
    assert g.limit == 8
    for _ in range(200):
        await answer(g, clock, 1.0)
    assert g.limit == 8, "never above the maximum"
    assert [limit for _, limit in g.history] == [2, 3, 4, 5, 6, 7, 8]


async def test_after_a_cut_it_grows_by_one_per_round() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=16)
    for _ in range(14):
        await answer(g, clock, 1.0)
    assert g.limit == 16
    await answer(g, clock, 1.0, Outcome.THROTTLED)
    assert g.limit == 8
    for _ in range(8):  # one round at 8
        await answer(g, clock, 1.0)
    assert g.limit == 9


async def test_a_rising_round_trip_stops_the_growth() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=8)
    for _ in range(2):
        await answer(g, clock, 1.0)
    assert g.limit == 4
    for _ in range(50):  # the store queues: twice the quickest round trip
        await answer(g, clock, 2.0)
    assert g.limit == 4
    await answer(g, clock, 1.0)  # flat again: but the growth is careful now (one per round)
    assert g.limit == 4


async def test_throttled_or_failing_answers_halve_it_once_per_round() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=8)
    for _ in range(100):
        await answer(g, clock, 0.5)
    assert g.limit == 8
    tickets = [await g.acquire("POST /batch") for _ in range(8)]
    clock.now += 0.5
    for ticket in tickets:  # eight 429s from requests sent at the same rate: one cut
        g.release(ticket, Outcome.THROTTLED)
    assert g.limit == 4 and g.cuts == 1
    await answer(g, clock, 0.5, Outcome.FAILED)  # sent after the cut: cuts again
    assert g.limit == 2 and g.cuts == 2
    await answer(g, clock, 0.5, Outcome.FAILED)
    await answer(g, clock, 0.5, Outcome.FAILED)
    assert g.limit == 1, "never below one"
    await answer(g, clock, 0.5, Outcome.NEUTRAL)
    assert g.limit == 1 and g.cuts == 4
    for _ in range(100):
        await answer(g, clock, 0.5)
    assert g.limit == 8, "and it recovers"


async def test_no_more_requests_at_once_than_the_limit() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=8)
    first = [await g.acquire("GET /orders") for _ in range(2)]
    third = asyncio.create_task(g.acquire("GET /orders"))
    await asyncio.sleep(0.01)
    assert not third.done() and g.in_flight == 2
    g.release(first[0], Outcome.OK)
    ticket = await asyncio.wait_for(third, 1)
    assert g.in_flight == 2
    g.release(first[1], Outcome.OK)
    g.release(ticket, Outcome.OK)
    assert g.in_flight == 0


async def test_retry_after_pauses_every_new_request() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=8)
    await answer(g, clock, 0.1, Outcome.THROTTLED, retry_after=3.0)
    told_at = clock.now
    ticket = await g.acquire("GET /orders")  # another request, another route: waits too
    assert ticket.started >= told_at + 3.0
    assert g.snapshot().paused_for == 0.0


def test_round_trips_are_compared_within_one_kind_of_request() -> None:
    assert request_kind("WooCommerce POST /products/123/variations/batch") == request_kind(
        "WooCommerce POST /products/77/variations/batch"
    )
    assert request_kind("WooCommerce GET /orders") != request_kind("WooCommerce POST /products/batch")


async def test_snapshot_has_round_trip_percentiles() -> None:
    clock = VirtualTime(100.0)
    g = gate(clock, maximum=4)
    for rtt in [0.1] * 19 + [2.0]:
        await answer(g, clock, rtt)
    snap = g.snapshot()
    assert snap.rtt_p50 == pytest.approx(0.1)
    assert snap.rtt_p95 == pytest.approx(0.1)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        StoreGate(maximum=0)
