"""A policy export answers HealthBench rows: ``python -m lit_mrrml healthbench`` with the shipped
local config, its HFLocalBackend pointed at an SFTPolicy export, graded by the rule judge on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lit_mrrml import SFTPolicy
from lit_mrrml.cli import main
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.policy.masks import stop_token_ids
from lit_mrrml.testing import ChatServer, RubricJudgeRules
from tests.conftest import ROOT, TINY_TOKENIZER
from tests.healthbench.conftest import GRADED_ROWS, write_rows

LOCAL = ROOT / "configs" / "eval" / "healthbench_local.yaml"
MAX_TOKENS = 8
# untied: a random model with tied embeddings echoes its last prompt token ("\n"), the same text for every row
CONFIG = {**TINY_QWEN2, "tie_word_embeddings": False}


def export_policy(folder: Path) -> Path:
    """An untrained tiny SFT policy written as a Hugging Face folder."""
    torch.manual_seed(0)
    module = SFTPolicy(BackboneSpec(config=CONFIG, tokenizer=str(TINY_TOKENIZER)), training_mode="full")
    module.configure_model()
    return module.save_pretrained(folder)


def greedy_answer(folder: Path, messages: list[dict[str, str]]) -> str:
    """What the export says to ``messages``, generated here without the backend: greedy, stop ids, 8 tokens."""
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    stop = stop_token_ids(tokenizer, model.generation_config)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=MAX_TOKENS, do_sample=False, eos_token_id=stop)
    new = out[0, ids.shape[1] :].tolist()
    end = next((k for k, t in enumerate(new) if t in stop), len(new))  # the backend cuts at the first stop id
    return str(tokenizer.decode(new[:end], skip_special_tokens=True))


def test_an_sft_export_answers_healthbench_rows_through_the_local_backend(tmp_path) -> None:
    export = export_policy(tmp_path / "export")
    rows = write_rows(tmp_path / "rows.jsonl", GRADED_ROWS[:2])
    out = tmp_path / "out"
    with ChatServer(RubricJudgeRules()) as judge:
        args = [
            "healthbench", "--config", str(LOCAL), "--policy.init_args.batch_size=1",
            # the JSON form: a dotted `--policy.init_args.model.gguf_file=null` arrives as the string 'None'
            f"--policy.init_args.model={json.dumps({'path': str(export), 'gguf_file': None})}",
            f"--rows.path={rows}", "--rows.limit=null", f"--answers.max_tokens={MAX_TOKENS}",
            f"--judge.init_args.base_url={judge.url}", f"--output_dir={out}", "--progress=false",
        ]  # fmt: skip
        code = main(args)
        asked = [b["model"] for b in judge.bodies]
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["policy"]["id"] == f"hf:{export}"
    assert results["rows"]["selected"] == results["rows"]["graded"] == 2 and results["rows"]["unanswered"] == 0
    assert set(asked) == {"rule-judge"} and len(asked) == sum(len(r["rubrics"]) for r in GRADED_ROWS[:2])
    cached = [json.loads(line) for line in (out / "cache" / "answers.jsonl").read_text().splitlines()]
    assert len(cached) == 2 and all(r["policy"].startswith(f"hf:{export}@") for r in cached)  # weights fingerprinted
    assert all(0 < r["usage"]["completion"] <= MAX_TOKENS for r in cached)
    graded = {r["prompt_id"]: r for r in map(json.loads, (out / "graded.jsonl").read_text().splitlines())}
    answers = {graded[row["prompt_id"]]["answer"] for row in GRADED_ROWS[:2]}
    assert len(answers) == 2 and all(answers)
    for row in GRADED_ROWS[:2]:  # the export's own greedy answer, not the physicians' or another model's
        assert graded[row["prompt_id"]]["answer"] == greedy_answer(export, row["prompt"])
