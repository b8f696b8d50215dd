"""Verdicts per second of a whole HealthBench grading run, at judge concurrency 1 and 64, and from the cache.

The judge is the rule-based loopback server (``python -m lit_mrrml.testing --rules healthbench``)
in its own process, answering every request after a fixed simulated latency (50 ms by default),
so an ideal run reaches ``concurrency / latency`` verdicts per second. Each measurement grades the
physicians' ideal completions of the first bundled rows (as many as make about 3 ideal seconds)
into a fresh folder: loading, prompt rendering, the verdict cache, scoring with 1,000 bootstrap
resamples and the report are all included. The peer is the same run at concurrency 1; the goal is
at least 40 times its rate at concurrency 64 (the command must not be the bottleneck). The last
column reruns the same folder: everything from the cache, no judge call.

    .venv/bin/python benchmarks/healthbench_grading.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from backend_throughput import start_server

from lit_mrrml.backends import OpenAIChatBackend
from lit_mrrml.healthbench import BUNDLED_ROWS, load_rows
from lit_mrrml.healthbench.evaluate import HealthBenchEval
from lit_mrrml.healthbench.options import RowOptions


def rows_for(criteria: int) -> int:
    """How many of the first bundled rows with an ideal completion hold about ``criteria`` criteria."""
    total = 0
    for n, row in enumerate(load_rows(BUNDLED_ROWS), 1):
        total += len(row.rubrics) if row.ideal_completion is not None else 0
        if total >= criteria:
            return n
    return n


def grade(url: str, concurrency: int, limit: int, folder: Path) -> tuple[float, int]:
    """(seconds, verdicts) of one grading run into ``folder``."""
    judge = OpenAIChatBackend("rule-judge", base_url=url, api_key_env=None, concurrency=concurrency)
    job = HealthBenchEval(str(folder), judge, mode="ideal", rows=RowOptions(limit=limit), progress=False)
    started = time.perf_counter()
    outcome = job.run()
    elapsed = time.perf_counter() - started
    if not outcome.complete:
        raise RuntimeError(f"{outcome.ungraded} rows left ungraded")
    return elapsed, outcome.results["rows"]["criteria_graded"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--latency", type=float, default=0.05, help="simulated seconds per verdict")
    parser.add_argument("--seconds", type=float, default=3.0, help="ideal duration of each measurement")
    args = parser.parse_args(argv)
    server, url = start_server(args.latency, rules="healthbench")
    rows: dict[int, tuple[int, float, float]] = {}  # concurrency -> (verdicts, rate, rate of the cached rerun)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.concurrency:
                folder, limit = Path(tmp) / f"c{c}", rows_for(int(args.seconds * c / args.latency))
                seconds, verdicts = grade(url, c, limit, folder)
                cached_seconds, _ = grade(url, c, limit, folder)
                rows[c] = (verdicts, verdicts / seconds, verdicts / cached_seconds)
    finally:
        server.terminate()
        server.wait(10)
    base = rows[min(rows)][1]
    print(f"| concurrency | verdicts | verdicts/s | ideal | vs concurrency {min(rows)} | from the cache, verdicts/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c, (verdicts, rate, cached) in rows.items():
        print(f"| {c} | {verdicts:,} | {rate:,.1f} | {c / args.latency:,.0f} | {rate / base:.1f}x | {cached:,.0f} |")


if __name__ == "__main__":
    main()
