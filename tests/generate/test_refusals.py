"""A generator that refuses: its refusals are asked again, never cached as valid, never kept as data."""

from __future__ import annotations

import json
from pathlib import Path

from lit_mrrml.generate.command import generate_command
from lit_mrrml.generate.requests import RequestBuilder
from lit_mrrml.testing import ChatServer, FaultPlan, GenerationRules
from lit_mrrml.testing.chat_server import REFUSAL
from tests.generate.conftest import TEMPLATES, make_job

OUTPUTS = ("prompts", "units", "drops", "train", "val", "test")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def data(root: Path) -> dict[str, tuple]:
    """Each kept unit's prompt and answers, by id."""
    return {u["id"]: (u["prompt"], u["responses"]) for u in lines(root / "units.jsonl")}


def assert_no_refusal_kept(root: Path, besides: tuple[str, ...] = ()) -> None:
    """No output file (a missing one is empty) holds the refusal, but those named in ``besides``."""
    for name in OUTPUTS:
        path = root / f"{name}.jsonl"
        if name not in besides and path.is_file():
            assert REFUSAL not in path.read_text(encoding="utf-8"), path


def test_a_refusal_on_the_first_attempt_of_every_request_is_asked_again(tmp_path):
    with ChatServer(GenerationRules()) as server:
        make_job(tmp_path / "reference", server).run()
        server.faults = FaultPlan(per_request=["refusal"])  # prompts, answers, rewrites and the judge
        counters = make_job(tmp_path / "run", server).run()
        refused = server.faults_served["refusal"]
    assert refused == 40 * 5  # every distinct request: prompt, best answer, two rewrites, judge
    assert counters.complete and counters.units == 40 and counters.prompts == 40 and not counters.drops
    assert_no_refusal_kept(tmp_path / "run")
    made, reference = data(tmp_path / "run"), data(tmp_path / "reference")
    assert set(made) == set(reference)  # every unit made; asked again with the next seed, so other texts
    assert all(len(set(responses)) == 3 for _, responses in made.values())
    cache = lines(tmp_path / "run" / "cache" / "generator.jsonl")
    assert len(cache) == 40 * 4 and all("error" in r for r in cache if r["text"] == REFUSAL)


def test_a_generator_that_always_refuses_gets_its_prompts_dropped_as_bad_replies(tmp_path, capsys):
    with ChatServer(GenerationRules(), FaultPlan(rates={"refusal": 1.0})) as server:
        backend = (
            "{class_path: lit_mrrml.backends.OpenAIChatBackend, init_args: {model: m, "
            f"base_url: '{server.url}', api_key_env: null, retry: {{max_attempts: 2, base_delay: 0}}}}}}"
        )
        argv = ["--matrix=configs/matrix/medical_dsd.yaml", f"--templates={TEMPLATES}", f"--output_dir={tmp_path}"]
        argv += [f"--generator={backend}", "--cells.dimensions=[safety]", "--cells.scenarios=[hedging]"]
        code = generate_command([*argv, "--progress=false"])
        asked = server.requests
    out = capsys.readouterr().out
    # every slot is finished (out of prompt attempts): the documented exit status 0, with the drops shown
    assert code == 0 and asked == 10 * 3 * 2  # 10 slots, 3 prompts each, 2 attempts each
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"]["units"] == 0 and manifest["counts"]["prompts"] == 0
    assert manifest["drops"] == {"prompt": {"bad_reply": 30}, "unit": {}}
    assert manifest["this_run"]["drops"] == {"bad_reply": 30}
    assert "dropped prompts: bad_reply" in out and "0 / 10" in out
    drops = lines(tmp_path / "drops.jsonl")
    assert {d["detail"] for d in drops} == {
        f"gave up after 2 attempt(s) at {server.url}/chat/completions: bad reply: the reply is a refusal "
        f'or an AI disclaimer, not the prompt asked for: "{REFUSAL}"'
    }
    assert all(d["text"] == REFUSAL and d["reason"] == "bad_reply" for d in drops)
    cache = lines(tmp_path / "cache" / "generator.jsonl")
    assert len(cache) == 30 and all(
        r["text"] == REFUSAL and r["error"] == d["detail"] for r, d in zip(cache, drops, strict=True)
    )
    assert_no_refusal_kept(tmp_path, besides=("drops",))  # where the refused text is kept, as evidence


def test_a_refusal_an_earlier_run_cached_as_a_valid_reply_is_asked_again(tmp_path):
    with ChatServer(GenerationRules()) as server:
        job = make_job(tmp_path, server)
        builder = RequestBuilder(job.matrix, job.templates, job.prompts, job.answers, job.verify, job.seed)
        keys = [builder.prompt(slot, 0).request.cache_key(job.generator.model_id) for slot in job.slots]
        cached = [
            {"key": k, "text": REFUSAL, "finish_reason": "stop", "usage": {"prompt": 90, "completion": 9}} for k in keys
        ]
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / "generator.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cached))
        counters = job.run()
        prompt_requests = [b for b in server.bodies if "## Task: write-prompt" in b["messages"][-1]["content"]]
    assert len(prompt_requests) == 40 and counters.units == 40 and not counters.drops  # each asked again, once
    assert_no_refusal_kept(tmp_path)
    records = lines(tmp_path / "cache" / "generator.jsonl")
    fresh = {r["key"]: r for r in records[40:]}
    assert records[:40] == cached and all(fresh[k]["text"] != REFUSAL and "error" not in fresh[k] for k in keys)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["tokens"]["generator"]["completion"] >= 40 * 9  # what the refusals cost is still counted
