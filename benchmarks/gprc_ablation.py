"""The quality benchmark: GPRC against the plain ranking loss (alpha = beta = 0) over seeds.

Each seed trains the demo reward model twice (``configs/reward/demo.yaml``: frozen SmolLM2, its
features cached on disk once, so a run trains only the head), with GPRC and without, and tests the
best checkpoint of each on the held-out split (``lit_mrrml.demo.run_variant``). The table gives,
per dimension and overall, the mean and standard deviation over seeds of pairwise and order
accuracy, and the mean GPRC - plain difference with a paired bootstrap 95% interval (seeds
resampled with replacement, 10,000 times). Each finished run is kept in ``runs.jsonl`` under the
output folder, and a rerun skips the runs already there.

    python benchmarks/gprc_ablation.py                 # 10 seeds, about 45 minutes on 2 cores
    python benchmarks/gprc_ablation.py --seeds 3       # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"gprc": [], "plain": ["--model.loss.alpha=0", "--model.loss.beta=0"]}
METRICS = ("pair_acc", "order_acc")


def finished(log: Path) -> dict[tuple[int, str], dict[str, float]]:
    if not log.is_file():
        return {}
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(row["seed"], row["variant"]): row["metrics"] for row in rows}


def paired_interval(differences: np.ndarray, draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of the mean of ``differences`` resampled with replacement."""
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), size=(draws, len(differences)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def table(runs: dict[tuple[int, str], dict[str, float]], seeds: list[int]) -> str:
    keys = sorted({k for m in runs.values() for k in m if k.startswith("test/pair_acc/")})
    groups = [None, *[k.split("/")[2] for k in keys]]
    lines = [
        "| dimension | metric | GPRC mean (std) | plain mean (std) | GPRC - plain | 95% interval |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for group in groups:
        for metric in METRICS:
            key = f"test/{metric}/{group}" if group else f"test/{metric}"
            both = [s for s in seeds if key in runs.get((s, "gprc"), {}) and key in runs.get((s, "plain"), {})]
            if not both:
                continue
            a = np.array([runs[(s, "gprc")][key] for s in both])
            b = np.array([runs[(s, "plain")][key] for s in both])
            low, high = paired_interval(a - b)
            lines.append(
                f"| {group or '**overall**'} | {metric} | {a.mean():.3f} ({a.std(ddof=1) if len(a) > 1 else 0:.3f}) | "
                f"{b.mean():.3f} ({b.std(ddof=1) if len(b) > 1 else 0:.3f}) | {(a - b).mean():+.3f} | "
                f"[{low:+.3f}, {high:+.3f}] |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--config", default="configs/reward/demo.yaml")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "bench" / "gprc_ablation")
    args = parser.parse_args()
    from lit_mrrml.demo import run_variant

    args.output.mkdir(parents=True, exist_ok=True)
    log = args.output / "runs.jsonl"
    runs = finished(log)
    seeds = list(range(args.seeds))
    for seed in seeds:
        for variant, extra in VARIANTS.items():
            if (seed, variant) in runs:
                continue
            overrides = [f"--seed_everything={seed}", "--trainer.enable_progress_bar=false", *extra]
            metrics = run_variant(args.config, args.output / f"seed{seed}", variant, overrides)
            runs[(seed, variant)] = metrics
            with log.open("a", encoding="utf-8") as handle:  # one whole line a run: a crash loses one run
                handle.write(json.dumps({"seed": seed, "variant": variant, "metrics": metrics}) + "\n")
            print(f"seed {seed} {variant}: pair {metrics['test/pair_acc']:.3f} order {metrics['test/order_acc']:.3f}",
                  file=sys.stderr, flush=True)  # fmt: skip
    print(table(runs, seeds))


if __name__ == "__main__":
    main()
