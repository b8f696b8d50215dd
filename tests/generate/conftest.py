"""Generation fixtures: a rule-based chat server on loopback and jobs pointed at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lit_mrrml.backends import OpenAIChatBackend, RetryPolicy
from lit_mrrml.generate import CellSelection, DataGenerator
from lit_mrrml.testing import ChatServer, GenerationRules
from tests.conftest import MATRIX_PATH, ROOT

TEMPLATES = str(ROOT / "configs" / "generate" / "templates" / "v1.yaml")
SMALL = CellSelection(dimensions=["safety", "accuracy"], scenarios=["emergency_referrals", "hedging"])  # 40 cells


@pytest.fixture
def server():
    with ChatServer(GenerationRules()) as running:
        yield running


def client(server: ChatServer, name: str = "rule-based", attempts: int = 3) -> OpenAIChatBackend:
    retry = RetryPolicy(max_attempts=attempts, base_delay=0.001, max_delay=0.01)
    return OpenAIChatBackend(name, base_url=server.url, api_key_env=None, retry=retry, concurrency=32)


def make_job(output: Path, server: ChatServer, judge: bool = True, **kwargs: Any) -> DataGenerator:
    kwargs.setdefault("cells", SMALL)
    kwargs.setdefault("progress", False)
    return DataGenerator(
        str(MATRIX_PATH),
        str(output),
        client(server, attempts=kwargs.pop("attempts", 3)),
        client(server, "rule-judge") if judge else None,
        templates=TEMPLATES,
        **kwargs,
    )
