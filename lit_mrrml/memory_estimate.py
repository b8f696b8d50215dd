"""Memory a GPU needs to train a decoder-only transformer under FSDP: the arithmetic behind the
headers of ``configs/paper/*.yaml``.

Every term is a byte count divided by 2**30 (GiB), per GPU, for ``gpus`` GPUs sharding with FSDP
(FULL_SHARD: weights, gradients and optimizer state split evenly):

- sharded weights: the block linears at ``linear_bytes`` a weight (2 bf16, 4 float32, 0.516 NF4
  with double quantization: 4 bits + 0.127 bit of constants), everything else (embeddings, LM
  head, norms) at ``other_bytes``, over ``gpus``;
- trainable state: each trained parameter's weight, gradient and two Adam moments at
  ``state_bytes`` (16 in float32; 8 in bf16), over ``gpus``; LoRA trains r (d_in + d_out)
  parameters a linear, every linear of every block (``all-linear``);
- gathered units: FSDP all-gathers a block while it runs and prefetches the next (two blocks) and
  keeps the root unit (embeddings, LM head, final norm) whole through forward and backward;
- activations with checkpointing: each block's input (``tokens`` x hidden in bf16) is kept for
  backward, and one block at a time is recomputed, holding its working set: input and norm (2 h),
  q, k, v (q_dim + 2 kv_dim), attention output (q_dim), o_proj (h), MLP gate, up, activation and
  product (4 i), a token, in bf16;
- logits: ``tokens`` x vocab at ``logit_bytes`` (bf16, plus a float32 copy where the loss upcasts
  them all: transformers' causal-LM loss), and ``fp32_logit_tokens`` x vocab in float32 (the
  policy's log-probabilities upcast one sequence at a time);
- vLLM: colocated vLLM reserves ``vllm_fraction`` of the GPU up front, holding its bf16 weights
  split over ``vllm_tp`` GPUs and a KV cache in the rest;
- frozen replica: a model every GPU holds whole (GRPO's reward model), ``replica_gib``, and the
  working set of one of its blocks scoring ``replica_tokens`` tokens without gradients;
- overhead: CUDA context, NCCL buffers and allocator fragmentation, a rule of thumb.

The terms are added up as if all were live at once (vLLM's share and the training activations
never are: generation and the update take turns), so the total errs high. These are estimates
(the largest terms are exact byte counts, the activation model is a simple
upper-end approximation for SDPA/flash attention, which keeps no seq x seq matrix); measure with
``torch.cuda.max_memory_allocated`` (tests/gpu) before trusting a margin under a few GiB.
``python -m lit_mrrml.memory_estimate`` prints the header lines of the paper configs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

GIB = 2**30
BF16 = 2.0
NF4_DQ = (4 + 0.127) / 8  # bytes a weight: NF4 with double-quantized constants (QLoRA paper)
OVERHEAD_GIB = 2.0


@dataclass(frozen=True)
class ModelShape:
    """The sizes that fix a decoder-only transformer's parameter count.

    Args:
        layers: Transformer blocks.
        hidden: Hidden size h.
        intermediate: MLP intermediate size i (gated: gate, up and down projections).
        heads: Attention heads.
        kv_heads: Key/value heads (grouped-query attention).
        head_dim: Size of one head.
        vocab: Vocabulary size.
        tied_embeddings: Whether the LM head is the input embedding.
        qk_norm: Per-head RMS norms of queries and keys (Qwen3).
    """

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool = False
    qk_norm: bool = False

    @property
    def linears(self) -> list[tuple[int, int]]:
        """(d_in, d_out) of a block's linears: q, k, v, o, gate, up, down."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    @property
    def block_linear_parameters(self) -> int:
        return sum(d_in * d_out for d_in, d_out in self.linears)

    @property
    def block_parameters(self) -> int:
        norms = 2 * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        return self.block_linear_parameters + norms

    @property
    def root_parameters(self) -> int:
        """Embeddings, LM head (unless tied) and the final norm: what no block holds."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) + self.hidden

    @property
    def parameters(self) -> int:
        return self.layers * self.block_parameters + self.root_parameters

    def lora_parameters(self, rank: int) -> int:
        """r (d_in + d_out) for every linear of every block."""
        return self.layers * rank * sum(d_in + d_out for d_in, d_out in self.linears)


# Qwen/Qwen3-32B's config.json: 64 layers, hidden 5120, intermediate 25600, 64 heads, 8 KV heads,
# head_dim 128, vocabulary 151936, untied LM head, q/k norms: 32,762,123,264 parameters.
QWEN3_32B = ModelShape(64, 5120, 25600, 64, 8, 128, 151936, tied_embeddings=False, qk_norm=True)


@dataclass(frozen=True)
class Plan:
    """What a run puts on each GPU (see the module docstring for every term)."""

    name: str
    shape: ModelShape
    gpus: int
    tokens: int  # tokens a micro-batch forward/backward holds (sequences x length)
    linear_bytes: float = BF16
    other_bytes: float = BF16
    lora_rank: int | None = None  # None: full fine-tuning, every parameter trained
    state_bytes: float = 16.0
    lm_head: bool = True
    logit_bytes: float = BF16
    fp32_logit_tokens: int = 0
    vllm_fraction: float = 0.0
    vllm_tp: int = 1
    replica_gib: float = 0.0
    replica_tokens: int = 0
    gpu_gib: float = 80e9 / GIB  # an "80 GB" GPU: 74.5 GiB


def weights_gib(shape: ModelShape, linear_bytes: float, other_bytes: float, lm_head: bool = True) -> float:
    """A whole model's weights: block linears at ``linear_bytes``, the rest at ``other_bytes``."""
    rest = shape.parameters - shape.layers * shape.block_linear_parameters
    if not lm_head and not shape.tied_embeddings:
        rest -= shape.vocab * shape.hidden
    return (shape.layers * shape.block_linear_parameters * linear_bytes + rest * other_bytes) / GIB


