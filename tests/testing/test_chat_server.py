"""The loopback test server itself: its fault plans and the rule-based generation replies."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter

import pytest

from lit_mrrml.testing import ChatServer, FaultPlan, GenerationRules, chat_server
from lit_mrrml.testing.chat_server import FAULT_KINDS, FAULTS
from lit_mrrml.testing.cli import build_parser, fault_plan, main
from tests.conftest import ROOT


def test_per_request_faults_apply_to_the_first_attempts_of_each_body():
    plan = FaultPlan(per_request=["429", "500"])
    assert [plan.choose("a") for _ in range(3)] == ["429", "500", "ok"]
    assert [plan.choose("b") for _ in range(3)] == ["429", "500", "ok"]


def test_scripted_then_random_faults_and_the_model_filter():
    plan = FaultPlan(script=["timeout", "malformed"], rates={"503": 0.5}, seed=1)
    assert [plan.choose(str(i)) for i in range(2)] == ["timeout", "malformed"]
    drawn = Counter(plan.choose(str(i)) for i in range(2, 2002))
    assert set(drawn) == {"ok", "503"} and 900 < drawn["503"] < 1100
    judge_only = FaultPlan(rates={"bad_content": 1.0}, models=["judge"])
    assert judge_only.choose("x", "writer") == "ok" and judge_only.choose("x", "judge") == "bad_content"
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(script=["418"])


def test_the_rules_rank_answers_by_their_marks():
    rules = GenerationRules()
    request = (
        "## Task: rank\n## Answers\n### Answer A\nQuality mark: weak. x\n\n### Answer B\nQuality mark: excellent. y\n\n"
        "### Answer C\nQuality mark: adequate. z\n\nRank the answers A, B, C from best to worst"
    )
    reply = json.loads(rules([{"role": "user", "content": request}], {"seed": 1}))
    assert reply["ranking"] == ["B", "C", "A"]
    answer = rules([{"role": "user", "content": "## Task: answer\nLevel to reach: MEDIUM: x\nabout 12 words"}], {})
    assert answer.startswith("Quality mark: adequate.") and len(answer.split()) == 12


def test_help_lists_every_fault_kind_with_what_it_does(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])  # what ``python -m lit_mrrml.testing --help`` runs (the process test is below)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert set(FAULT_KINDS) == set(FAULTS) and "refusal" in FAULTS and "drop" in FAULTS
    for kind, meaning in FAULT_KINDS.items():
        assert f"\n  {kind:<12} {meaning}\n" in out, kind
        assert f"``{kind}``" in chat_server.__doc__, kind  # the module docstring lists the same kinds
    for flag in ("--per-request", "--script", "--rate KIND=SHARE", "--seed", "--hang-seconds", "--slow-seconds",
                 "--retry-after", "--fault-model"):  # fmt: skip
        assert flag in out, flag


def test_flags_build_the_fault_plan():
    parser = build_parser()
    argv = ["--per-request", "429,500", "--script", "drop", "--rate", "503=0.25", "--rate", "timeout=0.5",
            "--seed", "7", "--hang-seconds", "3", "--slow-seconds", "0.2", "--retry-after", "1.5",
            "--fault-model", "judge", "--fault-model", "writer"]  # fmt: skip
    plan = fault_plan(parser, parser.parse_args(argv))
    assert plan == FaultPlan(
        per_request=["429", "500"], script=["drop"], rates={"503": 0.25, "timeout": 0.5}, seed=7,
        hang_seconds=3.0, slow_seconds=0.2, retry_after=1.5, models=["judge", "writer"],
    )  # fmt: skip
    assert fault_plan(parser, parser.parse_args([])) == FaultPlan()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "418=0.1"], "argument --rate: unknown fault kind '418'; known: ok, 400, 429, 500, 503, timeout, "),
        (["--per-request", "429,teapot"], "argument --per-request: unknown fault kind 'teapot'; known: ok, 400, "),
        (["--rate", "500=1.5"], "argument --rate: '500=1.5': the share must be in [0, 1]"),
        (["--rate", "500=-0.1"], "argument --rate: '500=-0.1': the share must be in [0, 1]"),
        (["--rate", "500=nan"], "argument --rate: '500=nan': the share must be in [0, 1]"),
        (["--rate", "500"], "argument --rate: '500': write KIND=SHARE, for example 500=0.1"),
        (["--rate", "500=0.6", "--rate", "drop=0.5"], "error: --rate: the rates add up to 1.1, more than 1"),
        (["--rate", "500=0.1", "--rate", "500=0.2"], "error: --rate: each kind may be given once"),
    ],
)
def test_bad_fault_flags_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: python -m lit_mrrml.testing")


def test_rates_that_fit_are_accepted_and_plans_check_them_too():
    assert FaultPlan(rates={"500": 0.1, "503": 0.2, "drop": 0.7}).rates["drop"] == 0.7  # 1 up to rounding
    with pytest.raises(ValueError, match=r"the rates of \['500'\] must be shares in \[0, 1\]"):
        FaultPlan(rates={"500": 2.0})
    with pytest.raises(ValueError, match=r"the rates add up to 1\.5, more than 1"):
        FaultPlan(rates={"500": 1.0, "503": 0.5})


def test_the_server_process_serves_the_faults_its_flags_ask_for():
    command = [sys.executable, "-m", "lit_mrrml.testing", "--port", "0", "--rules", "echo",
               "--per-request", "429", "--retry-after", "7"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.removeprefix("serving ") + "/chat/completions"
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as first:
            urllib.request.urlopen(request, timeout=10)
        assert first.value.code == 429 and first.value.headers["Retry-After"] == "7"
        assert json.loads(first.value.read())["error"]["message"] == "injected 429"
        with urllib.request.urlopen(request, timeout=10) as second:  # the same body: its fault is spent
            assert json.loads(second.read())["choices"][0]["message"]["content"] == "echo: hi"
    finally:
        server.terminate()
        server.wait(10)


def test_a_drop_closes_the_connection_without_a_response():
    with ChatServer(faults=FaultPlan(per_request=["drop"])) as server:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = urllib.request.Request(f"{server.url}/chat/completions", body, {"Content-Type": "application/json"})
        with pytest.raises(http.client.RemoteDisconnected):
            urllib.request.urlopen(request, timeout=10)
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["choices"][0]["message"]["content"] == "echo: hi"
        assert server.faults_served == {"drop": 1, "ok": 1}
