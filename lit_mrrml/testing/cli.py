"""``python -m lit_mrrml.testing``: serve the rule-based chat-completions server in the foreground,
with the faults its flags ask for (``--help`` lists every kind; see ``chat_server``)."""

from __future__ import annotations

import argparse
import asyncio

from lit_mrrml.testing.chat_server import FAULT_KINDS, FAULTS, ChatServer, FaultPlan, Replier, echo_replier


def _fault_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"unknown fault kind {kind!r}; known: {', '.join(FAULTS)}")
    return kind


def fault_kinds(text: str) -> list[str]:
    """``429,500`` -> ``["429", "500"]`` (argparse type of --per-request and --script)."""
    return [_fault_kind(kind.strip()) for kind in text.split(",") if kind.strip()]


def fault_rate(text: str) -> tuple[str, float]:
    """``500=0.1`` -> ``("500", 0.1)`` (argparse type of --rate)."""
    kind, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: write KIND=SHARE, for example 500=0.1")
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the share {value!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: the share must be in [0, 1]")
    return _fault_kind(kind.strip()), rate


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m lit_mrrml.testing``: where to serve, how to reply, which faults to inject."""
    kinds = "\n".join(f"  {kind:<12} {meaning}" for kind, meaning in FAULT_KINDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m lit_mrrml.testing",
        description="A chat-completions server on loopback (POST /v1/chat/completions) with rule-based replies "
        "and injectable faults, for tests, benchmarks and dry runs of configs.",
        epilog=f"fault kinds:\n{kinds}\n\n--per-request comes first, then --script, then the --rate draws; a "
        "request that none of them picks\nis answered normally. Example: --per-request 429 --rate 500=0.1 --rate "
        "drop=0.05 --seed 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the table of kinds as written
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port to listen on (0: any free port; default %(default)s)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every reply (default %(default)s)")
    parser.add_argument(
        "--rules",
        choices=("generation", "healthbench", "echo"),
        default="generation",
        help="how to reply (default %(default)s)",
    )
    faults = parser.add_argument_group("faults (kinds listed below)")
    faults.add_argument(
        "--per-request", type=fault_kinds, default=[], metavar="KIND[,KIND...]",
        help="faults for the first attempts of every distinct request (its body but the seed), in order "
        "(429,500: each request fails twice, then succeeds)",
    )  # fmt: skip
    faults.add_argument(
        "--script", type=fault_kinds, default=[], metavar="KIND[,KIND...]",
        help="faults for the next requests in order of arrival, whatever their body",
    )  # fmt: skip
    faults.add_argument(
        "--rate", type=fault_rate, action="append", default=[], metavar="KIND=SHARE",
        help="the share in [0, 1] of the other requests that get KIND, drawn at random (repeat the flag for "
        "several kinds; the shares add up to at most 1)",
    )  # fmt: skip
    faults.add_argument("--seed", type=int, default=0, help="seed of the --rate draws (default %(default)s)")
    faults.add_argument(
        "--hang-seconds", type=float, default=30.0, help="seconds a `timeout` holds its reply (default %(default)s)"
    )
    faults.add_argument(
        "--slow-seconds", type=float, default=0.5, help="seconds a `slow` reply takes (default %(default)s)"
    )
    faults.add_argument(
        "--retry-after", type=float, default=0.0, help="the Retry-After of a 429, in seconds (default %(default)s)"
    )
    faults.add_argument(
        "--fault-model", action="append", default=None, metavar="MODEL",
        help="only requests for this model get faults (repeat for several; default: every model)",
    )  # fmt: skip
    return parser


def fault_plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FaultPlan:
    """The FaultPlan of parsed flags; an inconsistent set of flags is an argparse error (exit 2)."""
    rates = dict(args.rate)
    if len(rates) < len(args.rate):
        parser.error("--rate: each kind may be given once")
    try:
        return FaultPlan(
            per_request=args.per_request,
            script=args.script,
            rates=rates,
            seed=args.seed,
            hang_seconds=args.hang_seconds,
            slow_seconds=args.slow_seconds,
            retry_after=args.retry_after,
            models=args.fault_model,
        )
    except ValueError as err:
        parser.error(f"--rate: {err}")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    faults = fault_plan(parser, args)
    from lit_mrrml.testing.judge_rules import RubricJudgeRules
    from lit_mrrml.testing.rules import GenerationRules

    repliers: dict[str, Replier] = {"generation": GenerationRules(), "healthbench": RubricJudgeRules()}
    replier = repliers.get(args.rules, echo_replier)
    server = ChatServer(replier, faults=faults, latency=args.latency, port=args.port)

    async def serve() -> None:
        await server._start()
        print(f"serving {server.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())
