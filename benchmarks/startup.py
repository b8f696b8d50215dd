"""Start-up time and memory of each command, at this tree against an earlier commit (the peer).

Each command runs ``--help`` (``matrix`` validates the shipped matrix) in a fresh process, three
times; the table gives the fastest wall time and the peak resident set (``ru_maxrss`` of the child),
with the ratio against the same command at the earlier commit, checked out with ``git worktree``
into a temporary folder and run from there. A command the earlier commit does not have is "-".

    python benchmarks/startup.py                 # against 74d0722 (before the light imports)
    python benchmarks/startup.py --before HEAD~3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATRIX = "configs/matrix/medical_dsd.yaml"
COMMANDS = {
    "--help": ["--help"],
    "matrix FILE": ["matrix", MATRIX],
    "convert --help": ["convert", "--help"],
    "generate --help": ["generate", "--help"],
    "healthbench --help": ["healthbench", "--help"],
    "serve --help": ["serve", "--help"],
    "export --help": ["export", "--help"],
    "fit --help": ["fit", "--help"],
}


def run_once(tree: Path, args: list[str]) -> tuple[float, float] | None:
    """(seconds, peak MiB) of ``python -m lit_mrrml ARGS`` run in ``tree``; None if it failed. Call it
    in a process of its own (``measure``): ``ru_maxrss`` of the children is then this child's peak."""
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lit_mrrml", *args], cwd=tree, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return None
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB


def measure(tree: Path, args: list[str], repeats: int) -> tuple[float, float] | None:
    """The fastest of ``repeats`` runs, with its peak memory; each run from a fresh helper process."""
    code = "import json, sys; from pathlib import Path; from startup import run_once; "
    code += "print(json.dumps(run_once(Path(sys.argv[1]), sys.argv[2:])))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    results = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", code, str(tree), *args], env=env, capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result is None:
            return None
        results.append((float(result[0]), float(result[1])))
    return min(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="74d0722", help="The earlier commit to compare with.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        before = Path(scratch) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            print(f"| command | before ({args.before}) | now | time now / before | memory now / before |")
            print("|---|---:|---:|---:|---:|")
            for name, command in COMMANDS.items():
                old, new = measure(before, command, args.repeats), measure(ROOT, command, args.repeats)

                def cell(r: tuple[float, float] | None) -> str:
                    return "-" if r is None else f"{r[0]:.2f} s, {r[1]:,.0f} MiB"

                ratio = f"{new[0] / old[0]:.2f}" if old and new else "-"
                memory = f"{new[1] / old[1]:.2f}" if old and new else "-"
                print(f"| `{name}` | {cell(old)} | {cell(new)} | {ratio} | {memory} |", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
