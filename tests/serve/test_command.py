"""The serve command's flags, its listening address, and what the server modules import."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from lit_mrrml.errors import InputError
from lit_mrrml.serve.command import serve, serve_command
from tests.conftest import run_fresh

PROBE = """
import contextlib
import lit_mrrml.serve.app, lit_mrrml.serve.command, lit_mrrml.serve.verl
from lit_mrrml.serve.command import serve_command
with contextlib.suppress(SystemExit):
    serve_command(["--help"])
"""


def test_the_server_modules_and_help_never_import_torch_or_lightning():
    run = run_fresh(PROBE, ["torch", "lightning", "transformers", "peft"])
    report = {"heavy": sorted(run.imported), "help": run.output}
    assert report["heavy"] == []
    for flag in ("--model", "--host", "--port", "--device", "--batch_window_ms", "--max_batch_size",
                 "--max_concurrency", "--max_length", "--max_items", "/get_reward"):  # fmt: skip
        assert flag in report["help"], flag


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max_batch_size", "0"], "--max_batch_size: must be at least 1, got 0"),
        (["--max_concurrency", "-1"], "--max_concurrency: must be at least 1, got -1"),
        (["--batch_window_ms", "nan"], "--batch_window_ms: must be at least 0.0, got nan"),
        (["--port", "http"], "--port: expected int, got 'http'"),
        ([], "the following arguments are required: --model"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag_before_any_model_loads(flags, message, capsys):
    argv = flags if not flags else ["--model", "nowhere", *flags]
    with pytest.raises(SystemExit) as exit_info:
        serve_command(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_an_address_in_use_is_an_input_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"--host 127.0.0.1 --port {port}: cannot listen there"):
            asyncio.run(serve(web.Application(), "127.0.0.1", port, print))
