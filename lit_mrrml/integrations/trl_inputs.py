"""TRL's prompts and completions as this project's chat messages and response texts.

TRL's GRPOTrainer calls a reward function as ``f(prompts=..., completions=..., completion_ids=...,
**dataset_columns)`` with the rows in one of two forms (``trl.data_utils.is_conversational``):
- standard: each prompt and each completion is a plain string;
- conversational: each prompt is a list of chat messages (``{"role": ..., "content": ...}``) and
  each completion a list of messages, one assistant message for a plain rollout and more when
  tools ran. A message's content is a string, None (a bare tool call) or a list of typed parts
  (``{"type": "text", "text": ...}``; other parts, such as images, carry no text).

A reward model scores (prompt messages ending with the user's turn, response text): a string
prompt becomes one user message, and a conversational completion becomes the text of its
assistant messages, joined by a blank line (tool results are not the policy's words: choice).
Pure Python: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lit_mrrml.errors import InputError

Message = dict[str, str]
RowKey = tuple[tuple[tuple[str, str], ...], str]  # (prompt as (role, content) pairs, response text)


def content_text(content: Any, where: str) -> str:
    """The text of one message's content: a string, None (no text) or a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping):
                raise InputError(f"{where}: a content part must be an object, got {type(part).__name__}")
            if part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise InputError(f"{where}: a text part needs a string 'text', got {type(text).__name__}")
                parts.append(text)
        return "".join(parts)
    raise InputError(f"{where}: content must be a string, a list of parts or null, got {type(content).__name__}")


def _message(message: Any, where: str) -> Message:
    if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
        raise InputError(f"{where}: a chat message must be an object with a string 'role', got {message!r:.80}")
    return {"role": message["role"], "content": content_text(message.get("content"), where)}


def prompt_messages(prompt: Any, where: str) -> list[Message]:
    """A TRL prompt as chat messages: a string is one user turn; messages keep their roles."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, Sequence) or not prompt:
        raise InputError(f"{where}: a prompt must be a string or a non-empty list of chat messages")
    return [_message(m, f"{where}[{i}]") for i, m in enumerate(prompt)]


def completion_text(completion: Any, where: str) -> str:
    """A TRL completion as response text: a string as it is, messages as their assistant text."""
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, Sequence):
        raise InputError(
            f"{where}: a completion must be a string or a list of chat messages, got {type(completion).__name__}"
        )
    messages = [_message(m, f"{where}[{i}]") for i, m in enumerate(completion)]
    return "\n\n".join(m["content"] for m in messages if m["role"] == "assistant" and m["content"])


def scored_rows(prompts: Sequence[Any], completions: Sequence[Any], caller: str) -> list[RowKey]:
    """The N (prompt, completion) rows of one call, normalised and hashable (the memo key)."""
    if len(prompts) != len(completions):
        raise InputError(f"{caller}: {len(prompts)} prompts and {len(completions)} completions: give one of each")
    rows = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        messages = prompt_messages(prompt, f"{caller}: prompts[{i}]")
        text = completion_text(completion, f"{caller}: completions[{i}]")
        rows.append((tuple((m["role"], m["content"]) for m in messages), text))
    return rows
