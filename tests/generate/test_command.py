"""``python -m lit_mrrml generate``: --help documents every field, shipped configs parse, errors exit clearly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from lit_mrrml.generate.command import build_parser, generate_command
from lit_mrrml.testing import ChatServer, FaultPlan, GenerationRules
from tests.conftest import ROOT, assert_stopped_early_saying_why_once, dead_url
from tests.test_cli import run_cli

GENERATE_CONFIGS = sorted((ROOT / "configs" / "generate").glob("*.yaml"))


def test_help_documents_every_field():
    out = run_cli("generate", "--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for field in ("--matrix", "--output_dir", "--generator", "--judge", "--cells.quotas", "--answers.k",
                  "--answers.max_length_ratio", "--verify.agreement", "--dedup.threshold", "--contamination.files",
                  "--split.train", "--batch_size", "--seed", "--overwrite"):  # fmt: skip
        assert field in text, field
    documented = re.findall(r"^  (--[\w.]+) [^\n]*\n\s+([A-Z][^\n(]*)", text, re.MULTILINE)
    assert len(documented) > 30  # each option comes with its docstring sentence
    backend = run_cli("generate", "--generator.help", "OpenAIChatBackend")
    assert "--generator.api_key_env" in backend.stdout and "never the key itself" in backend.stdout


@pytest.mark.parametrize("config", GENERATE_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_generate_config_parses(config, monkeypatch):
    monkeypatch.chdir(ROOT)
    parsed = build_parser().parse_args(["--config", str(config)])
    assert parsed.matrix == "configs/matrix/medical_dsd.yaml" and parsed.generator.class_path.startswith("lit_mrrml.")
    init = build_parser().instantiate(parsed)
    assert init.generator.id  # backends build without loading a model or opening a connection


def test_print_config_shows_overrides():
    out = run_cli("generate", "--config", "configs/generate/offline.yaml", "--answers.k=2", "--print_config")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["answers"]["k"] == 2


def test_bad_values_exit_2_with_the_reason(tmp_path, capsys):
    code = generate_command(
        [
            "--config",
            str(ROOT / "configs/generate/offline.yaml"),
            f"--output_dir={tmp_path}",
            "--cells.dimensions=[saftey]",
        ]
    )
    assert code == 2 and "did you mean 'safety'" in capsys.readouterr().err


def test_a_run_from_the_command_line_writes_data_and_config(tmp_path):
    with ChatServer(GenerationRules()) as server:
        backend = (
            "{class_path: lit_mrrml.backends.OpenAIChatBackend, "
            f"init_args: {{model: m, base_url: '{server.url}', api_key_env: null}}}}"
        )
        code = generate_command(
            [
                "--matrix=configs/matrix/medical_dsd.yaml",
                f"--output_dir={tmp_path}",
                f"--generator={backend}",
                "--cells.dimensions=[safety]",
                "--cells.scenarios=[hedging]",
                "--progress=false",
            ]
        )
    assert code == 0
    assert len((tmp_path / "units.jsonl").read_text().splitlines()) == 10
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["cells"]["dimensions"] == ["safety"] and saved["generator"]["init_args"]["api_key_env"] is None


def test_an_unreachable_service_exits_1_and_says_how_to_resume(tmp_path, capsys):
    with ChatServer() as server:
        url = server.url
    backend = (
        "{class_path: lit_mrrml.backends.OpenAIChatBackend, init_args: {model: m, "
        f"base_url: '{url}', api_key_env: null, retry: {{max_attempts: 1}}}}}}"
    )
    code = generate_command(
        [
            "--matrix=configs/matrix/medical_dsd.yaml",
            f"--output_dir={tmp_path}",
            f"--generator={backend}",
            "--progress=false",
        ]
    )
    assert code == 1 and "rerun the same command" in capsys.readouterr().err


def test_an_unreachable_generator_stops_the_run_early_and_says_why_once(tmp_path):
    url = dead_url()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    # backoffs of up to two minutes: retrying each of the 64 prompt requests 5 times would take many
    # minutes, so finishing within the subprocess timeout means the run stopped early
    command = [
        sys.executable, "-m", "lit_mrrml", "generate", "--config", "configs/generate/loopback.yaml",
        f"--generator.init_args.base_url={url}", f"--judge.init_args.base_url={url}", f"--output_dir={tmp_path}",
        "--progress=false", "--generator.init_args.retry.base_delay=120", "--generator.init_args.retry.max_delay=120",
    ]  # fmt: skip
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 1, out.stderr
    assert_stopped_early_saying_why_once(out.stderr, url)
    manifest = json.loads((tmp_path / "manifest.json").read_text())  # written on the way out
    assert manifest["complete"] is False and manifest["counts"]["units"] == 0


def small_run(url: str, output, *extra: str) -> list[str]:
    backend = (
        "{class_path: lit_mrrml.backends.OpenAIChatBackend, init_args: {model: m, "
        f"base_url: '{url}', api_key_env: null, concurrency: 1, retry: {{max_attempts: 30, base_delay: 0.01}}}}}}"
    )
    return [
        "--matrix=configs/matrix/medical_dsd.yaml", f"--output_dir={output}", f"--generator={backend}",
        "--cells.dimensions=[safety]", "--cells.scenarios=[hedging]", "--progress=false", *extra,
    ]  # fmt: skip


def test_a_generator_that_goes_away_keeps_every_reply_received_for_the_rerun(tmp_path, capsys):
    received = 15  # the 10 prompts, then 5 of the 10 best answers: the run stops in the middle of a round
    plan = FaultPlan(script=["ok"] * received, rates={"drop": 1.0})
    with ChatServer(GenerationRules(), plan) as server:
        # one request at a time: the 15 replies all arrive before the first dropped connection; 30 attempts
        # a request: none of them gives up on its own before the 20 drops in a row stop the run
        assert generate_command(small_run(server.url, tmp_path)) == 1
        err = capsys.readouterr().err
        assert err.count("error: cannot reach") == 1 and "ServerDisconnectedError" in err
        assert json.loads((tmp_path / "manifest.json").read_text())["complete"] is False
        cached = (tmp_path / "cache" / "generator.jsonl").read_text().splitlines()
        assert len(cached) == received and all("error" not in json.loads(line) for line in cached)
        paid = [json.dumps(body, sort_keys=True) for body in server.bodies[:received]]
        server.faults, server.bodies = FaultPlan(), []
        assert generate_command(small_run(server.url, tmp_path)) == 0
        asked = {json.dumps(body, sort_keys=True) for body in server.bodies}
    assert not asked & set(paid)  # what arrived before the service went away came from the cache
    assert len((tmp_path / "units.jsonl").read_text().splitlines()) == 10


def test_an_api_key_in_place_of_its_variable_name_exits_2_and_is_written_nowhere(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "lit_mrrml", "generate", "--config", "configs/generate/loopback.yaml",
        "--generator.init_args.api_key_env=sk-proj-abc123SECRET", f"--output_dir={tmp_path / 'out'}",
        "--progress=false",
    ]  # fmt: skip
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 2, out.stderr
    assert "abc123SECRET" not in out.stdout + out.stderr
    assert (
        "error: api_key_env (model 'rule-based' at http://127.0.0.1:8000/v1) must name the environment " in out.stderr
    )
    assert "Traceback" not in out.stderr and not (tmp_path / "out").exists()  # no config.yaml anywhere
