"""The reward server's aiohttp application.

Routes:
- ``GET /health``: ``{"status": "ok", "model": ..., "dimensions": [...], "scenarios": [...]}``;
- ``POST /score``: the server's own shape (``protocol``);
- ``POST /get_reward``: OpenRLHF's remote reward model (``openrlhf``);
- ``POST /verl/score``: verl's reward function arguments (``verl_api``).

Every failure is a JSON body ``{"error": "<reason>"}`` and the server goes on serving: 400 for a bad
request (the reason starts with the key path), 413 for a body over ``max_body_bytes``, 404/405 for
an unknown route or method, 503 when ``max_concurrency`` requests are in flight (with
``Retry-After``), 500 when the scorer fails on the request's rows. No torch here: the scorer is
passed in (``scorer.ModelScorer`` for a real model, any function of the same shape in tests).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lit_mrrml.serve.batcher import Busy, MicroBatcher, ScoreFn, ScorerError
from lit_mrrml.serve.openrlhf import openrlhf_reply, parse_openrlhf
from lit_mrrml.serve.protocol import BadRequest, ModelCard, decode_body, parse_score_request, score_reply
from lit_mrrml.serve.verl_api import parse_verl, verl_reply

log = logging.getLogger(__name__)
BATCHER = web.AppKey("batcher", MicroBatcher)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ServeOptions:
    """How the server batches and limits requests."""

    batch_window_ms: float = 10.0  # how long the oldest queued row waits for others to join its batch
    max_batch_size: int = 32  # rows per scorer call
    max_concurrency: int = 64  # requests in flight (queued or scored); one more gets a 503
    max_items: int = 4096  # rows in one request; more get a 400
    max_body_bytes: int = 64 * 2**20  # request body size; more get a 413


def error_reply(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as ``{"error": reason}`` with its status; the server stays up."""
    try:
        return await handler(request)
    except BadRequest as err:
        return error_reply(400, str(err))
    except Busy as err:
        return error_reply(503, str(err), {"Retry-After": "1"})
    except ScorerError as err:
        return error_reply(500, f"the scorer failed: {err}")
    except web.HTTPException as err:
        if err.status < 400:
            raise
        allow = {"Allow": err.headers["Allow"]} if "Allow" in err.headers else None  # a 405 names the methods
        return error_reply(err.status, f"{request.method} {request.path}: {err.text or err.reason}", allow)
    except Exception as err:
        log.exception("%s %s failed", request.method, request.path)
        return error_reply(500, f"internal error: {type(err).__name__}: {err}")


async def read_body(request: web.Request) -> Any:
    """The request's JSON value (a body over the size limit raises aiohttp's 413)."""
    return decode_body(await request.read())


class Routes:
    """The handlers, sharing one model card and one batcher."""

    def __init__(self, card: ModelCard, batcher: MicroBatcher, max_items: int) -> None:
        self.card, self.batcher, self.max_items = card, batcher, max_items

    async def health(self, request: web.Request) -> web.Response:
        card = self.card
        body = {"status": "ok", "model": card.name, "dimensions": list(card.dimension_names)}
        return web.json_response({**body, "scenarios": list(card.scenario_ids)})

    async def score(self, request: web.Request) -> web.Response:
        rows = parse_score_request(await read_body(request), self.card, self.max_items)
        return web.json_response(score_reply(await self.batcher.score(rows), self.card))

    async def get_reward(self, request: web.Request) -> web.Response:
        rows = parse_openrlhf(await read_body(request), self.card, self.max_items)
        return web.json_response(openrlhf_reply(await self.batcher.score(rows), self.card))

    async def verl_score(self, request: web.Request) -> web.Response:
        rows, batched = parse_verl(await read_body(request), self.card, self.max_items)
        return web.json_response(verl_reply(await self.batcher.score(rows), self.card, batched))


def make_app(score_fn: ScoreFn, card: ModelCard, options: ServeOptions | None = None) -> web.Application:
    """The server for ``score_fn`` (prompts, responses, scenarios -> rewards (N, L), totals (N,))."""
    options = options or ServeOptions()
    batcher = MicroBatcher(
        score_fn, len(card.dimension_names), options.batch_window_ms / 1000, options.max_batch_size,
        options.max_concurrency,
    )  # fmt: skip
    app = web.Application(middlewares=[json_errors], client_max_size=options.max_body_bytes)
    app[BATCHER] = batcher
    routes = Routes(card, batcher, options.max_items)
    app.router.add_get("/health", routes.health)
    app.router.add_post("/score", routes.score)
    app.router.add_post("/get_reward", routes.get_reward)
    app.router.add_post("/verl/score", routes.verl_score)

    async def run_batcher(app: web.Application) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app.cleanup_ctx.append(run_batcher)
    return app
