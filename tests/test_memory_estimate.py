"""lit_mrrml/memory_estimate.py against hand-computed values: a tiny shape term by term, and
Qwen3-32B's parameter count from its config.json."""

from __future__ import annotations

import pytest

from lit_mrrml.memory_estimate import GIB, OVERHEAD_GIB, QWEN3_32B, ModelShape, Plan, estimate, header_lines

# layers 2, hidden 4, intermediate 8, heads 2 x head_dim 2 (q_dim 4), one KV head (kv_dim 2), vocab 10
TINY = ModelShape(layers=2, hidden=4, intermediate=8, heads=2, kv_heads=1, head_dim=2, vocab=10)


def test_tiny_parameter_counts_by_hand() -> None:
    # linears q 4x4, k 4x2, v 4x2, o 4x4, gate 4x8, up 4x8, down 8x4: 16 + 8 + 8 + 16 + 32 + 32 + 32 = 144
    assert TINY.block_linear_parameters == 144
    assert TINY.block_parameters == 144 + 2 * 4  # two RMS norms
    assert TINY.root_parameters == 2 * 10 * 4 + 4  # embedding, untied LM head, final norm
    assert TINY.parameters == 2 * 152 + 84 == 388
    # LoRA r = 1: sum of (d_in + d_out) = 8 + 6 + 6 + 8 + 12 + 12 + 12 = 64 a block
    assert TINY.lora_parameters(1) == 128 and TINY.lora_parameters(4) == 512


def test_qwen3_32b_parameters_by_hand() -> None:
    # a block: q 5120 x 8192 + k, v 5120 x 1024 each + o 8192 x 5120 = 94,371,840;
    # MLP 3 x 5120 x 25600 = 393,216,000; norms 2 x 5120 + q/k norms 2 x 128 = 10,496
    assert QWEN3_32B.block_parameters == 94_371_840 + 393_216_000 + 10_496 == 487_598_336
    # 64 blocks + embedding and LM head 2 x 151936 x 5120 + final norm 5120: the "32.8 B"
    assert QWEN3_32B.parameters == 64 * 487_598_336 + 2 * 777_912_320 + 5120 == 32_762_123_264
    assert QWEN3_32B.lora_parameters(16) == 64 * 16 * 131_072 == 134_217_728


def test_estimate_of_a_tiny_full_run_by_hand() -> None:
    plan = Plan("tiny", TINY, gpus=2, tokens=3, state_bytes=16.0, gpu_gib=4.0)
    terms = {k: v * GIB for k, v in estimate(plan).items()}  # bytes
    assert terms["sharded weights"] == pytest.approx((2 * 144 * 2 + (388 - 288) * 2) / 2)  # 388
    assert terms["trainable state"] == pytest.approx(388 * 16 / 2)  # 3104
    assert terms["gathered units"] == pytest.approx(2 * (144 * 2 + 8 * 2) + 84 * 2)  # 776
    # working set a token: 2 h + 2 q_dim + 2 kv_dim + h + 4 i = 8 + 8 + 4 + 4 + 32 = 56
    assert terms["activations"] == pytest.approx((2 * 3 * 4 + 3 * 56) * 2)  # 384
    assert terms["logits"] == pytest.approx(3 * 10 * 2)  # 60
    assert terms["vllm"] == terms["frozen replica"] == 0
    assert terms["overhead"] == OVERHEAD_GIB * GIB
    total = 388 + 3104 + 776 + 384 + 60 + OVERHEAD_GIB * GIB
    assert terms["total"] == pytest.approx(total)
    assert terms["free"] == pytest.approx(4.0 * GIB - total)


def test_lora_4bit_vllm_and_replica_terms_by_hand() -> None:
    plan = Plan(
        "tiny", TINY, gpus=1, tokens=1, linear_bytes=0.5, lora_rank=1, state_bytes=8.0, lm_head=False,
        vllm_fraction=0.5, gpu_gib=4.0, replica_gib=1.0, replica_tokens=2,
    )  # fmt: skip
    terms = {k: v * GIB for k, v in estimate(plan).items()}
    # no LM head: the root is the embedding and the final norm, 44 bf16 parameters; the 16 block
    # norm weights stay bf16 too
    assert terms["sharded weights"] == pytest.approx(2 * 144 * 0.5 + (16 + 44) * 2)
    assert terms["trainable state"] == pytest.approx(128 * 8)
    assert terms["gathered units"] == pytest.approx(2 * (144 * 0.5 + 8 * 2) + 44 * 2)
    assert terms["logits"] == 0
    assert terms["vllm"] == pytest.approx(2.0 * GIB)
    assert terms["frozen replica"] == pytest.approx(1.0 * GIB + 2 * 56 * 2)


def test_header_lines_name_every_nonzero_term_and_the_total() -> None:
    lines = header_lines(Plan("tiny", QWEN3_32B, gpus=8, tokens=1024, lora_rank=16, state_bytes=8.0))
    assert lines[0].startswith("# Memory per GPU (8 x 80 GB = 74.51 GiB each)")
    assert [line.split(":")[0].strip("# ") for line in lines[1:-1]] == [
        "sharded weights", "trainable state", "gathered units", "activations", "logits", "overhead",
    ]  # fmt: skip
    assert lines[1] == "#   sharded weights: 7.63 GiB"  # 32,762,123,264 x 2 bytes / 8 / 2**30
    assert lines[-1].startswith("#   total: ")
