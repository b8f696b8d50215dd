"""``python -m lit_mrrml generate``: --help documents every field, shipped configs parse, errors exit clearly."""

from __future__ import annotations

import re

import pytest
import yaml

from lit_mrrml.generate.command import build_parser, generate_command
from lit_mrrml.testing import ChatServer, GenerationRules
from tests.conftest import ROOT
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