def estimate(plan: Plan) -> dict[str, float]:
    """GiB per GPU, by term, with ``total`` and ``free`` (the GPU's memory left)."""
    s = plan.shape
    trained = s.parameters if plan.lora_rank is None else s.lora_parameters(plan.lora_rank)
    gathered_linear = min(plan.linear_bytes, BF16)  # FSDP gathers in the compute dtype (or 4-bit as stored)
    block = s.block_linear_parameters * gathered_linear + (s.block_parameters - s.block_linear_parameters) * BF16
    head = 0 if plan.lm_head or s.tied_embeddings else s.vocab * s.hidden  # a reward model has no LM head
    working = 2 * s.hidden + 2 * s.heads * s.head_dim + 2 * s.kv_heads * s.head_dim + s.hidden + 4 * s.intermediate
    terms = {
        "sharded weights": weights_gib(s, plan.linear_bytes, plan.other_bytes, plan.lm_head) / plan.gpus,
        "trainable state": trained * plan.state_bytes / plan.gpus / GIB,
        "gathered units": (2 * block + (s.root_parameters - head) * BF16) / GIB,
        "activations": (s.layers * plan.tokens * s.hidden + plan.tokens * working) * BF16 / GIB,
        "logits": (plan.tokens * plan.logit_bytes + plan.fp32_logit_tokens * 4) * s.vocab / GIB if plan.lm_head else 0,
        "vllm": plan.vllm_fraction * plan.gpu_gib,
        "frozen replica": plan.replica_gib + plan.replica_tokens * working * BF16 / GIB,
        "overhead": OVERHEAD_GIB,
    }
    terms["total"] = sum(terms.values())
    terms["free"] = plan.gpu_gib - terms["total"]
    return terms


def vllm_split(plan: Plan) -> tuple[float, float]:
    """(GiB of vLLM's bf16 weights a GPU, GiB left in its share for the KV cache and activations)."""
    weights = weights_gib(plan.shape, BF16, BF16) / plan.vllm_tp
    return weights, plan.vllm_fraction * plan.gpu_gib - weights


def header_lines(plan: Plan) -> list[str]:
    """The memory lines of a paper config's header (comment lines, two decimals)."""
    terms = estimate(plan)
    lines = [f"# Memory per GPU ({plan.gpus} x 80 GB = {plan.gpu_gib:.2f} GiB each), lit_mrrml.memory_estimate:"]
    shown = {name: value for name, value in terms.items() if name not in ("total", "free") and value}
    lines += [f"#   {name}: {value:.2f} GiB" for name, value in shown.items()]
    if plan.vllm_fraction:
        weights, rest = vllm_split(plan)
        lines.append(
            f"#     (vllm: {weights:.2f} GiB of weights, tensor parallel {plan.vllm_tp}; {rest:.2f} GiB KV cache)"
        )
    lines.append(f"#   total: {terms['total']:.2f} GiB, free: {terms['free']:.2f} GiB")
    return lines


REWARD_REPLICA_GIB = weights_gib(QWEN3_32B, NF4_DQ, BF16, lm_head=False)  # the QLoRA reward model, whole
PAPER_PLANS = {
    # QLoRA: NF4 blocks (bf16 storage, so FSDP shards them), bf16-true, adapters and head in bf16;
    # 2 units x K <= 4 responses x 2048 tokens a micro-batch; no LM head (hidden states to the head)
    "reward": Plan("reward", QWEN3_32B, 8, 2 * 4 * 2048, NF4_DQ, BF16, 16, 8.0, lm_head=False),
    # LoRA on a bf16 base, bf16-true: 4 conversations x 2048 tokens; the loss upcasts all logits
    "sft": Plan("sft", QWEN3_32B, 8, 4 * 2048, BF16, BF16, 16, 8.0, logit_bytes=BF16 + 4),
    # LoRA, bf16-true, micro-batches of 4 x (1024 prompt + 1024 completion), the log-probs upcasting
    # one completion's (1024, V) logits and their exponentials at a time; vLLM at 0.30 of the
    # GPU split 8 ways; the QLoRA reward model whole on every GPU, scoring 4 x 2048 tokens at a time
    "grpo": Plan(
        "grpo", QWEN3_32B, 8, 4 * 2048, BF16, BF16, 16, 8.0, fp32_logit_tokens=2048,
        vllm_fraction=0.30, vllm_tp=8, replica_gib=REWARD_REPLICA_GIB, replica_tokens=4 * 2048,
    ),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Print the header lines of the paper configs (``python -m lit_mrrml.memory_estimate [stage]``)."""
    stages = (argv if argv is not None else sys.argv[1:]) or list(PAPER_PLANS)
    for stage in stages:
        print(f"# configs/paper/qwen3_32b_{stage}.yaml")
        print("\n".join(header_lines(PAPER_PLANS[stage])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
