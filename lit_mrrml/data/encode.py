"""Tokenize ranked units with the backbone's chat template.

Each response becomes the assistant turn after the prompt messages. The anchor of a sequence is
its last prompt token (the end of the generation prompt), so that a causal backbone gives the
prompt's own representation at that position in the same forward pass. Over-long units keep
their responses whole and cut the prompt from the left, the same cut for all K responses.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from lit_mrrml.data.units import RankedUnit


@dataclass(frozen=True)
class EncodedUnit:
    """Token ids of a unit's K sequences (prompt + response k) and where their prompts end."""

    id: str
    input_ids: tuple[tuple[int, ...], ...]  # K sequences, best first
    anchors: tuple[int, ...]  # (K,) index of each sequence's last prompt token
    dimension: int
    scenario: int
    truncated: bool  # the prompt (or, past all prompt, a response's tail) was cut to fit


def render_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool
) -> list[int]:
    """Token ids of messages through the chat template (special tokens come from the template)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template: set one on the backbone's "
            "tokenizer (tokenizer_config.json 'chat_template') so prompts and responses can be rendered"
        )
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def encode_unit(
    unit: RankedUnit, tokenizer: PreTrainedTokenizerBase, max_length: int, dimension: int, scenario: int
) -> EncodedUnit:
    """Tokenize one unit: K sequences of at most ``max_length`` tokens with their anchors."""
    prompt = render_ids(tokenizer, unit.messages, generation_prompt=True)
    heads, tails = [], []
    for response in unit.responses:
        full = render_ids(tokenizer, [*unit.messages, {"role": "assistant", "content": response}], False)
        split = max(1, _common_prefix(prompt, full))  # templates may differ from the generation prompt
        heads.append(full[:split])
        tails.append(full[split:])
    budget = max_length - max(len(t) for t in tails)  # room left for the prompt
    truncated = budget < max(len(h) for h in heads)
    if budget < 1:  # a response alone is too long: keep one prompt token and the response's start
        tails = [t[: max_length - 1] for t in tails]
        budget = 1
    sequences = [(h[-budget:], t) for h, t in zip(heads, tails, strict=True)]
    return EncodedUnit(
        id=unit.id,
        input_ids=tuple(tuple(h + t) for h, t in sequences),
        anchors=tuple(len(h) - 1 for h, _ in sequences),
        dimension=dimension,
        scenario=scenario,
        truncated=truncated,
    )
