"""``python -m lit_mrrml serve --model DIR``: serve a trained reward model over HTTP.

Loads the model (an export folder, or a Lightning checkpoint), listens on ``--host``/``--port``
(``--port 0``: a free port), prints one line with the address once it accepts requests, and serves
until SIGINT or SIGTERM, then exits 0. Endpoints and shapes: ``lit_mrrml.serve.app``. Exit status 2
for a bad flag, model folder or device, or an address it cannot listen on.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable

from aiohttp import web

from lit_mrrml.errors import InputError
from lit_mrrml.serve.app import ServeOptions, make_app

ENDPOINTS = "POST /score, POST /get_reward (OpenRLHF), POST /verl/score (verl), GET /health"


def at_least(low: float, kind: type = int) -> Callable[[str], float]:
    """An argparse type: a ``kind`` number no smaller than ``low``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not value >= low:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lit_mrrml serve",
        description="Serve a trained reward model: per-dimension rewards and the scenario total of "
        f"(messages, response) rows. Endpoints: {ENDPOINTS}.",
    )
    add = parser.add_argument
    add("--model", required=True, help="Reward model export folder (or Lightning checkpoint).")
    add("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
    add("--port", type=at_least(0), default=8000, help="Port to listen on; 0 picks a free one (printed).")
    add("--device", default="cpu", help="Device the model runs on (cpu, cuda, cuda:1).")
    add("--batch_window_ms", type=at_least(0.0, float), default=10.0,
        help="How long the oldest waiting row waits for others to join its batch.")  # fmt: skip
    add("--max_batch_size", type=at_least(1), default=32, help="Rows scored in one forward pass.")
    add("--max_concurrency", type=at_least(1), default=64,
        help="Requests in flight (waiting or being scored); one more is answered 503.")  # fmt: skip
    add("--max_length", type=at_least(2), default=1024, help="Tokens of prompt + response (the prompt is cut first).")
    add("--max_items", type=at_least(1), default=4096, help="Rows in one request; more are answered 400.")
    return parser


async def serve(app: web.Application, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; ``announce`` gets the URL once it listens."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            raise InputError(f"--host {host} --port {port}: cannot listen there: {err}") from None
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address
        announce(f"http://{shown}:{runner.addresses[0][1]}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def serve_command(argv: list[str]) -> int:
    """Parse the flags, load the model, serve until interrupted; returns the exit status."""
    args = build_parser().parse_args(argv)
    from lit_mrrml.serve.scorer import ModelScorer  # torch, transformers and Lightning: only now

    scorer = ModelScorer(args.model, args.device, args.max_length, args.max_batch_size)
    options = ServeOptions(args.batch_window_ms, args.max_batch_size, args.max_concurrency, args.max_items)
    app = make_app(scorer, scorer.card, options)
    card = scorer.card

    def announce(url: str) -> None:
        print(f"serving {card.name} ({len(card.dimension_names)} dimensions) on {url}: {ENDPOINTS}", flush=True)

    asyncio.run(serve(app, args.host, args.port, announce))
    return 0
