"""VLLMEngine: rollouts drawn by vLLM, colocated with training (optional extra ``vllm``, CUDA).

Each training rank runs its own vLLM ``LLM`` inside its own process (vLLM's
``distributed_executor_backend="external_launcher"``, the mode TRL calls colocate), sharing the
GPU with the trainer within ``gpu_memory_utilization``, and generates for its own prompts. The
engine is built at the first ``generate`` from the policy's config with placeholder weights
(``load_format="dummy"``: nothing is written to or read from disk) and the trained weights are
then loaded into it: LoRA merged as W + scale * B A without touching the live model, sharded
weights gathered one FSDP unit at a time (``lit_mrrml.policy.weight_stream``), through the
model's own ``load_weights`` (the route TRL's colocate mode takes). ``sync`` after an optimizer
step marks the copy stale; the next ``generate`` loads the weights once, however many steps came
in between, and clears the prefix cache, whose entries were computed with the old weights.

Sampling is the distribution the trainer's log-probabilities assume (softmax(logits / T), nucleus
``top_p``): top-k, min-p and every penalty off, the model's generation config ignored
(``generation_config="vllm"``), stops at the given stop ids (kept in the mask, as in
``HFGenerateEngine``). vLLM V1 returns raw log-probabilities (before temperature) by default; the
engine asks for the processed ones (``logprobs_mode="processed_logprobs"``: after temperature and
top-p, renormalised), the distribution the tokens were drawn from, and returns them as
``Rollouts.sampler_logprobs``: the trainer logs their gap to its own and can correct for it
(``GRPOLoss(tis_cap=...)``). With top_p < 1 the gap also holds the log of the kept nucleus mass,
which the trainer's full-softmax log-probabilities do not cut: the correction is then the true
importance weight of the nucleus. Each prompt has its own seed, derived from the call's seed, so
draws do not depend on the batch around them (vLLM's kernels still may, in the last bits).

``tensor_parallel_size`` splits each vLLM copy over that many ranks (which then generate the
union of their prompts and keep their own share); ``enable_sleep_mode`` offloads vLLM's weights
to CPU memory and frees its KV cache between rollouts (level 1).
"""

from __future__ import annotations

import importlib
import os
import socket
import tempfile
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule

from lit_mrrml.errors import InputError
from lit_mrrml.policy.rollout import RolloutEngine, Rollouts, SamplingSettings
from lit_mrrml.policy.vllm_requests import request_seed, rollouts_from_outputs, sampling_params
from lit_mrrml.policy.weight_stream import stream_merged_weights

INSTALL = "pip install 'lit_mrrml[vllm]'"


@dataclass(frozen=True)
class VLLMApi:
    """The parts of vLLM the engine uses, imported only when an engine is made."""

    LLM: Any
    SamplingParams: Any
    TokensPrompt: Any


def import_vllm() -> VLLMApi:
    """vLLM's LLM, SamplingParams and TokensPrompt; an InputError naming the install line when absent."""
    try:
        vllm = importlib.import_module("vllm")
        inputs = importlib.import_module("vllm.inputs")
    except ImportError as err:
        raise InputError(
            f"model.engine VLLMEngine needs vLLM ({err}): {INSTALL} on a CUDA machine, or remove model.engine "
            "to roll out with transformers generate"
        ) from err
    return VLLMApi(vllm.LLM, vllm.SamplingParams, inputs.TokensPrompt)


