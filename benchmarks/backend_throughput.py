"""Requests per second of OpenAIChatBackend against the loopback server, at several concurrencies.

The server (``python -m lit_mrrml.testing``) runs in its own process and answers every
request after a fixed simulated latency (50 ms by default), so that an ideal client reaches
``concurrency / latency`` requests per second. The peer is the same client at concurrency 1: the
ratio shows whether the client, not the service, becomes the bottleneck. Goal: at least 40x at 64.

    .venv/bin/python benchmarks/backend_throughput.py
    .venv/bin/python benchmarks/backend_throughput.py --concurrency 1 8 64 128 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from lit_mrrml.backends import ChatRequest, OpenAIChatBackend


def start_server(latency: float, rules: str = "generation") -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "lit_mrrml.testing", "--port", "0", "--latency", str(latency), "--rules", rules]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("serving "):
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return server, line.removeprefix("serving ")


async def measure(url: str, concurrency: int, requests: int) -> float:
    """Requests per second for ``requests`` chat requests at ``concurrency``."""
    client = OpenAIChatBackend("bench", base_url=url, api_key_env=None, concurrency=concurrency)
    batch = [ChatRequest.of([{"role": "user", "content": f"question {i}"}], max_tokens=16) for i in range(requests)]
    try:
        await client.complete(batch[: min(concurrency, 8)])  # open the connections
        started = time.perf_counter()
        replies = await client.complete(batch)
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    failed = [r for r in replies if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed: {failed[0].error}")
    return requests / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--latency", type=float, default=0.05, help="simulated seconds per reply")
    parser.add_argument("--seconds", type=float, default=3.0, help="ideal duration of each measurement")
    args = parser.parse_args(argv)
    server, url = start_server(args.latency)
    try:
        results = {}
        for concurrency in args.concurrency:
            requests = max(20, int(args.seconds * concurrency / args.latency))
            results[concurrency] = asyncio.run(measure(url, concurrency, requests))
    finally:
        server.terminate()
        server.wait(10)
    base = results[min(results)]
    print(f"| concurrency | requests/s | ideal | vs concurrency {min(results)} |")
    print("|---:|---:|---:|---:|")
    for concurrency, rps in results.items():
        print(f"| {concurrency} | {rps:,.1f} | {concurrency / args.latency:,.0f} | {rps / base:.1f}x |")


if __name__ == "__main__":
    main()
