"""The policy demo (``make demo-policy``): SFT cold start, then GDPO against the demo reward model.

1. The demo reward model (configs/reward/demo.yaml, what ``make demo`` trains) is exported from
   its best checkpoint to ``runs/demo/reward_export``; it is trained first if there is none.
2. SmolLM2-135M-Instruct is fine-tuned with LoRA on the demo units' best answers and exported
   merged (configs/policy/sft_demo.yaml).
3. GDPO trains a fresh adapter on that export against the reward model (configs/policy/grpo_demo.yaml).
Then it prints, from this run, each dimension's mean reward on the held-out prompts before the
first GRPO step and after the last, the KL reached, the mean completion length before and after,
and the reward-hacking alarms: the Spearman correlation between completion length and each
dimension's reward over the training rollouts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
from rich.console import Console
from rich.table import Table

from lit_mrrml.jsonio import dumps
from lit_mrrml.trainer_cli import MRRMLCLI

ALARM = 0.5  # a length correlation above this on a dimension: its reward follows length
LAST_STEPS = 10  # the alarms and the KL are averaged over the last steps of the run


class History(L.Callback):
    """Keeps every validation's metrics and every training step's, as the run logs them."""

    def __init__(self) -> None:
        self.validations: list[dict[str, float]] = []
        self.steps: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.validations.append({"step": trainer.global_step, **metrics})

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        keep = ("policy/", "hacking/", "reward/", "completions/")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(keep)}
        self.steps.append({"step": trainer.global_step, **metrics})


def fit(config: str, overrides: list[str], callbacks: list[L.Callback] = ()) -> MRRMLCLI:  # type: ignore[assignment]
    cli = MRRMLCLI(args=["--config", config, *overrides], run=False)
    cli.trainer.callbacks.extend(callbacks)  # type: ignore[attr-defined]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def best_checkpoints(root: Path) -> list[Path]:
    return sorted((root / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)


def reward_export(args: argparse.Namespace, console: Console) -> Path:
    """The demo reward model's export, from its newest best checkpoint (trained first if there is
    none; exported again when the checkpoint is newer than the export)."""
    root, export = Path(args.reward_root), Path(args.reward_export)
    best, config = best_checkpoints(root), export / "reward_config.json"
    if config.is_file() and (not best or config.stat().st_mtime >= best[-1].stat().st_mtime):
        console.print(f"reward model: {export} (exported earlier)")
        return export
    if not best:
        console.print(f"reward model: none in {root}; training it ({args.reward_config})")
        fit(args.reward_config, [f"--trainer.default_root_dir={root}"])
        best = best_checkpoints(root)
    from lit_mrrml.modules.reward import RewardModel

    RewardModel.load_from_checkpoint(best[-1], map_location="cpu").save_pretrained(export)
    console.print(f"reward model: {best[-1]} exported to {export}")
    return export


def mean_of(steps: list[dict[str, float]], key: str) -> float | None:
    values = [s[key] for s in steps[-LAST_STEPS:] if key in s]
    return sum(values) / len(values) if values else None


def before_after_table(history: History, dimensions: list[str]) -> Table:
    """Rows: dimensions, the total and the length; columns: before, after, change, length alarm."""
    before, after = history.validations[0], history.validations[-1]
    table = Table(
        title=f"held-out prompts: before GRPO (step {int(before['step'])}) and after (step {int(after['step'])})",
        caption=f"length corr.: Spearman(completion length, reward) over the last {LAST_STEPS} training steps; "
        f"! above {ALARM}: that reward follows length",
    )
    for name, justify in (("", "left"), ("before", "right"), ("after", "right"), ("change", "right")):
        table.add_column(name, justify=justify, style="bold" if not name else None)  # type: ignore[arg-type]
    table.add_column("length corr.", justify="right")
    for dim in [*dimensions, "total"]:
        b, a = before[f"val/reward/{dim}"], after[f"val/reward/{dim}"]
        corr = mean_of(history.steps, f"hacking/length_corr/{dim}")
        alarm = "-" if corr is None else f"{corr:+.2f}" + (" !" if corr > ALARM else "")
        table.add_row(dim, f"{b:+.3f}", f"{a:+.3f}", f"{a - b:+.3f}", alarm, end_section=dim == dimensions[-1])
    b, a = before["val/length"], after["val/length"]
    table.add_row("length (tokens)", f"{b:.1f}", f"{a:.1f}", f"{a - b:+.1f}", "")
    if "val/truncated_frac" in before and "val/truncated_frac" in after:  # at the cap, length stops telling
        b, a = before["val/truncated_frac"], after["val/truncated_frac"]
        table.add_row("truncated (share)", f"{b:.2f}", f"{a:.2f}", f"{a - b:+.2f}", "")
    return table


def export_spec(folder: Path) -> dict[str, Any]:
    """A backbone override that points at an export folder, clearing what a config may have set
    (a command-line dict is merged into the config's, so its other fields are nulled here)."""
    return {"path": str(folder), "gguf_file": None, "config": None, "tokenizer": None, "quantization": None}


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lit_mrrml.demo_policy", description=__doc__)
    parser.add_argument("--output", default="runs/demo_policy", help="folder of the SFT and GRPO runs")
    parser.add_argument("--reward-config", default="configs/reward/demo.yaml", help="reward model to train if none")
    parser.add_argument("--reward-root", default="runs/demo/gprc", help="where that reward model's run is")
    parser.add_argument("--reward-export", default="runs/demo/reward_export", help="its export, the GRPO reward")
    parser.add_argument("--sft-config", default="configs/policy/sft_demo.yaml", help="SFT config")
    parser.add_argument("--grpo-config", default="configs/policy/grpo_demo.yaml", help="GRPO config")
    parser.add_argument("--sft-steps", type=int, default=None, help="SFT optimizer steps (default: the config's)")
    parser.add_argument("--grpo-steps", type=int, default=None, help="GRPO optimizer steps (default: the config's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    console, root, started = Console(), Path(args.output), time.perf_counter()
    console.rule("[bold]step 1/3: the demo reward model")
    reward = reward_export(args, console)
    for stage in ("sft", "grpo"):
        shutil.rmtree(root / stage, ignore_errors=True)  # the demo trains afresh each time
    console.rule("[bold]step 2/3: SFT cold start")
    sft_steps = [f"--trainer.max_steps={args.sft_steps}"] if args.sft_steps else []
    fit(args.sft_config, [f"--trainer.default_root_dir={root / 'sft'}", *sft_steps])
    console.rule("[bold]step 3/3: GDPO against the reward model, from the SFT export")
    history = History()
    grpo_steps = [f"--trainer.max_steps={args.grpo_steps}"] if args.grpo_steps else []
    overrides = [
        f"--trainer.default_root_dir={root / 'grpo'}",
        "--model.init_args.backbone=" + json.dumps(export_spec(root / "sft" / "export")),
        f"--model.init_args.reward.init_args.path={reward}",
        *grpo_steps,
    ]
    cli = fit(args.grpo_config, overrides, [history])
    console.print(before_after_table(history, list(cli.model.dimension_names)))
    kl = mean_of(history.steps, "policy/kl")
    minutes = (time.perf_counter() - started) / 60
    console.print(f"KL to the SFT policy over the last {LAST_STEPS} steps: {kl or 0.0:.4f}; done in {minutes:.1f} min")
    summary = {"minutes": round(minutes, 2), "validations": history.validations, "steps": history.steps}
    (root / "summary.json").write_text(dumps(summary, "summary.json", indent=2), encoding="utf-8")
    console.print(f"every validation and step in {root / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
