"""What the right password gets after many wrong ones from the same address.

Starts the real engine (endpoint on loopback, default throttle), sends `--wrong` authenticate
calls with wrong passwords from 127.0.0.1 (`--concurrency` at a time, as a guesser would), then
one with the right password, and reports each answer and how long it took. Usage:

    python -m bench.auth_guesses [--wrong 100] [--concurrency 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import bench_config
from connex_tui.engine.runtime import Engine

PASSWORD = "auth-bench-S3cret"
AUTH = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<authenticate xmlns="http://developer.intuit.com/"><strUserName>qbwc</strUserName>'
    "<strPassword>{}</strPassword></authenticate></soap:Body></soap:Envelope>"
)


async def call(http: aiohttp.ClientSession, url: str, password: str) -> tuple[str, float]:
    started = time.perf_counter()
    async with http.post(url, data=AUTH.format(password), headers={"Content-Type": "text/xml"}) as resp:
        body = await resp.read()
    answer = "nvu" if b"<string>nvu</string>" in body else ("ticket" if resp.status == 200 else str(resp.status))
    return answer, (time.perf_counter() - started) * 1000


async def run(wrong: int, concurrency: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(bench_config(Path(folder), PASSWORD))
        await engine.start()
        try:
            gate = asyncio.Semaphore(concurrency)

            async def guess(n: int) -> tuple[str, float]:
                async with gate:
                    return await call(http, engine.url, f"guess-{n}")

            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
                started = time.perf_counter()
                answers = await asyncio.gather(*(guess(n) for n in range(wrong)))
                guessing_s = time.perf_counter() - started
                right, right_ms = await call(http, engine.url, PASSWORD)
        finally:
            await engine.stop()
    counts: dict[str, int] = {}
    for answer, _ in answers:
        counts[answer] = counts.get(answer, 0) + 1
    return {
        "wrong": wrong,
        "wrong_answers": counts,
        "guessing_seconds": round(guessing_s, 2),
        "guesses_per_second": round(wrong / guessing_s, 1),
        "right_answer": right,
        "right_ms": round(right_ms, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wrong", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.wrong, args.concurrency))
    print(json.dumps(result) if args.json else "\n".join(f"{k:20} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
