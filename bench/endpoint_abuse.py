"""The Web Connector endpoint under abuse: slow clients and oversized bodies, loopback only.

Starts `connex-tui run --headless` as its own process (open-files limit 1,024, as on a small
server), measures its resident memory idle, then for `--seconds` runs, all at once:

- `--slow` connections that send a request's headers one byte per second (reconnecting when
  the endpoint drops them),
- `--oversized` clients that each POST a `--body-mb` MiB authenticate call as fast as loopback
  allows (again and again),
- `--slow-bodies` clients that send whole headers and then a body one byte per second,

and meanwhile a real Web Connector call (authenticate with the right password, on a fresh
connection, as the Web Connector makes it) every 0.25 s. Reports the resident memory idle, at
its peak and after, and the real calls' answers and latencies. Usage:

    python -m bench.endpoint_abuse [--slow 2000] [--oversized 24] [--body-mb 63] [--seconds 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

PASSWORD = "abuse-bench-S3cret"
AUTH = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<authenticate xmlns="http://developer.intuit.com/"><strUserName>qbwc</strUserName>'
    "<strPassword>{}</strPassword></authenticate></soap:Body></soap:Envelope>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def start_engine(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = folder / "connex.toml"
    config.write_text(
        f'[database]\npath = "connex.db"\n[qbwc]\nport = {port}\npassword_env = "QBWC_PW"\n'
        '[storefront]\nplatform = "none"\n[logging]\nlevel = "error"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "connex_tui.cli", "run", "--headless", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "QBWC_PW": PASSWORD},
        preexec_fn=_low_file_limit,
    )
    return proc, f"http://127.0.0.1:{port}/qbwc"


async def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the engine exited early")
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


@dataclass
class Figures:
    rss_idle_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    real_calls: int = 0
    real_answers: dict[str, int] = field(default_factory=dict)
    real_latency_ms: list[float] = field(default_factory=list)
    slow_connections_opened: int = 0
    oversized_sent: int = 0
    oversized_answers: dict[str, int] = field(default_factory=dict)
    slow_body_answers: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.real_latency_ms)
        return {
            "rss_idle_mb": round(self.rss_idle_mb, 1),
            "rss_peak_mb": round(self.rss_peak_mb, 1),
            "rss_after_mb": round(self.rss_after_mb, 1),
            "rss_growth_mb": round(self.rss_peak_mb - self.rss_idle_mb, 1),
            "real_calls": self.real_calls,
            "real_answers": self.real_answers,
            "real_latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
            "real_latency_ms_p95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1) if lat else None,
            "real_latency_ms_max": round(lat[-1], 1) if lat else None,
            "real_under_1s": sum(1 for ms in lat if ms < 1000),
            "slow_connections_opened": self.slow_connections_opened,
            "oversized_sent": self.oversized_sent,
            "oversized_answers": self.oversized_answers,
            "slow_body_answers": self.slow_body_answers,
        }


def attacker_address(n: int) -> tuple[str, int]:
    """Attackers come from 127.0.0.2 to 127.0.0.251 (all loopback), the real calls from
    127.0.0.1: strangers and the merchant's Web Connector do not share an address."""
    return (f"127.0.0.{2 + n % 250}", 0)


def _count(tally: dict[str, int], key: str) -> None:
    tally[key] = tally.get(key, 0) + 1


