"""Prompt text rendered by a chat template, read back into chat messages.

OpenRLHF sends each prompt as the text its policy's chat template made (``--apply_chat_template``),
while the reward model renders messages with its own template. A prompt in one of the formats below
is parsed back into its messages; a prompt with none of their markers is one user turn (a dataset
of raw questions). A prompt that has a format's markers but does not parse is refused, rather than
scored with template tokens inside a user turn.

- ChatML (Qwen, SmolLM2): ``<|im_start|>role\\ncontent<|im_end|>\\n`` ... ``<|im_start|>assistant\\n``
- Llama 3: ``<|begin_of_text|><|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>`` ...
  ``<|start_header_id|>assistant<|end_header_id|>\\n\\n``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Message = dict[str, str]


@dataclass(frozen=True)
class ChatFormat:
    """How one template family writes a turn, and the generation prompt a prompt text ends with."""

    name: str
    marker: str  # a prompt holding this text is in this format
    prefix: str  # text before the first turn (may be absent)
    turn: re.Pattern[str]  # one turn: group 1 the role, group 2 the content
    generation_prompt: str  # the opening of the assistant's turn, after the last message
    end: str  # the text that closes a turn (cut from the end of a response)


CHATML = ChatFormat(
    name="ChatML",
    marker="<|im_start|>",
    prefix="",
    turn=re.compile(r"<\|im_start\|>([^\n<]+)\n(.*?)<\|im_end\|>\n?", re.DOTALL),
    generation_prompt="<|im_start|>assistant\n",
    end="<|im_end|>",
)
LLAMA3 = ChatFormat(
    name="Llama 3",
    marker="<|start_header_id|>",
    prefix="<|begin_of_text|>",
    turn=re.compile(r"<\|start_header_id\|>([^<]+)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.DOTALL),
    generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
    end="<|eot_id|>",
)
FORMATS = (CHATML, LLAMA3)


def parse_turns(text: str, form: ChatFormat) -> list[Message]:
    """The messages of a prompt text in ``form``; ValueError when it is not a whole prompt in it."""
    pos = len(form.prefix) if text.startswith(form.prefix) else 0
    messages = []
    while (match := form.turn.match(text, pos)) is not None:
        messages.append({"role": match.group(1).strip(), "content": match.group(2)})
        pos = match.end()
    rest = text[pos:]
    if not messages or rest.strip() != form.generation_prompt.strip():
        where = f"after {len(messages)} turn(s), at {rest[:40]!r}"
        raise ValueError(
            f"looks like a {form.name} prompt but does not read as its turns followed by the generation "
            f"prompt {form.generation_prompt!r} ({where})"
        )
    return messages


def prompt_messages(text: str) -> list[Message]:
    """The messages of a prompt text: its turns in a known format, or one user turn of plain text."""
    for form in FORMATS:
        if form.marker in text:
            return parse_turns(text, form)
    return [{"role": "user", "content": text}]


def turn_ends(text: str) -> tuple[str, ...]:
    """The turn-closing markers of the formats a prompt text is in (none for plain text)."""
    return tuple(form.end for form in FORMATS if form.marker in text)


def strip_end_markers(text: str, markers: tuple[str, ...]) -> str:
    """``text`` without the end-of-turn and end-of-text markers (and the whitespace around them) that
    close it: a policy's decoded output keeps its EOS, which the reward model's template adds itself."""
    while True:
        trimmed = text.rstrip()
        marker = next((m for m in markers if m and trimmed.endswith(m)), None)
        if marker is None:
            return text
        text = trimmed[: -len(marker)]
