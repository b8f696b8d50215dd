"""VLLMEngine's own code, tested against a FAKE ``vllm`` module injected into ``sys.modules``.

vLLM cannot be installed on these CPU machines (its wheels pin a CUDA torch), so this file checks
our adapter only: the sampling settings it asks for, the layout of the outputs into Rollouts, the
engine's construction, the weight sync, and the error without vLLM. The fake ``LLM`` returns
scripted ``RequestOutput``-like objects; nothing here runs vLLM. The real check is the ``gpu``
test tests/gpu/test_vllm_grpo.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from lit_mrrml.errors import INPUT_ERROR, InputError
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import build_policy_model, merged_causal_lm
from lit_mrrml.policy.rollout import SamplingSettings
from lit_mrrml.policy.vllm_engine import VLLMApi, VLLMEngine, import_vllm
from lit_mrrml.policy.vllm_requests import request_seed, rollouts_from_outputs, sampling_params
from tests.test_cli import run_cli

LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "VLLM_ENABLE_V1_MULTIPROCESSING")


# --- the fake vllm ------------------------------------------------------------------------------


class Logprob:
    def __init__(self, logprob: float) -> None:
        self.logprob, self.rank = logprob, 1


class Completion:
    def __init__(self, index: int, token_ids: list[int], logprobs: list[float] | None) -> None:
        self.index, self.token_ids = index, token_ids
        self.logprobs = (
            None if logprobs is None else [{t: Logprob(v)} for t, v in zip(token_ids, logprobs, strict=True)]
        )


class RequestOutput:
    def __init__(self, prompt_token_ids: list[int], outputs: list[Completion]) -> None:
        self.prompt_token_ids, self.outputs = prompt_token_ids, outputs


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.n, self.seed, self.max_tokens = kwargs["n"], kwargs["seed"], kwargs["max_tokens"]


class FakeVLLMModel:
    """Records every ``load_weights`` call: the names and copies of the tensors."""

    def __init__(self) -> None:
        self.calls: list[dict[str, torch.Tensor]] = []

    def load_weights(self, weights: Any) -> set[str]:
        got = {name: tensor.detach().clone() for name, tensor in weights}
        self.calls.append(got)
        return set(got)


class FakeLLM:
    """Completion j of prompt i: tokens [100 + 10 i + j, stop] for j even, [100 + 10 i + j] * max_tokens
    (truncated) for j odd; the log-probability of a token t is -t / 1000."""

    made: ClassVar[list[FakeLLM]] = []

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs = model, kwargs
        self.config = json.loads((Path(model) / "config.json").read_text())
        self.runner_model = FakeVLLMModel()
        worker = types.SimpleNamespace(model_runner=types.SimpleNamespace(model=self.runner_model))
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(driver_worker=worker))
        self.requests: list[tuple[list[Any], list[Any]]] = []
        self.events: list[str] = []
        FakeLLM.made.append(self)

    def generate(self, prompts: list[Any], sampling_params: list[Any], use_tqdm: bool = True) -> list[RequestOutput]:
        self.requests.append((prompts, sampling_params))
        self.events.append("generate")
        outputs = []
        for i, (prompt, params) in enumerate(zip(prompts, sampling_params, strict=True)):
            stop = params.kwargs["stop_token_ids"][0]
            rows = [
                [100 + 10 * i + j, stop] if j % 2 == 0 else [100 + 10 * i + j] * params.max_tokens
                for j in range(params.n)
            ]
            completions = [Completion(j, r, [-t / 1000 for t in r]) for j, r in enumerate(rows)]
            outputs.append(RequestOutput(prompt["prompt_token_ids"], completions[::-1]))  # any order: sorted by index
        return outputs

    def reset_prefix_cache(self) -> None:
        self.events.append("reset_prefix_cache")

    def sleep(self, level: int = 1) -> None:
        self.events.append(f"sleep{level}")

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.events.append("wake_up")


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[FakeLLM]:
    """A fake ``vllm`` (and ``vllm.inputs``) in sys.modules; the launcher variables restored afterwards."""
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM  # type: ignore[attr-defined]
    vllm.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    for name in LAUNCHER_VARS:  # record each (set or not) so that teardown restores it
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.delenv(name)
    FakeLLM.made = []
    return FakeLLM


def api() -> VLLMApi:
    return VLLMApi(FakeLLM, FakeSamplingParams, dict)


# --- requests and outputs -----------------------------------------------------------------------


def test_missing_vllm_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(InputError, match=r"pip install 'lit_mrrml\[vllm\]'") as err:
        import_vllm()
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="VLLMEngine needs vLLM"):
        VLLMEngine()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_command_line_says_how_to_install_vllm(tmp_path):
    engine = "--model.engine=lit_mrrml.policy.vllm_engine.VLLMEngine"
    out = run_cli("fit", "--config", "configs/policy/tiny.yaml", engine, f"--trainer.default_root_dir={tmp_path}")
    assert out.returncode == INPUT_ERROR
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pip install 'lit_mrrml[vllm]'" in errors[0] and "Traceback" not in out.stderr


def test_sampling_params_are_the_trainers_distribution_and_nothing_else():
    params = sampling_params(api(), SamplingSettings(max_new_tokens=16, temperature=0.7, top_p=0.9), 4, [2, 5], 123)
    assert params.kwargs == {
        "n": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": 123,
        "max_tokens": 16,
        "min_tokens": 0,
        "stop_token_ids": [2, 5],
        "ignore_eos": False,
        "logprobs": 0,
        "detokenize": False,
        "skip_special_tokens": False,
    }
    greedy = sampling_params(api(), SamplingSettings(max_new_tokens=8, temperature=0.0, top_p=0.5), 1, [2], 0)
    assert greedy.kwargs["temperature"] == 0.0 and greedy.kwargs["top_p"] == 1.0


def test_request_seeds_differ_by_prompt_and_call_and_repeat():
    seeds = [request_seed(7, i) for i in range(3)] + [request_seed(8, 0)]
    assert len(set(seeds)) == 4 and all(0 <= s < 2**31 for s in seeds)
    assert request_seed(7, 1) == seeds[1]


def test_outputs_are_laid_out_like_hf_generate():
    # prompts [5, 6, 7] and [8], G = 2, stop id 2, pad 0. Completions (logprob -t / 1000 a token):
    #   p0: [11, 2] (stop), [12, 13, 14] (no stop: truncated)
    #   p1: [2] (stop at once), [15, 2, 16] (stop, then a token the mask must cut)
    outputs = [
        RequestOutput(
            [5, 6, 7], [Completion(1, [12, 13, 14], [-0.012, -0.013, -0.014]), Completion(0, [11, 2], [-0.011, -0.002])]
        ),
        RequestOutput([8], [Completion(0, [2], [-0.002]), Completion(1, [15, 2, 16], [-0.015, -0.002, -0.016])]),
    ]
    r = rollouts_from_outputs([[5, 6, 7], [8]], outputs, 2, [2], pad_id=0)
    assert r.prompt_ids.tolist() == [[5, 6, 7], [5, 6, 7], [0, 0, 8], [0, 0, 8]]
    assert r.prompt_mask.tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 0, 1]]
    assert r.completion_ids.tolist() == [[11, 2, 0], [12, 13, 14], [2, 0, 0], [15, 2, 0]]
    assert r.completion_mask.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert r.truncated.tolist() == [False, True, False, False]
    assert r.num_generations == 2 and r.lengths.tolist() == [2, 3, 1, 2]
    expected = torch.tensor([[-0.011, -0.002, 0], [-0.012, -0.013, -0.014], [-0.002, 0, 0], [-0.015, -0.002, 0]])
    assert r.sampler_logprobs is not None
    torch.testing.assert_close(r.sampler_logprobs, expected)
    assert r.select(torch.tensor([3])).sampler_logprobs.tolist() == [pytest.approx([-0.015, -0.002, 0])]  # type: ignore[union-attr]


def test_padding_is_never_a_stop_even_when_the_pad_id_is_one():
    # pad = stop = 2: a completion cut short without a stop ([12, 13], at vLLM's max_model_len) is
    # truncated, and the padding after it stays out of the mask.
    completions = [Completion(0, [11, 3, 4], [-1.0, -1.0, -1.0]), Completion(1, [12, 13], [-1.0, -1.0])]
    r = rollouts_from_outputs([[5]], [RequestOutput([5], completions)], 2, [2], pad_id=2)
    assert r.completion_ids.tolist() == [[11, 3, 4], [12, 13, 2]]
    assert r.completion_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert r.truncated.tolist() == [True, True]


def test_missing_logprobs_or_completions_are_refused():
    with pytest.raises(RuntimeError, match="logprobs=0"):
        rollouts_from_outputs(
            [[5]], [RequestOutput([5], [Completion(0, [2], None), Completion(1, [2], None)])], 2, [2], 0
        )
    with pytest.raises(RuntimeError, match="1 completions for a prompt, expected 2"):
        rollouts_from_outputs([[5]], [RequestOutput([5], [Completion(0, [2], [-1.0])])], 2, [2], 0)


# --- the engine ---------------------------------------------------------------------------------


def lora_policy(tiny_spec) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_policy_model(tiny_spec, "lora", LoraSpec(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def test_the_engine_is_built_colocated_with_processed_logprobs(fake_vllm, tiny_spec):
    engine = VLLMEngine(gpu_memory_utilization=0.25, max_model_len=512, enforce_eager=True)
    model = lora_policy(tiny_spec)
    rollouts = engine.generate(model, [[5, 6], [7]], 4, SamplingSettings(3, 1.0, 1.0), [2], 0, seed=11)
    (llm,) = fake_vllm.made
    assert llm.kwargs == {
        "load_format": "dummy",
        "skip_tokenizer_init": True,
        "generation_config": "vllm",
        "dtype": "float32",
        "gpu_memory_utilization": 0.25,
        "max_model_len": 512,
        "enforce_eager": True,
        "tensor_parallel_size": 1,
        "distributed_executor_backend": "external_launcher",
        "enable_sleep_mode": False,
        "enable_prefix_caching": True,
        "logprobs_mode": "processed_logprobs",
        "seed": 0,
    }
    assert llm.config["architectures"] == ["Qwen2ForCausalLM"] and llm.config["hidden_size"] == 64
    assert os.environ["RANK"] == "0" and os.environ["WORLD_SIZE"] == "1"
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    prompts, params = llm.requests[0]
    assert prompts == [{"prompt_token_ids": [5, 6]}, {"prompt_token_ids": [7]}]
    assert [p.seed for p in params] == [request_seed(11, 0), request_seed(11, 1)]
    assert all(p.n == 4 and p.max_tokens == 3 for p in params)
    # scripted completions: even j stop after one token, odd j run to max_tokens = 3
    assert rollouts.completion_ids[:4].tolist() == [[100, 2, 0], [101, 101, 101], [102, 2, 0], [103, 103, 103]]
    assert rollouts.truncated.tolist() == [False, True] * 4
    assert rollouts.sampler_logprobs is not None
    torch.testing.assert_close(rollouts.sampler_logprobs[4], torch.tensor([-0.11, -0.002, 0.0]))


def test_trained_weights_are_loaded_merged_before_the_first_draw_and_after_each_sync(fake_vllm, tiny_spec):
    engine = VLLMEngine()
    model = lora_policy(tiny_spec)
    sampling = SamplingSettings(2, 1.0, 1.0)
    engine.generate(model, [[5]], 2, sampling, [2], 0, seed=0)
    (llm,) = fake_vllm.made
    (loaded,) = llm.runner_model.calls
    export = merged_causal_lm(model, tiny_spec).state_dict()
    assert set(loaded) == set(export) - {"lm_head.weight"}  # tied: vLLM takes the embedding
    for name, tensor in loaded.items():
        assert tensor.shape == export[name].shape
        torch.testing.assert_close(tensor, export[name], rtol=0, atol=1e-6)
    assert llm.events == ["reset_prefix_cache", "generate"]
    engine.generate(model, [[5]], 2, sampling, [2], 0, seed=1)
    assert len(llm.runner_model.calls) == 1  # no optimizer step in between: nothing to load
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(1.0)  # an "optimizer step"
    engine.sync(model)
    engine.sync(model)  # two steps before the next draw: one load
    engine.generate(model, [[5]], 2, sampling, [2], 0, seed=2)
    assert len(llm.runner_model.calls) == 2 and len(fake_vllm.made) == 1
    changed = [n for n, t in llm.runner_model.calls[1].items() if not torch.equal(t, loaded[n])]
    assert changed == ["model.layers.0.self_attn.q_proj.weight"]


def test_sleep_mode_offloads_after_each_draw_and_wakes_before_the_next(fake_vllm, tiny_spec):
    engine = VLLMEngine(enable_sleep_mode=True)
    model = lora_policy(tiny_spec)
    for seed in (0, 1):
        engine.generate(model, [[5]], 2, SamplingSettings(2, 1.0, 1.0), [2], 0, seed=seed)
    (llm,) = fake_vllm.made
    assert llm.kwargs["enable_sleep_mode"] is True
    assert llm.events == ["reset_prefix_cache", "generate", "sleep1", "wake_up", "generate", "sleep1"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
    ],
)
def test_bad_settings_are_refused(fake_vllm, kwargs, match):
    with pytest.raises(InputError, match=match):
        VLLMEngine(**kwargs)


def test_tensor_parallel_must_divide_the_world(fake_vllm, tiny_spec):
    engine = VLLMEngine(tensor_parallel_size=2)
    with pytest.raises(InputError, match="tensor_parallel_size 2 must divide the world size 1"):
        engine.generate(lora_policy(tiny_spec), [[5]], 2, SamplingSettings(2, 1.0, 1.0), [2], 0, seed=0)