class VLLMEngine(RolloutEngine):
    """vLLM rollouts in the training process, the trained weights loaded into it after each step.

    Args:
        gpu_memory_utilization: Share of the GPU's memory vLLM may take (its weights, activations
            and KV cache); the trainer keeps the rest. vLLM checks at start that this much is free.
        max_model_len: Longest prompt + completion in tokens (sizes the KV cache); None: the
            model's ``max_position_embeddings``, often far more than rollouts need.
        dtype: vLLM's weight and compute dtype (``bfloat16``, ``float16``, ``float32``); None: the
            policy's parameter dtype. Set ``bfloat16`` under ``bf16-mixed``, whose weights are float32.
        enforce_eager: Run without CUDA graphs (less memory and start-up time, slower decoding).
        tensor_parallel_size: Ranks each vLLM copy is split over (must divide the world size).
        enable_sleep_mode: Offload vLLM's weights to CPU memory and free its KV cache between
            rollouts, so training gets the GPU memory back (costs a copy each way per rollout).
        enable_prefix_caching: Reuse the KV cache of a prompt's G completions and of repeated prompts.
        engine_kwargs: Other arguments of ``vllm.LLM`` (``max_num_seqs``, ``max_num_batched_tokens``...).
    """

    def __init__(
        self,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        dtype: str | None = None,
        enforce_eager: bool = False,
        tensor_parallel_size: int = 1,
        enable_sleep_mode: bool = False,
        enable_prefix_caching: bool = True,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not 0 < gpu_memory_utilization <= 1:
            raise InputError(f"model.engine.gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        if tensor_parallel_size < 1:
            raise InputError(f"model.engine.tensor_parallel_size must be at least 1, got {tensor_parallel_size}")
        self.api = import_vllm()
        self.gpu_memory_utilization, self.max_model_len, self.dtype = gpu_memory_utilization, max_model_len, dtype
        self.enforce_eager, self.tensor_parallel_size = enforce_eager, tensor_parallel_size
        self.enable_sleep_mode, self.enable_prefix_caching = enable_sleep_mode, enable_prefix_caching
        self.engine_kwargs = dict(engine_kwargs or {})
        self.llm: Any = None
        self.group: Any = None  # the tensor-parallel group of this rank (None: a copy of its own)
        self.stale, self.asleep = True, False
        self.root: nn.Module | None = None
        self.folder: tempfile.TemporaryDirectory[str] | None = None

    # ---- the interface ------------------------------------------------------------------------
    def sync(self, model: nn.Module, root: nn.Module | None = None) -> None:
        """Mark vLLM's weights stale: the next ``generate`` loads ``model``'s (with ``root``'s, FSDP1)."""
        self.stale, self.root = True, root

    def generate(
        self,
        model: nn.Module,
        prompt_ids: list[list[int]],
        num_generations: int,
        sampling: SamplingSettings,
        stop_ids: list[int],
        pad_id: int,
        seed: int,
    ) -> Rollouts:
        llm = self.engine(model)
        self.wake()
        if self.stale:
            self.load_weights(model)
        seeds = [request_seed(seed, i) for i in range(len(prompt_ids))]
        every, mine = self.gather_requests(list(zip(prompt_ids, seeds, strict=True)))
        requests = [self.api.TokensPrompt(prompt_token_ids=ids) for ids, _ in every]
        params = [sampling_params(self.api, sampling, num_generations, stop_ids, s) for _, s in every]
        outputs = llm.generate(requests, sampling_params=params, use_tqdm=False)
        if self.enable_sleep_mode:
            llm.sleep(level=1)
            self.asleep = True
        device = next(model.parameters()).device
        return rollouts_from_outputs(prompt_ids, outputs[mine], num_generations, stop_ids, pad_id, device)

    # ---- construction and weights -------------------------------------------------------------
    def engine(self, model: nn.Module) -> Any:
        """The vLLM engine, built at the first call from ``model``'s config with placeholder weights."""
        if self.llm is not None:
            return self.llm
        world, rank = launcher_env()
        if world % self.tensor_parallel_size:
            raise InputError(
                f"model.engine.tensor_parallel_size {self.tensor_parallel_size} must divide the world size {world}"
            )
        if self.tensor_parallel_size > 1:
            tp = self.tensor_parallel_size
            self.group, _ = dist.new_subgroups_by_enumeration([list(range(i, i + tp)) for i in range(0, world, tp)])
        self.folder = tempfile.TemporaryDirectory(prefix="lit_mrrml_vllm_")
        write_config(model, self.folder.name)
        dtype = self.dtype or str(next(model.parameters()).dtype).removeprefix("torch.")
        self.llm = self.api.LLM(
            model=self.folder.name,
            load_format="dummy",  # placeholder weights: the trained ones are loaded before the first draw
            skip_tokenizer_init=True,  # prompts go in as token ids and completions come out as ids
            generation_config="vllm",  # vLLM's neutral defaults, not the model's sampling settings
            dtype=dtype,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            enforce_eager=self.enforce_eager,
            tensor_parallel_size=self.tensor_parallel_size,
            distributed_executor_backend="external_launcher",
            enable_sleep_mode=self.enable_sleep_mode,
            enable_prefix_caching=self.enable_prefix_caching,
            logprobs_mode="processed_logprobs",  # after temperature and top-p: what the tokens were drawn from
            seed=rank // self.tensor_parallel_size,  # the same within a tensor-parallel group
            **self.engine_kwargs,
        )
        self.stale = True
        return self.llm

    def load_weights(self, model: nn.Module) -> list[str]:
        """Load ``model``'s merged weights into vLLM's model; returns their names."""
        target = vllm_model(self.llm)
        names = stream_merged_weights(model, target.load_weights, self.root)
        self.llm.reset_prefix_cache()  # cached prompt states were computed with the old weights
        self.stale = False
        return names

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def gather_requests(self, local: list[tuple[list[int], int]]) -> tuple[list[Any], slice]:
        """Every request of this rank's tensor-parallel group, and the slice of the outputs that is its own."""
        if self.group is None:
            return local, slice(0, len(local))
        parts: list[Any] = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(parts, local, group=self.group)
        me = dist.get_rank(self.group)
        start = sum(len(p) for p in parts[:me])
        return [r for part in parts for r in part], slice(start, start + len(local))


def vllm_model(llm: Any) -> Any:
    """The model inside a colocated vLLM engine (external launcher: in this process)."""
    try:
        return llm.llm_engine.model_executor.driver_worker.model_runner.model
    except AttributeError as err:
        raise RuntimeError(
            f"cannot reach the model inside vLLM ({err}): VLLMEngine needs vLLM's in-process engine "
            "(distributed_executor_backend external_launcher, VLLM_ENABLE_V1_MULTIPROCESSING=0)"
        ) from err


def launcher_env() -> tuple[int, int]:
    """Set the variables vLLM's external launcher reads from this process's place in the training
    job (RANK, LOCAL_RANK, WORLD_SIZE, a rendezvous for one process); returns (world size, rank)."""
    initialised = dist.is_available() and dist.is_initialized()
    world, rank = (dist.get_world_size(), dist.get_rank()) if initialised else (1, 0)
    local = os.environ.get("LOCAL_RANK") or str(torch.cuda.current_device() if torch.cuda.is_available() else 0)
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": local})
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(sock.getsockname()[1])
    return world, rank


def write_config(model: nn.Module, folder: str) -> None:
    """The policy's transformers config (unquantized: vLLM gets dense weights) in ``folder``."""
    wrapped: Any = model
    base = wrapped.get_base_model() if hasattr(wrapped, "get_base_model") else wrapped
    config = base.config.__class__.from_dict(base.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    cls = next(c for c in type(base).__mro__ if not issubclass(c, FSDPModule))  # FSDP2 renames the class
    config.architectures = [cls.__name__]
    config.save_pretrained(folder)
