"""The README's promises: its opening commands, and its plain-PyTorch GPRC snippet runs and learns."""

from __future__ import annotations

import re

import torch

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_opens_with_make_demo_and_make_test():
    opening = "\n".join(README.splitlines()[:8])
    assert "make demo" in opening and "make test" in opening


def test_gprc_snippet_trains_in_a_plain_pytorch_loop(capsys):
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(python_block_after("## GPRC in your own training loop"), "README.md", "exec"), namespace)
    assert torch.isfinite(namespace["loss"])
    assert namespace["metrics"]["pair_acc"].item() == 1.0  # four units, a trainable encoder: fits
    assert "pairwise accuracy 1.00" in capsys.readouterr().out


def test_prompt_guard_snippet_drops_the_near_duplicate(capsys):
    exec(compile(python_block_after("### The prompt guard in your own pipeline"), "README.md", "exec"), {})
    assert "kept 2 of 3 prompts" in capsys.readouterr().out


def test_healthbench_scoring_snippet_gives_the_worked_check_and_a_perfect_score(capsys):
    exec(compile(python_block_after("The scoring is a plain library:"), "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0.5"
    assert lines[1].startswith("42 {'score': 1.0, 'bootstrap_std': 0.0, 'n': 42}")


def test_export_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    from lit_mrrml.trainer_cli import MRRMLCLI

    monkeypatch.chdir(ROOT)
    root = tmp_path / "runs" / "tiny"
    limits = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    cli = MRRMLCLI(
        args=["--config", "configs/reward/tiny.yaml", f"--trainer.default_root_dir={root}", *limits], run=False
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # what `fit --config configs/reward/tiny.yaml` leaves
    snippet = python_block_after("**Export and reload outside Lightning**")
    assert "runs/tiny/checkpoints/last.ckpt" in snippet and "exports/tiny" in snippet
    snippet = snippet.replace("runs/tiny", str(root)).replace("exports/tiny", str(tmp_path / "exports" / "tiny"))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.splitlines()[-1] == str(cli.model.dimension_names)
    batch = next(iter(cli.datamodule.val_dataloader()))
    with torch.no_grad():
        expected = namespace["model"].eval().score_batch(batch)[0].rewards
        torch.testing.assert_close(namespace["rm"].score_batch(batch)[0].rewards, expected)


def test_grpo_snippet_learns_in_a_plain_pytorch_loop(capsys):
    exec(compile(python_block_after("**The GRPO loss in your own loop**"), "README.md", "exec"), {})
    share = float(capsys.readouterr().out.split("share of token 7: ")[1])
    assert share > 0.5  # from 1/11 at the start; 0.93 when measured
