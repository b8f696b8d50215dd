"""The policy demo runner on the tiny configs: SFT, then GRPO from its export, and the before/after
table printed from that run's own validations."""

from __future__ import annotations

import json

from lit_mrrml import demo_policy
from tests.conftest import ROOT


def test_the_runner_trains_sft_then_grpo_and_prints_before_and_after(tiny_reward_export, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    args = ["--output", str(tmp_path), "--reward-root", str(tmp_path / "no_run"), "--reward-export"]
    args += [str(tiny_reward_export), "--sft-config", "configs/policy/tiny_sft.yaml"]
    args += ["--grpo-config", "configs/policy/tiny.yaml", "--sft-steps", "2", "--grpo-steps", "2"]
    assert demo_policy.main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    before, after = summary["validations"][0], summary["validations"][-1]
    assert before["step"] == 0 and after["step"] == 2  # validated before the first step, and after the last
    assert len(summary["steps"]) == 2 and all("policy/kl" in s for s in summary["steps"])
    config = (tmp_path / "grpo" / "lightning_logs" / "version_0" / "config.yaml").read_text()
    assert str(tmp_path / "sft" / "export") in config  # GRPO started from the SFT export
    out = capsys.readouterr().out
    assert "before GRPO (step 0)" in out and "after (step 2)" in out and "length (tokens)" in out
    assert f"{before['val/reward/safety']:+.3f}" in out and f"{after['val/reward/total']:+.3f}" in out


def test_the_table_flags_a_length_correlation_above_the_alarm():
    history = demo_policy.History()
    history.validations = [
        {"step": 0, "val/reward/a": 0.1, "val/reward/total": 0.1, "val/length": 10.0, "val/truncated_frac": 0.25},
        {"step": 4, "val/reward/a": 0.4, "val/reward/total": 0.4, "val/length": 30.0, "val/truncated_frac": 1.0},
    ]
    history.steps = [{"step": s, "hacking/length_corr/a": 0.9, "hacking/length_corr/total": 0.2} for s in range(4)]
    table = demo_policy.before_after_table(history, ["a"])
    cells = {col.header: list(col._cells) for col in table.columns}
    assert cells["change"] == ["+0.300", "+0.300", "+20.0", "+0.75"]
    assert cells["length corr."] == ["+0.90 !", "+0.20", "", ""]
