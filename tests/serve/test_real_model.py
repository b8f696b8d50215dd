"""The server with a real (tiny) exported reward model: its numbers are ``RewardModel.score``'s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from lit_mrrml.errors import InputError
from lit_mrrml.modules.reward import RewardModel
from lit_mrrml.serve import verl
from lit_mrrml.serve.command import serve_command
from lit_mrrml.serve.scorer import ModelScorer
from tests.serve.fakes import loopback

PROMPTS = [
    [{"role": "user", "content": "My chest hurts and my left arm is numb. What should I do?"}],
    [{"role": "system", "content": "You are a careful clinician."}, {"role": "user", "content": "Is a cough urgent?"}],
]
RESPONSES = ["Call emergency services now.", "Usually not; see a doctor if it lasts three weeks."]
SCENARIOS = ["emergency_referrals", None]


@pytest.fixture(scope="module")
def scorer(served_export: Path) -> ModelScorer:
    return ModelScorer(str(served_export), max_length=256, batch_size=8)


@pytest.fixture(scope="module")
def direct(served_export: Path) -> Any:
    """What the model itself says, loaded on its own."""
    model = RewardModel.from_pretrained(served_export)
    return model.score(PROMPTS, RESPONSES, SCENARIOS, max_length=256)


def test_score_get_reward_and_verl_give_the_models_own_numbers(scorer, direct, monkeypatch):
    tokenizer = scorer.model.tokenizer
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in PROMPTS]
    items = [
        {"messages": p, "response": r, "scenario": s} for p, r, s in zip(PROMPTS, RESPONSES, SCENARIOS, strict=True)
    ]
    openrlhf = {  # as OpenRLHF sends it: templated prompts, the policy's output with its EOS, scenarios as labels
        "query": [t + r + tokenizer.eos_token for t, r in zip(texts, RESPONSES, strict=True)],
        "prompts": texts,
        "labels": ["emergency_referrals", ""],
    }
    extras = [{"messages": p, "scenario": s} for p, s in zip(PROMPTS, SCENARIOS, strict=True)]

    async def body() -> tuple[Any, ...]:
        async with loopback(scorer, scorer.card) as client:
            health = await (await client.get("/health")).json()
            own = await (await client.post("/score", json={"items": items})).json()
            rm = await (await client.post("/get_reward", json=openrlhf)).json()
            monkeypatch.setenv(verl.URL_ENV, str(client.make_url("/")))
            verl_batch = await asyncio.to_thread(verl.compute_score_batch, ["m", "m"], RESPONSES, [None, None], extras)
            return health, own, rm, verl_batch

    health, own, rm, verl_batch = asyncio.run(body())
    names = direct.dimension_names
    assert health["dimensions"] == names == own["dimensions"] and "emergency_referrals" in health["scenarios"]
    torch.testing.assert_close(torch.tensor(own["rewards"]), direct.rewards)
    torch.testing.assert_close(torch.tensor(own["totals"]), direct.totals)
    torch.testing.assert_close(torch.tensor(rm["rewards"]), direct.totals)
    torch.testing.assert_close(torch.tensor(rm["extra_logs"][f"reward/{names[0]}"]), direct.rewards[:, 0])
    torch.testing.assert_close(torch.tensor([r["score"] for r in verl_batch]), direct.totals)
    torch.testing.assert_close(torch.tensor([r[f"reward/{names[-1]}"] for r in verl_batch]), direct.rewards[:, -1])
    assert not torch.allclose(direct.totals[0], direct.totals[1])  # the rows differ: the check has teeth


def test_serve_answers_on_its_port_until_sigterm(served_export):
    """The command in this process (the main thread: it installs the signal handlers); a client thread
    waits for /health, scores a row, then sends the SIGTERM that stops it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    seen: dict[str, Any] = {}

    def client() -> None:
        try:
            seen["health"] = get_when_up(f"{url}/health")
            body = json.dumps({"items": [{"messages": PROMPTS[0], "response": RESPONSES[0]}]}).encode()
            request = urllib.request.Request(f"{url}/score", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                seen["score"] = json.loads(response.read())
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    argv = ["--model", str(served_export), "--port", url.rsplit(":", 1)[1], "--max_length", "128"]
    assert serve_command(argv) == 0
    thread.join(10)
    assert seen["health"]["status"] == "ok" and len(seen["score"]["rewards"][0]) == 6


def get_when_up(url: str) -> Any:
    """GET ``url`` once the server listens (it loads the model first)."""
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.URLError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def test_a_missing_model_or_a_bad_device_is_refused_before_serving(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--model: .*missing is neither an export folder nor a checkpoint"):
        serve_command(["--model", str(tmp_path / "missing")])
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device 'cuda': no CUDA device is visible here"):
            serve_command(["--model", str(tmp_path), "--device", "cuda"])
    with pytest.raises(InputError, match="--device 'tpu9': "):
        serve_command(["--model", str(tmp_path), "--device", "tpu9"])
