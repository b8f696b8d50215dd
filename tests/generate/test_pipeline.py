"""DataGenerator end to end against the rule-based loopback server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lit_mrrml.data import read_units
from lit_mrrml.data.datamodule import check_prompt_splits
from lit_mrrml.generate import AnswerOptions, CellSelection, ContaminationOptions, PromptOptions, Quota
from lit_mrrml.generate.store import ConfigMismatchError
from lit_mrrml.testing import ChatServer, FaultPlan, GenerationRules
from tests.generate.conftest import SMALL, make_job


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_run_writes_valid_ranked_units_splits_and_a_manifest(tmp_path, server, matrix):
    counters = make_job(tmp_path, server).run()
    assert counters.complete and counters.units == 40 and counters.prompts == 40 and not counters.drops
    units, skipped = read_units([tmp_path / "units.jsonl"], matrix)  # the reward model's own reader
    assert len(units) == 40 and not skipped
    assert all(len(u.responses) == 3 and u.id.startswith("gen-") for u in units)
    cells = Counter((u.dimension, u.scenario, u.discipline) for u in units)
    assert len(cells) == 40 and set(cells.values()) == {1}
    first = lines(tmp_path / "units.jsonl")[0]
    assert first["responses"][0].startswith("Quality mark: excellent") and "adequate" in first["responses"][1]
    assert first["meta"]["levels"] == ["good", "medium", "poor"] and first["meta"]["judge"]["agrees"] is True

    splits = {s: read_units([tmp_path / f"{s}.jsonl"], matrix)[0] for s in ("train", "val", "test")}
    check_prompt_splits(splits)  # no prompt in two splits
    assert sorted(u.id for s in splits.values() for u in s) == sorted(u.id for u in units)

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["matrix_hash"] == matrix.content_hash()
    assert manifest["generator"] == f"openai:rule-based@{server.url}" and manifest["judge"].startswith(
        "openai:rule-judge"
    )
    assert manifest["templates"]["version"] == "1.0" and manifest["seed"] == 0
    assert manifest["counts"]["units"] == 40 and manifest["counts"]["planned_units"] == 40
    assert manifest["counts"]["per_cell"]["safety/hedging/pediatrics"] == {"prompts": 1, "units": 1}
    assert manifest["judge_agreement"]["agreement_rate"] == 1.0 and manifest["contamination_drops"] == 0
    assert manifest["tokens"]["generator"]["completion"] > 0 and manifest["tokens"]["judge"]["prompt"] > 0
    assert manifest["splits"] == {s: len(v) for s, v in splits.items()}


def test_the_judge_sees_shuffled_unlabelled_answers_and_its_disagreements_are_dropped(tmp_path):
    with ChatServer(GenerationRules(disagree_every=3)) as server:
        counters = make_job(tmp_path, server).run()
        judge_requests = [b for b in server.bodies if b["model"] == "rule-judge"]
    dropped = counters.drops["judge_disagrees"]
    assert 0 < dropped < 40 and counters.units == 40 - dropped
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["judge_agreement"]["agreement_rate"] == pytest.approx(counters.units / 40)
    assert manifest["drops"]["unit"] == {"judge_disagrees": dropped}
    best_at = Counter()
    for body in judge_requests:
        text = body["messages"][-1]["content"]
        assert "intended" not in text and "medium" not in text.split("## Answers")[1].lower()
        best_at[text.index("excellent") > text.index("### Answer B")] += 1
    assert len(best_at) == 2  # the best answer is not always shown first


def test_near_duplicates_are_dropped_and_written_again_until_attempts_run_out(tmp_path):
    rules = GenerationRules(prompts=["My father has chest pain and is sweating, what should we do right now?"])
    with ChatServer(rules) as server:
        cells = CellSelection(dimensions=["safety"], scenarios=["emergency_referrals"], disciplines=["cardiology"])
        job = make_job(tmp_path, server, cells=CellSelection(**{**vars(cells), "prompts_per_cell": 3}))
        counters = job.run()
    assert counters.prompts == 1 and counters.units == 1
    assert counters.drops["near_duplicate"] == 2 * 3  # two slots, three attempts each
    drops = lines(tmp_path / "drops.jsonl")
    assert all(d["detail"].endswith(" with safety/emergency_referrals/cardiology/0") for d in drops)
    assert {d["slot"] for d in drops} == {f"safety/emergency_referrals/cardiology/{i}" for i in (1, 2)}
    assert not counters.failed and counters.complete


def test_prompts_that_overlap_an_evaluation_set_are_counted_as_contamination(tmp_path):
    lifted = "My two year old swallowed a button battery about an hour ago and seems fine, should I wait and see?"
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text(json.dumps({"prompt_id": "hb-1", "prompt": [{"role": "user", "content": lifted}]}) + "\n")
    with ChatServer(GenerationRules(prompts=[lifted])) as server:
        cells = CellSelection(dimensions=["safety"], scenarios=["emergency_referrals"], disciplines=["pediatrics"])
        guard = ContaminationOptions(files=[str(evaluation)])
        single = PromptOptions(knob_weights={"turns": {"multi": 0}})
        job = make_job(tmp_path / "out", server, cells=cells, contamination=guard, prompts=single)
        counters = job.run()
    assert counters.drops == {"contamination": 3} and counters.units == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["contamination_drops"] == 3 and manifest["counts"]["per_cell"] == {
        "safety/emergency_referrals/pediatrics": {"dropped_prompts": 3}
    }
    assert lines(tmp_path / "out" / "drops.jsonl")[0]["detail"] == "overlap 1.00 with eval.jsonl:hb-1"


def test_a_rerun_resumes_without_a_request_and_a_bigger_quota_adds_only_the_new_slots(tmp_path, server):
    make_job(tmp_path, server).run()
    before, units = server.requests, (tmp_path / "units.jsonl").read_text()
    again = make_job(tmp_path, server).run()
    assert server.requests == before and again.units == 0 and again.complete
    assert (tmp_path / "units.jsonl").read_text() == units

    more = CellSelection(**{**vars(SMALL), "quotas": [Quota(prompts=2, dimension="safety", scenario="hedging")]})
    grown = make_job(tmp_path, server, cells=more).run()
    assert grown.units == 10 and server.requests == before + 10 * 5  # prompt, best, two rewrites, judge
    ids = [u["id"] for u in lines(tmp_path / "units.jsonl")]
    assert len(ids) == 50 and len(set(ids)) == 50


def test_other_settings_in_the_same_folder_are_refused(tmp_path, server):
    make_job(tmp_path, server).run()
    with pytest.raises(ConfigMismatchError, match=r"seed differ.*another output_dir"):
        make_job(tmp_path, server, seed=1).run()
    with pytest.raises(ConfigMismatchError, match="answers"):
        make_job(tmp_path, server, answers=AnswerOptions(words=50)).run()
    assert make_job(tmp_path, server, seed=1, overwrite=True).run().units == 40


def test_failed_requests_are_left_for_the_next_run_which_completes_the_data(tmp_path, server):
    reference = make_job(tmp_path / "reference", server).run()
    server.faults.rates = {"503": 0.2}
    partial = make_job(tmp_path / "run", server, attempts=1).run()
    assert partial.failed > 0 and not partial.complete and partial.units < 40
    assert not json.loads((tmp_path / "run" / "manifest.json").read_text())["complete"]
    server.faults.rates = {}
    final = make_job(tmp_path / "run", server).run()
    assert final.complete and partial.units + final.units == reference.units == 40
    assert lines(tmp_path / "run" / "train.jsonl") == lines(tmp_path / "reference" / "train.jsonl")


def test_a_service_that_is_down_aborts_the_run_with_a_clear_error(tmp_path, server):
    from lit_mrrml.generate import GenerationAborted

    server.faults.rates = {"503": 1.0}
    with pytest.raises(GenerationAborted, match=r"all 32 requests of the last round failed.*rerun the same command"):
        make_job(tmp_path, server, attempts=2).run()
    server.faults.rates = {}
    assert make_job(tmp_path, server).run().units == 40


def test_unusable_judge_replies_and_unequal_lengths_are_dropped_with_their_reason(tmp_path, server):
    server.faults = FaultPlan(rates={"bad_content": 1.0}, models=["rule-judge"])
    cells = CellSelection(dimensions=["safety"], scenarios=["hedging"], disciplines=["pediatrics", "cardiology"])
    counters = make_job(tmp_path / "judge", server, cells=cells, attempts=2).run()
    # the prompt writer's and the answer writer's plain-text replies are usable; the judge's are not JSON
    assert counters.drops == {"judge_bad_reply": 2}

    server.faults = FaultPlan()
    server.replier = GenerationRules()
    short = lambda request: f"Quality mark: weak. Too short at {request.split('drops to the ')[1][:6]}."  # noqa: E731
    server.replier.rewrite = short  # type: ignore[method-assign]
    counters = make_job(tmp_path / "length", server, cells=cells).run()
    assert counters.drops == {"length_mismatch": 2}
    assert "length ratio" in lines(tmp_path / "length" / "drops.jsonl")[0]["detail"]


def test_multi_turn_prompts_k2_and_every_dimension(tmp_path, server):
    cells = CellSelection(dimensions=["safety"], scenarios=["hedging"], disciplines=["pediatrics"])
    job = make_job(
        tmp_path,
        server,
        cells=cells,
        prompts=PromptOptions(knob_weights={"turns": {"single": 0, "multi": 1}}),
        answers=AnswerOptions(k=2, dimensions="all"),
    )
    counters = job.run()
    units = lines(tmp_path / "units.jsonl")
    assert counters.units == 6 and sorted(u["dimension"] for u in units) == sorted(job.matrix.dimension_ids)
    assert all([m["role"] for m in u["prompt"]] == ["user", "assistant", "user"] for u in units)
    assert all(len(u["responses"]) == 2 and u["meta"]["levels"] == ["good", "poor"] for u in units)


def test_bad_settings_fail_before_any_request(tmp_path, server):
    with pytest.raises(ValueError, match=r"answers\.k must be 2 or 3"):
        make_job(tmp_path, server, answers=AnswerOptions(k=4))
    with pytest.raises(ValueError, match=r"answers.dimensions\[0\]: unknown dimension 'safty'; did you mean 'safety'"):
        make_job(tmp_path, server, answers=AnswerOptions(dimensions=["safty"]))
    assert server.requests == 0
