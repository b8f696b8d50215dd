"""The demo runner: both variants train and test, and the side-by-side table comes from that run."""

from __future__ import annotations

import json

import pytest
import yaml

from lit_mrrml import demo
from tests.conftest import ROOT


def test_demo_compares_gprc_with_the_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = demo.main(
        [
            "--config",
            "configs/reward/tiny.yaml",
            "--output",
            str(tmp_path),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=4",
            "--trainer.limit_val_batches=2",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    gprc, baseline = summary["results"]["gprc"], summary["results"]["baseline"]
    for results in (gprc, baseline):
        assert 0.0 <= results["test/pair_acc"] <= 1.0 and "test/order_acc/safety" in results
    assert gprc["test/loss_axis"] != baseline["test/loss_axis"] or gprc["test/pair_acc"] != baseline["test/pair_acc"]
    out = capsys.readouterr().out
    assert "GPRC vs plain ranking" in out and "overall" in out and "safety" in out
    assert f"{gprc['test/pair_acc']:.3f}" in out and f"{baseline['test/pair_acc']:.3f}" in out
    configs = {
        v: yaml.safe_load((tmp_path / v / "lightning_logs" / "version_0" / "config.yaml").read_text())
        for v in ("gprc", "baseline")
    }
    losses = {v: c["model"]["init_args"]["loss"]["init_args"] for v, c in configs.items()}
    assert (losses["gprc"]["alpha"], losses["gprc"]["beta"]) == (0.1, 0.1)
    assert (losses["baseline"]["alpha"], losses["baseline"]["beta"]) == (0.0, 0.0)


def test_comparison_table_marks_missing_metrics():
    table = demo.comparison_table({"a": {"test/pair_acc": 0.5, "test/pair_acc/x": 1.0}}, ["x"])
    assert table.row_count == 2
    cells = [c for col in table.columns for c in col._cells]
    assert "0.500" in cells and "1.000" in cells and "-" in cells


@pytest.mark.parametrize("flag", ["--help"])
def test_demo_help(flag, capsys):
    with pytest.raises(SystemExit) as info:
        demo.main([flag])
    assert info.value.code == 0 and "--config" in capsys.readouterr().out
