"""The real scorer: a trained reward model behind the server's scorer interface.

The one module of ``lit_mrrml.serve`` that imports torch (and, through the reward model, Lightning
and transformers), when a ``ModelScorer`` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lit_mrrml.errors import InputError
from lit_mrrml.serve.protocol import Message, ModelCard

if TYPE_CHECKING:
    from lit_mrrml.modules.scores import RewardScores


def check_device(device: str) -> None:
    """Refuse a device torch does not know, or a CUDA device on a machine without one."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as err:
        raise InputError(f"--device {device!r}: {err}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device!r}: no CUDA device is visible here; use --device cpu")


class ModelScorer:
    """Scores rows with a reward model loaded from an export folder or a Lightning checkpoint."""

    def __init__(self, model: str, device: str = "cpu", max_length: int = 1024, batch_size: int = 32) -> None:
        from lit_mrrml.modules.loading import load_reward_model

        check_device(device)
        self.model = load_reward_model(model, device=device, what="--model")
        self.max_length, self.batch_size = max_length, batch_size
        tokenizer = self.model.tokenizer
        ends = tuple(dict.fromkeys(t for t in (tokenizer.eos_token, tokenizer.pad_token) if isinstance(t, str) and t))
        self.card = ModelCard(
            name=model,
            dimension_names=tuple(self.model.dimension_names),
            scenario_ids=tuple(self.model.scenario_ids),
            end_markers=ends,
        )

    def __call__(
        self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], scenarios: Sequence[str | None]
    ) -> RewardScores:
        """``RewardModel.score`` of the rows: rewards (N, L) and totals (N,), CPU tensors."""
        return self.model.score(prompts, responses, scenarios, batch_size=self.batch_size, max_length=self.max_length)
