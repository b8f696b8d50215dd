"""vLLM serves the Hugging Face export of a reward model (needs the ``vllm`` extra and a GPU): the
sequence classifier written by ``save_pretrained(hf_format=True)`` on SmolLM2-135M, loaded by vLLM
as a pooling model (``runner="pooling", convert="classify"``, as ``vllm serve DIR --runner pooling
--convert classify`` does), gives the same raw scores s(x, y) and s(x) as transformers, to 1e-3 in
bf16, and so the same rewards s(x, y) - s(x) + b."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from tests.conftest import MATRIX_PATH
from tests.gpu.conftest import GPU, results_dir

pytestmark = [*GPU, pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs lit_mrrml[vllm]")]
PROMPTS = [
    [{"role": "user", "content": "Crushing chest pain for an hour: what should I do?"}],
    [{"role": "user", "content": "My toddler swallowed a button battery."}],
    [{"role": "user", "content": "Is it safe to take ibuprofen with lisinopril?"}],
]
ANSWERS = ["Call emergency services now.", "Go to the emergency department right away.", "Ask your pharmacist."]


def raw_scores(outputs: list) -> torch.Tensor:
    """(N, L) the pooled outputs of vLLM's classify call (``probs`` is what it names them)."""
    return torch.tensor([list(o.outputs.probs) for o in outputs], dtype=torch.float32)


def test_vllm_serves_the_export_with_transformers_scores(smollm2_folder: Path, tmp_path: Path) -> None:
    from vllm import LLM, PoolingParams
    from vllm.inputs import TokensPrompt

    from lit_mrrml.models.hf_rewards import load_classifier, row_sequences

    matrix = RubricMatrix.from_yaml(MATRIX_PATH)
    spec = BackboneSpec(path=str(smollm2_folder), dtype="bfloat16")
    model = RewardModel(backbone=spec, training_mode="full", matrix=matrix.to_dict(), embedding_dim=64,
                        num_dimensions=len(matrix.dimensions), dimension_names=list(matrix.dimension_ids))  # fmt: skip
    model.configure_model()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.head.parameters():  # type: ignore[union-attr]
            p.add_(torch.randn_like(p) * 0.1)
    folder = model.save_pretrained(tmp_path / "hf", hf_format=True)
    classifier, tokenizer = load_classifier(folder)
    classifier = classifier.to("cuda", torch.bfloat16).eval()
    rows = [row_sequences(tokenizer, p, a, 1024) for p, a in zip(PROMPTS, ANSWERS, strict=True)]
    sequences = [ids for full, n in rows for ids in (full, full[:n])]  # [prompt; answer], prompt alone
    with torch.no_grad():
        expected = torch.cat([classifier(torch.tensor([ids], device="cuda")).logits.float().cpu() for ids in sequences])
    del classifier
    torch.cuda.empty_cache()
    start = time.perf_counter()
    llm = LLM(model=str(folder), runner="pooling", convert="classify", dtype="bfloat16", enforce_eager=True,
              gpu_memory_utilization=0.2)  # fmt: skip
    try:
        params = PoolingParams(use_activation=False)  # raw scores: regression, no sigmoid or softmax
    except TypeError:  # vLLM before 0.11 names it activation
        params = PoolingParams(activation=False)
    got = raw_scores(llm.classify([TokensPrompt(prompt_token_ids=ids) for ids in sequences], pooling_params=params))
    seconds = time.perf_counter() - start
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
    bias = model.head.bias.detach().float().cpu()  # type: ignore[union-attr]
    rewards = got[0::2] - got[1::2] + bias
    exact = model.score(PROMPTS, ANSWERS).rewards.float().cpu()
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    gap = float((rewards - exact).abs().max())
    (out / "vllm_reward_export.txt").write_text(f"max |vLLM reward - RewardModel.score| = {gap:.2e}; {seconds:.1f} s\n")
