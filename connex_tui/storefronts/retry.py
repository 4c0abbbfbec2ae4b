"""HTTP with retries, shared by the storefront clients.

429 and 5xx answers, timeouts and dropped connections are retried with exponential backoff and
jitter, bounded, honouring `Retry-After` when the store sends it; 401/403 stop at once with a
"check your credentials" error. What is returned is the final response's status, headers and body.

With a `StoreGate` (storefronts.limiter), every attempt waits for a slot of the store's adaptive
concurrency and reports how it went; a `Retry-After` then pauses the whole store through the gate.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .base import CredentialsError, RequestStats, StorefrontError, StoreUnavailable
from .limiter import Outcome, StoreGate

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries in all, the first included
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0  # a Retry-After longer than this is capped, not obeyed blindly
    timeout: float = 60.0


@dataclass(frozen=True)
class HTTPResult:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body.decode("utf-8"))


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (a number, possibly fractional); HTTP dates are not used by stores here."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


MAX_DOUBLINGS = 30  # the exponent stops here: any number of tries, no overflow


def backoff(attempt: int, policy: RetryPolicy, *, least: float = 0.0, rng: random.Random | None = None) -> float:
    """The wait after failed try number `attempt` (0 for the first), exponential with jitter: a
    random point between `least` and all of the ceiling min(max_delay, base_delay * 2^attempt).
    least=0 is "full jitter" (`request_with_retry`); least=0.5, "equal jitter", never waits less
    than half the ceiling. `rng` makes the draw repeatable (tests); the module's random by default."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** min(max(attempt, 0), MAX_DOUBLINGS)))
    return (rng or random).uniform(ceiling * least, ceiling)


async def request_with_retry(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    policy: RetryPolicy,
    stats: RequestStats,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    gate: StoreGate | None = None,
    timer: Callable[[], float] = time.perf_counter,
    **kwargs: Any,
) -> HTTPResult:
    """`what` names the call in errors ("WooCommerce POST /products/batch")."""
    last_problem = ""
    last_retry_after: float | None = None
    for attempt in range(policy.attempts):
        wait: float | None = None
        outcome = Outcome.NEUTRAL
        ticket = await gate.acquire(what) if gate is not None else None
        try:
            stats.requests += 1
            timeout = aiohttp.ClientTimeout(total=policy.timeout)
            sent = timer()
            async with session.request(method, url, timeout=timeout, **kwargs) as resp:
                body = await resp.read()
                result = HTTPResult(resp.status, dict(resp.headers), body)
            stats.round_trips.observe(timer() - sent)  # answers only: a dropped connection has no round trip
        except aiohttp.ClientSSLError:
            # Retrying cannot fix a certificate; and the store is not "down".
            raise StorefrontError(
                f"{what}: the store's TLS certificate could not be verified"
                " (behind a proxy? set the CA bundle the proxy uses)"
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
            # The type only: aiohttp's messages carry the full URL, which may hold signed credentials.
            last_problem = type(exc).__name__
            last_retry_after = None
            outcome = Outcome.FAILED
        else:
            outcome = (
                Outcome.THROTTLED
                if result.status == 429
                else (Outcome.FAILED if result.status in RETRY_STATUSES else Outcome.OK)
            )
            if result.status in (401, 403):
                hint = " (or a firewall in front of the store refused us)" if result.status == 403 else ""
                raise CredentialsError(
                    f"{what}: the store refused our credentials (HTTP {result.status}); check your credentials{hint}"
                )
            if result.status not in RETRY_STATUSES:
                return result
            if result.status == 429:
                stats.throttled += 1
            last_problem = f"HTTP {result.status}"
            last_retry_after = retry_after_seconds(result.headers.get("Retry-After"))
            if last_retry_after is not None:
                wait = min(last_retry_after, policy.max_retry_after)
        finally:
            if gate is not None and ticket is not None:
                gate.release(ticket, outcome, wait)
        if attempt + 1 >= policy.attempts:
            break
        stats.retries += 1
        if wait is not None and gate is not None:
            # The gate holds every request to this store until the Retry-After has passed; this
            # one waits there with the others (its next `acquire`).
            stats.waited_seconds += wait
            continue
        delay = wait if wait is not None else backoff(attempt, policy)
        stats.waited_seconds += delay
        await sleep(delay)
    raise StoreUnavailable(
        f"{what}: the store is unavailable ({last_problem}) after {policy.attempts} tries", last_retry_after
    )
