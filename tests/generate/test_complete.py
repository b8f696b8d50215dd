"""The manifest's ``complete`` is honest: a repaired log or a run under way never reads as complete data."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lit_mrrml.appendlog import AppendLog
from lit_mrrml.generate import CellSelection, Quota
from lit_mrrml.generate.command import generate_command
from lit_mrrml.generate.manifest import mark_incomplete
from lit_mrrml.generate.requests import RequestBuilder
from lit_mrrml.testing import ChatServer, FaultPlan, GenerationRules
from tests.generate.conftest import SMALL, TEMPLATES, make_job


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def as_set(path: Path) -> set[str]:
    return {json.dumps(record, sort_keys=True) for record in lines(path)}


def manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def cut_last_line(path: Path) -> tuple[dict[str, Any], int]:
    """Cut ``path`` in the middle of its last line, as a kill during the write does: (the lost record, bytes left)."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    cut = start + (len(data) - start) // 2
    path.write_bytes(data[:cut])
    return json.loads(data[start:]), cut - start


def forget_replies(root: Path, unit: dict[str, Any], server: ChatServer) -> None:
    """Drop the cache lines of the replies behind ``unit`` (its best answer, rewrites and verdict)."""
    job = make_job(root, server)
    builder = RequestBuilder(job.matrix, job.templates, job.prompts, job.answers, job.verify, job.seed)
    slot = next(s for s in job.slots if s.key == unit["meta"]["slot"])
    args = (slot, unit["dimension"], unit["prompt"], unit["meta"]["key"])
    answers = [builder.answer(*args), *(builder.rewrite(*args, unit["responses"][0], lv) for lv in builder.levels[1:])]
    assert job.judge is not None
    forgotten = {
        "generator": {r.cache_key(job.generator.model_id) for r in answers},
        "judge": {builder.judge(*args, unit["responses"]).cache_key(job.judge.model_id)},
    }
    for name, keys in forgotten.items():
        path = root / "cache" / f"{name}.jsonl"
        kept = [line for line in path.read_text().splitlines(keepends=True) if json.loads(line)["key"] not in keys]
        assert len(path.read_text().splitlines()) - len(kept) == len(keys)  # each reply was there, once
        path.write_text("".join(kept))


def command(root: Path, url: str) -> list[str]:
    """``generate`` arguments of the same run as ``make_job`` (generator and judge at ``url``, one attempt)."""

    def backend(model: str) -> str:
        return (
            "{class_path: lit_mrrml.backends.OpenAIChatBackend, init_args: {"
            f"model: {model}, base_url: '{url}', api_key_env: null, retry: {{max_attempts: 1}}}}}}"
        )

    cells = ["--cells.dimensions=[safety,accuracy]", "--cells.scenarios=[emergency_referrals,hedging]"]
    return [
        "--matrix=configs/matrix/medical_dsd.yaml",
        f"--templates={TEMPLATES}",
        f"--output_dir={root}",
        f"--generator={backend('rule-based')}",
        f"--judge={backend('rule-judge')}",
        *cells,
        "--progress=false",
    ]


def test_a_cut_tail_keeps_the_manifest_incomplete_until_a_rerun_makes_the_lost_unit_again(tmp_path, caplog):
    out = tmp_path / "out"
    with ChatServer(GenerationRules()) as server:
        first = make_job(out, server).run()
        assert first.complete and manifest(out)["complete"] and manifest(out)["this_run"]["repaired"] == []
        assert manifest(out)["counts"]["unfinished_units"] == 0
        uninterrupted = as_set(out / "units.jsonl")
        lost, cut = cut_last_line(out / "units.jsonl")
        forget_replies(out, lost, server)

        server.faults = FaultPlan(rates={"500": 1.0})  # the same service (unit ids name it), failing
        with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
            assert generate_command(command(out, server.url)) == 1
        failed = manifest(out)
        assert failed["complete"] is False and failed["counts"]["unfinished_units"] == 1
        assert failed["this_run"]["repaired"] == [{"file": "units.jsonl", "bytes_dropped": cut}]
        warning = f"{out / 'units.jsonl'}: dropped {cut} bytes of an unfinished last line (a killed write)"
        assert warning in caplog.messages
        assert lost["id"] not in {u["id"] for u in lines(out / "units.jsonl")}

        server.faults, asked = FaultPlan(), server.requests
        assert generate_command(command(out, server.url)) == 0
        asked = server.requests - asked
    done = manifest(out)
    assert done["complete"] is True and done["this_run"]["repaired"] == [] and done["counts"]["unfinished_units"] == 0
    assert asked == 4 and as_set(out / "units.jsonl") == uninterrupted  # best answer, two rewrites, the judge


def test_a_run_marks_an_earlier_complete_manifest_incomplete_before_it_asks_anything(tmp_path):
    seen: list[bool] = []

    class Watching(GenerationRules):
        """Reads the manifest on disk while the run is under way, at every request."""

        def __call__(self, messages: list[dict[str, str]], body: dict[str, Any]) -> str:
            seen.append(manifest(tmp_path)["complete"])
            return super().__call__(messages, body)

    with ChatServer(GenerationRules()) as server:
        assert make_job(tmp_path, server).run().complete and manifest(tmp_path)["complete"] is True
        server.replier = Watching()
        more = CellSelection(**{**vars(SMALL), "quotas": [Quota(prompts=2, dimension="safety", scenario="hedging")]})
        grown = make_job(tmp_path, server, cells=more).run()
    assert len(seen) == 10 * 5 and not any(seen)  # false from the first request on
    assert grown.complete and manifest(tmp_path)["complete"] is True


def test_mark_incomplete_keeps_the_rest_of_the_manifest_and_removes_an_unreadable_one(tmp_path):
    path = tmp_path / "manifest.json"
    mark_incomplete(path)  # none yet: nothing to do
    assert not path.exists()
    path.write_text(json.dumps({"complete": True, "counts": {"units": 3}}))
    mark_incomplete(path)
    assert json.loads(path.read_text()) == {"complete": False, "counts": {"units": 3}}
    path.write_text('{"complete": true, "counts"')  # edited by hand, or written by something else
    mark_incomplete(path)
    assert not path.exists()


def test_repair_tail_cuts_an_unfinished_last_line_and_says_how_much(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text('{"n": 1}\n{"n": 2')
    log = AppendLog(path)
    with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
        assert log.repair_tail() == 7 and log.repair_tail() == 0
    assert path.read_text() == '{"n": 1}\n'
    assert caplog.messages == [f"{path}: dropped 7 bytes of an unfinished last line (a killed write)"]
