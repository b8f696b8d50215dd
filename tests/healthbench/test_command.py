"""``python -m lit_mrrml healthbench``: shipped configs, exit codes, and ctrl-C then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lit_mrrml.healthbench.command import build_parser, healthbench_command
from lit_mrrml.healthbench.rows import BUNDLED_ROWS, load_rows
from lit_mrrml.testing import ChatServer, FaultPlan, RubricJudgeRules
from tests.conftest import ROOT, assert_stopped_early_saying_why_once, dead_url
from tests.healthbench.conftest import GRADED_ROWS, write_rows
from tests.healthbench.test_evaluate import Stubborn
from tests.test_cli import run_cli

CONFIGS = sorted((ROOT / "configs" / "eval").glob("healthbench_*.yaml"))
LOOPBACK = ROOT / "configs" / "eval" / "healthbench_loopback.yaml"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_parses_and_builds(config, monkeypatch):
    monkeypatch.chdir(ROOT)
    parser = build_parser()
    job = parser.instantiate(parser.parse_args(["--config", str(config)]))
    assert job.judge is not None and job.output_dir.startswith("runs/healthbench/")


def flags(server: ChatServer, output, *extra: str) -> list[str]:
    return [
        "--config", str(LOOPBACK),
        f"--judge.init_args.base_url={server.url}", f"--output_dir={output}", "--progress=false", *extra,
    ]  # fmt: skip


def test_a_run_exits_0_and_prints_every_score_with_the_judge(tmp_path, capsys):
    with ChatServer(RubricJudgeRules()) as server:
        assert healthbench_command(flags(server, tmp_path / "out", "--rows.limit=5")) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "axis:accuracy" in out and out.count("openai:rule-judge@") >= 6
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["rows"]["limit"] == 5 and results["config"]["mode"] == "ideal"


def test_left_out_rows_exit_1_and_a_bad_config_exits_2(tmp_path, capsys):
    with ChatServer(Stubborn()) as server:
        rows = write_rows(tmp_path / "rows.jsonl", GRADED_ROWS)
        code = healthbench_command(
            flags(server, tmp_path / "out", f"--rows.path={rows}", "--judge.init_args.retry.max_attempts=2")
        )
        assert code == 1
        assert "1 row(s) with ungraded criteria were left out" in capsys.readouterr().err
        assert healthbench_command(flags(server, tmp_path / "out", "--rows.themes=[hedgin]")) == 2
        assert "did you mean 'hedging'" in capsys.readouterr().err


def test_help_documents_the_fields():
    out = run_cli("healthbench", "--help")
    assert out.returncode == 0, out.stderr
    assert "--rows.limit" in out.stdout and "--reward_check.model" in out.stdout and "--grader.template" in out.stdout


def verdict_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_a_consistent_cache_that_the_next_run_resumes(tmp_path):
    with ChatServer(RubricJudgeRules(), latency=0.02) as server:
        args = flags(server, tmp_path / "out", "--rows.limit=80", "--judge.init_args.concurrency=4")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        cache = tmp_path / "out" / "cache" / "verdicts.jsonl"
        # a command started with `&` by a shell without job control ignores SIGINT, and so would this
        # child: give it the default disposition, so that the test does not depend on how pytest was run
        process = subprocess.Popen([sys.executable, "-m", "lit_mrrml", "healthbench", *args], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=default_sigint)  # fmt: skip
        deadline = time.monotonic() + 120
        while len(verdict_lines(cache)) < 40 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "is cached; rerun the command to resume" in err
        assert not (tmp_path / "out" / "results.json").exists()
        saved = verdict_lines(cache)  # every line whole: json.loads would fail on a cut one
        assert cache.read_bytes().endswith(b"\n") and len(saved) >= 40
        total = sum(len(r.rubrics) for r in load_rows(BUNDLED_ROWS, limit=80) if r.ideal_completion is not None)
        assert len(saved) < total
        before = server.requests
        assert healthbench_command(args) == 0
        assert server.requests - before == total - len(saved)  # only what was missing
        keys = [(r["conversation"], r["criterion"]) for r in verdict_lines(cache)]
        assert len(keys) == len(set(keys)) == total
        reference = tmp_path / "reference"
        assert healthbench_command(flags(server, reference, "--rows.limit=80")) == 0
    resumed = json.loads((tmp_path / "out" / "results.json").read_text())["scores"]
    assert resumed == json.loads((reference / "results.json").read_text())["scores"]


def test_the_readme_dry_run_against_the_server_process(tmp_path):
    """``python -m lit_mrrml.testing --rules healthbench`` then the loopback config, as the README says."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lit_mrrml.testing", "--port", "0", "--rules", "healthbench"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.removeprefix("serving ")
        args = ["--config", str(LOOPBACK), f"--judge.init_args.base_url={url}", f"--output_dir={tmp_path}"]
        assert healthbench_command([*args, "--rows.limit=3", "--progress=false"]) == 0
    finally:
        server.terminate()
        server.wait(10)
    assert json.loads((tmp_path / "results.json").read_text())["rows"]["graded"] == 3


def run_module(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lit_mrrml", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_an_unreachable_judge_stops_the_run_early_and_says_why_once(tmp_path):
    url = dead_url()
    # backoffs of up to two minutes: retrying each of the 59 criteria 5 times would take many minutes,
    # so finishing within the subprocess timeout means the run stopped early
    out = run_module(
        "healthbench", "--config", str(LOOPBACK), f"--judge.init_args.base_url={url}", f"--output_dir={tmp_path}",
        "--rows.limit=5", "--progress=false", "--judge.init_args.retry.base_delay=120",
        "--judge.init_args.retry.max_delay=120",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert_stopped_early_saying_why_once(out.stderr, url)
    assert not (tmp_path / "results.json").exists()


def test_a_judge_that_goes_away_keeps_every_verdict_received_and_the_rerun_asks_only_the_rest(tmp_path, capsys):
    received = 15
    plan = FaultPlan(script=["ok"] * received, rates={"drop": 1.0})  # 15 verdicts, then the judge is gone
    with ChatServer(RubricJudgeRules(), plan) as server:
        # one request at a time: the 15 verdicts all arrive before the first dropped connection
        args = flags(server, tmp_path / "out", "--rows.limit=5", "--judge.init_args.concurrency=1",
                     "--judge.init_args.retry.base_delay=0.01")  # fmt: skip
        assert healthbench_command(args) == 1
        err = capsys.readouterr().err
        assert err.count("error: cannot reach") == 1 and "ServerDisconnectedError" in err
        cache = tmp_path / "out" / "cache" / "verdicts.jsonl"
        assert len(verdict_lines(cache)) == received
        server.faults = FaultPlan()
        before = server.requests
        assert healthbench_command(args) == 0
        assert server.requests - before == 59 - received
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"]["graded"] == 5


def test_an_api_key_in_place_of_its_variable_name_exits_2_and_is_written_nowhere(tmp_path):
    out = run_module(
        "healthbench", "--config", str(LOOPBACK), "--judge.init_args.api_key_env=sk-proj-abc123SECRET",
        f"--output_dir={tmp_path / 'out'}", "--progress=false",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "abc123SECRET" not in out.stdout + out.stderr
    assert (
        "error: api_key_env (model 'rule-judge' at http://127.0.0.1:8000/v1) must name the environment " in out.stderr
    )
    assert "Traceback" not in out.stderr and not (tmp_path / "out").exists()