async def slow_headers(host: str, port: int, until: float, figures: Figures, n: int) -> None:
    """Headers one byte a second; reconnect when dropped."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=attacker_address(n))
        except OSError:
            await asyncio.sleep(0.5)
            continue
        figures.slow_connections_opened += 1
        try:
            writer.write(b"POST /qbwc HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.monotonic() < until and not reader.at_eof():
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(1.0)
        except OSError:
            pass
        finally:
            writer.close()


async def oversized(host: str, port: int, body_mb: int, until: float, figures: Figures, n: int) -> None:
    """An authenticate call padded to `body_mb` MiB, sent as fast as it goes, again and again."""
    chunk = b" " * (1024 * 1024)
    envelope = AUTH.format("wrong").encode()
    length = body_mb * 1024 * 1024
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=attacker_address(n))
        except OSError:
            await asyncio.sleep(0.2)
            continue
        figures.oversized_sent += 1
        try:
            writer.write(
                f"POST /qbwc HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {length}\r\n\r\n".encode()
                + envelope
            )
            sent = len(envelope)
            while sent < length and time.monotonic() < until:
                piece = chunk[: min(len(chunk), length - sent)]
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
            status = await asyncio.wait_for(reader.readline(), 5)
            _count(figures.oversized_answers, status.decode(errors="replace").strip()[9:12] or "closed")
        except (TimeoutError, OSError):
            _count(figures.oversized_answers, "closed")
        finally:
            writer.close()


async def slow_body(host: str, port: int, until: float, figures: Figures, n: int) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=attacker_address(n))
        except OSError:
            await asyncio.sleep(0.5)
            continue
        try:
            writer.write(b"POST /qbwc HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 4000\r\n\r\n")
            while time.monotonic() < until and not reader.at_eof():
                writer.write(b"<")
                await writer.drain()
                try:
                    status = await asyncio.wait_for(reader.readline(), 1.0)
                except TimeoutError:
                    continue
                _count(figures.slow_body_answers, status.decode(errors="replace").strip()[9:12] or "closed")
                break
        except OSError:
            _count(figures.slow_body_answers, "closed")
        finally:
            writer.close()


async def real_calls(url: str, until: float, figures: Figures) -> None:
    body = AUTH.format(PASSWORD).encode()
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                async with http.post(url, data=body, headers={"Content-Type": "text/xml"}) as resp:
                    text = await resp.read()
            answer = (
                "nvu" if b"<string>nvu</string>" in text else ("ticket" if resp.status == 200 else str(resp.status))
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            answer = f"{type(exc).__name__}: {str(exc)[:70]}"
        figures.real_latency_ms.append((time.perf_counter() - started) * 1000)
        figures.real_calls += 1
        _count(figures.real_answers, answer)
        await asyncio.sleep(0.25)


async def sample_rss(pid: int, until: float, figures: Figures) -> None:
    while time.monotonic() < until:
        figures.rss_peak_mb = max(figures.rss_peak_mb, rss_mb(pid))
        await asyncio.sleep(0.1)


async def attack(
    port: int, *, slow: int, oversized_clients: int, body_mb: int, slow_bodies: int, seconds: float
) -> Figures:
    """The attackers alone (run in a process of their own, so that their work does not delay the
    real calls' measurement in this one)."""
    figures = Figures()
    until = time.monotonic() + seconds
    tasks = [slow_headers("127.0.0.1", port, until, figures, n) for n in range(slow)]
    tasks += [oversized("127.0.0.1", port, body_mb, until, figures, n) for n in range(oversized_clients)]
    tasks += [slow_body("127.0.0.1", port, until, figures, n) for n in range(slow_bodies)]
    await asyncio.gather(*tasks)
    return figures


async def abuse(*, slow: int, oversized_clients: int, body_mb: int, slow_bodies: int, seconds: float) -> Figures:
    figures = Figures()
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start_engine(Path(folder))
        attackers: subprocess.Popen[bytes] | None = None
        try:
            await wait_ready(url, proc)
            await asyncio.sleep(1.0)
            figures.rss_idle_mb = rss_mb(proc.pid)
            port = int(url.split(":")[2].split("/")[0])
            attackers = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.endpoint_abuse",
                    "--attack-port",
                    str(port),
                    "--slow",
                    str(slow),
                    "--oversized",
                    str(oversized_clients),
                    "--body-mb",
                    str(body_mb),
                    "--slow-bodies",
                    str(slow_bodies),
                    "--seconds",
                    str(seconds),
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parent.parent,
            )
            await asyncio.sleep(min(2.0, seconds / 4))  # let the attack build up first
            until = time.monotonic() + seconds - min(2.0, seconds / 4)
            await asyncio.gather(real_calls(url, until, figures), sample_rss(proc.pid, until + 2, figures))
            out, _ = await asyncio.to_thread(attackers.communicate, None, seconds + 60)
            tallies = json.loads(out or b"{}")
            figures.slow_connections_opened = tallies.get("slow_connections_opened", 0)
            figures.oversized_sent = tallies.get("oversized_sent", 0)
            figures.oversized_answers = tallies.get("oversized_answers", {})
            figures.slow_body_answers = tallies.get("slow_body_answers", {})
            await asyncio.sleep(1.0)
            figures.rss_after_mb = rss_mb(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError("the engine died under the load")
        finally:
            if attackers is not None and attackers.poll() is None:
                attackers.kill()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=2000)
    parser.add_argument("--oversized", type=int, default=24)
    parser.add_argument("--body-mb", type=int, default=63)
    parser.add_argument("--slow-bodies", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--attack-port", type=int, help=argparse.SUPPRESS)  # the attackers' own process
    args = parser.parse_args(argv)
    if args.attack_port:
        tallies = asyncio.run(
            attack(
                args.attack_port,
                slow=args.slow,
                oversized_clients=args.oversized,
                body_mb=args.body_mb,
                slow_bodies=args.slow_bodies,
                seconds=args.seconds,
            )
        )
        print(json.dumps(tallies.summary()))
        return 0
    figures = asyncio.run(
        abuse(
            slow=args.slow,
            oversized_clients=args.oversized,
            body_mb=args.body_mb,
            slow_bodies=args.slow_bodies,
            seconds=args.seconds,
        )
    )
    summary = figures.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:26} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
