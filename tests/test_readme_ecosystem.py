"""The README's sections "Bring your data", "Serve and export" and "Use it from TRL, verl or
OpenRLHF": every ``python -m lit_mrrml`` line and every curl line of their bash blocks runs as
written (in a scratch folder that links ``configs/`` and ``data/``; fit gets one-batch limits), and
their Python blocks run with the hub model swapped for a tiny local one."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lit_mrrml.cli import main
from tests.conftest import ROOT, TINY_TOKENIZER

README = (ROOT / "README.md").read_text(encoding="utf-8")
LIMITS = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
HUB_MODEL = '"HuggingFaceTB/SmolLM2-135M-Instruct"'


def section(heading: str) -> str:
    return README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(text: str, program: str) -> list[list[str]]:
    """The lines of the section's bash blocks that start with ``program``, continuations joined and
    trailing comments dropped."""
    found = []
    for block in blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(program):
                found.append(shlex.split(line, comments=True))
    return found


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Iterator[Path]:
    """A scratch folder with ``configs`` and ``data`` linked in, after ``fit --config configs/reward/tiny.yaml``."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("configs", "data"):
        (root / name).symlink_to(ROOT / name)
    before = Path.cwd()
    os.chdir(root)
    try:
        assert main(["fit", "--config", "configs/reward/tiny.yaml", *LIMITS]) == 0
        yield root
    finally:
        os.chdir(before)


def test_bring_your_data_commands_run_as_written(workspace):
    lines = commands(section("## Bring your data"), "python -m lit_mrrml")
    assert [line[3] for line in lines] == ["fit", "convert", "convert"]
    for line in lines:
        extra = [*LIMITS, "--trainer.default_root_dir=runs/byd"] if line[3] == "fit" else []
        assert main([*line[3:], *extra]) == 0, line
    units = [json.loads(x) for x in (workspace / "runs/data/safety_units.jsonl").read_text().splitlines()]
    assert len(units) == 41 and {u["dimension"] for u in units} == {"safety"}
    assert all(len(u["responses"]) == 2 for u in units)
    pairs = (workspace / "runs/data/train_trl.jsonl").read_text().splitlines()
    demo = [json.loads(x) for x in (ROOT / "data/demo/train.jsonl").read_text().splitlines()]
    assert len(pairs) == sum(len(u["responses"]) * (len(u["responses"]) - 1) // 2 for u in demo)


@pytest.fixture(scope="module")
def exported(workspace) -> Path:
    lines = commands(section("## Serve and export"), "python -m lit_mrrml export")
    assert len(lines) == 2
    for line in lines:
        assert main(line[3:]) == 0, line
    return workspace


def test_the_export_snippet_gives_the_reward_models_rewards(exported):
    from lit_mrrml import RewardModel

    namespace: dict = {}
    (snippet,) = blocks(section("## Serve and export"), "python")
    exec(compile(snippet, "README.md", "exec"), namespace)
    lit = RewardModel.from_pretrained(exported / "exports/tiny")
    expected = lit.score(namespace["chat"], ["Call emergency services now."]).rewards
    torch.testing.assert_close(namespace["rewards"], expected, atol=1e-5, rtol=1e-5)
    assert list(namespace["classifier"].config.id2label.values()) == lit.dimension_names


def test_the_server_answers_the_curl_lines(exported):
    (serve,) = commands(section("## Serve and export"), "python -m lit_mrrml serve")
    serve = [*serve[:-2], "--port", "0"] if serve[-2] == "--port" else serve
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, *serve[1:]], cwd=exported, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = re.search(r"on (http://[\d.]+:\d+)", line)
        assert url, line
        curls = commands(section("## Serve and export"), "curl")
        assert len(curls) == 4
        answers = {}
        for curl in curls:
            address = curl[2].replace("http://127.0.0.1:8000", url.group(1))
            body = curl[curl.index("-d") + 1].encode() if "-d" in curl else None
            request = urllib.request.Request(address, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                answers[address.split(url.group(1), 1)[1]] = json.loads(response.read())
    finally:
        server.terminate()
        server.wait(30)
    assert answers["/health"]["status"] == "ok"
    assert len(answers["/score"]["rewards"][0]) == len(answers["/score"]["dimensions"]) == 6
    assert set(answers["/get_reward"]) >= {"rewards", "scores", "extra_logs"}
    assert isinstance(answers["/verl/score"]["score"], float) and "reward/safety" in answers["/verl/score"]


@pytest.fixture(scope="module")
def tiny_hub_model(tmp_path_factory) -> str:
    """A tiny causal LM with its tokenizer in a folder: what the snippets' hub id stands for here."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from lit_mrrml.models.tiny import TINY_QWEN2

    folder = tmp_path_factory.mktemp("hub_model")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(**TINY_QWEN2)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(TINY_TOKENIZER).save_pretrained(folder)
    return repr(str(folder))


SMALL = {"report_to": "none", "use_cpu": True, "bf16": False, "save_strategy": "no", "max_steps": 1, "logging_steps": 1}


def run_trl_snippet(index: int, tiny_hub_model: str, config: str, settings: dict) -> dict:
    pytest.importorskip("trl")
    snippet = blocks(section("## Use it from TRL, verl or OpenRLHF"), "python")[index]
    assert HUB_MODEL in snippet and f"{config}(" in snippet
    snippet = snippet.replace(HUB_MODEL, tiny_hub_model).replace(f"{config}(", f"{config}(**SETTINGS, ")
    namespace: dict = {"SETTINGS": settings}
    exec(compile(snippet, "README.md", "exec"), namespace)
    return namespace


def test_the_trl_grpo_snippet_trains_on_every_dimension(exported, tiny_hub_model):
    small = {**SMALL, "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 6}
    namespace = run_trl_snippet(0, tiny_hub_model, "GRPOConfig", small)
    logged = {key for entry in namespace["trainer"].state.log_history for key in entry}
    assert {"rewards/safety/mean", "rewards/accuracy/mean"} <= logged


def test_the_gprc_reward_trainer_snippet_trains(exported, tiny_hub_model):
    namespace = run_trl_snippet(1, tiny_hub_model, "RewardConfig", {**SMALL, "per_device_train_batch_size": 2})
    history = namespace["trainer"].state.log_history
    assert namespace["trainer"].state.global_step == 1 and any("loss" in entry for entry in history)
