"""Kill the generator with SIGKILL at random moments, resume, and compare with an uninterrupted run.

The output must end up exactly as if nothing had happened: no corrupt or half line in any log,
no duplicated unit, prompt or drop, the same units as the reference run, and no more requests
paid for than the reference plus those in flight at each kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from lit_mrrml.generate import CellSelection
from lit_mrrml.testing import ChatServer, GenerationRules
from tests.conftest import MATRIX_PATH, ROOT
from tests.generate.conftest import TEMPLATES, make_job

CELLS = {"scenarios": ["emergency_referrals", "hedging"]}  # 120 cells: 600 requests, about 8 s at 4 x 50 ms
CONCURRENCY, KILLS = 4, 3  # and one SIGTERM


def config(path: Path, url: str, output: Path) -> Path:
    backend = {"class_path": "lit_mrrml.backends.OpenAIChatBackend", "init_args": {"base_url": url}}
    backend["init_args"].update(api_key_env=None, concurrency=CONCURRENCY)
    settings = {
        "matrix": str(MATRIX_PATH),
        "templates": TEMPLATES,
        "output_dir": str(output),
        "generator": {**backend, "init_args": {**backend["init_args"], "model": "rule-based"}},
        "judge": {**backend, "init_args": {**backend["init_args"], "model": "rule-judge"}},
        "cells": CELLS,
        "batch_size": 6,
        "progress": False,
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def records(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends in a half-written line"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def start(cfg: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lit_mrrml", "generate", "--config", str(cfg)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_growth(path: Path, beyond: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.is_file() and path.stat().st_size > beyond:
            return
        time.sleep(0.02)
    _, err = process.communicate()
    raise AssertionError(f"{path} did not grow (exit status {process.returncode}): {err.decode()[-2000:]}")


def test_sigkill_at_random_moments_loses_only_requests_in_flight(tmp_path):
    with ChatServer(GenerationRules(disagree_every=4)) as server:
        make_job(tmp_path / "reference", server, cells=CellSelection(**CELLS)).run()
        paid_reference, server.requests = server.requests, 0
        server.latency = 0.05
        cfg = config(tmp_path / "generate.yaml", server.url, tmp_path / "run")
        cache, rng = tmp_path / "run" / "cache" / "generator.jsonl", random.Random(0)
        for _ in range(KILLS):
            process = start(cfg)
            wait_for_growth(cache, cache.stat().st_size if cache.is_file() else 0, process)
            time.sleep(rng.uniform(0.0, 1.0))
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
        stopped = start(cfg)  # a scheduler's SIGTERM: a clean stop, with an up-to-date manifest
        wait_for_growth(cache, cache.stat().st_size, stopped)
        stopped.send_signal(signal.SIGTERM)
        _, err = stopped.communicate(timeout=60)
        assert stopped.returncode == 130 and b"rerun the same command to resume" in err, err.decode()[-2000:]
        interrupted = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert not interrupted["complete"] and interrupted["counts"]["units"] > 0
        final = start(cfg)
        out, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()[-3000:]
        paid = server.requests

    reference, run = tmp_path / "reference", tmp_path / "run"
    units = records(run / "units.jsonl")
    ids, keys = [u["id"] for u in units], [u["meta"]["key"] for u in units]
    assert len(ids) == len(set(ids)) and len(keys) == len(set(keys))
    prompts = [p["slot"] for p in records(run / "prompts.jsonl")]
    assert len(prompts) == len(set(prompts))
    drops = [d["key"] for d in records(run / "drops.jsonl")]
    assert len(drops) == len(set(drops))
    for name in ("generator", "judge"):
        records(run / "cache" / f"{name}.jsonl")  # whole lines only
    by_id = {u["id"]: u for u in units}
    expected = {u["id"]: u for u in records(reference / "units.jsonl")}
    assert by_id == expected and len(expected) > 0
    for split in ("train", "val", "test"):
        assert records(run / f"{split}.jsonl") == records(reference / f"{split}.jsonl")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"]["units"] == len(expected)
    assert paid_reference <= paid <= paid_reference + (KILLS + 1) * CONCURRENCY * 2  # generator and judge in flight
    assert b"generated data" in out
