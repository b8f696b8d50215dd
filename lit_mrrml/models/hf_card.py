"""The model card (README.md) of a sequence-classifier export (lit_mrrml.models.hf_export).

It says what the scores are, how to get the project's exact rewards from them (the recipe of
lit_mrrml.models.hf_rewards, as a snippet that runs with transformers alone), why group-relative
RL needs only s(x, y), and lists the dimensions, their biases, the matrix and its scenario weights.
No torch: plain text from the classifier's config and the matrix snapshot.
"""

from __future__ import annotations

from typing import Any

SNIPPET_DIR = "path/to/this/folder"  # the snippet's folder, for a reader to replace
SNIPPET = """```python
import torch
from transformers import AutoModelForSequenceClassification, <TOKENIZER_CLASS>

model_dir = "<MODEL_DIR>"
tokenizer = <TOKENIZER_CLASS>.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
bias = torch.tensor(model.config.lit_mrrml["bias"])


def ids(messages, generation_prompt):
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


prompt = [{"role": "user", "content": "I have chest pain and my left arm feels numb. What should I do?"}]
answer = "Call emergency services now: these can be signs of a heart attack."
full = ids(prompt + [{"role": "assistant", "content": answer}], False)  # [prompt; answer]
alone = ids(prompt, True)  # the prompt with the generation prompt
n = 0
while n < min(len(full), len(alone)) and full[n] == alone[n]:
    n += 1  # the prompt's tokens are the ones both renderings share
with torch.no_grad():
    s_xy = model(torch.tensor([full])).logits[0]  # s(x, y), (L,)
    s_x = model(torch.tensor([full[: max(n, 1)]])).logits[0]  # s(x), (L,)
rewards = s_xy - s_x + bias  # (L,) in model.config.id2label order
```"""


def snippet(tokenizer_class: str | None) -> str:
    """The recipe as Python, loading the tokenizer with ``tokenizer_class`` (None: AutoTokenizer)."""
    return SNIPPET.replace("<TOKENIZER_CLASS>", tokenizer_class or "AutoTokenizer").replace("<MODEL_DIR>", SNIPPET_DIR)


def tokenizer_note(tokenizer_class: str | None) -> str:
    """A paragraph on loading the tokenizer, where AutoTokenizer would not give the trained token ids."""
    if tokenizer_class is None:
        return ""
    return (
        f"\n**Load the tokenizer with `transformers.{tokenizer_class}`**, not `AutoTokenizer`: for this model type "
        "transformers' AutoTokenizer picks another tokenizer class, which splits text differently from the one "
        "the reward model was trained with (`config.json`: `lit_mrrml.tokenizer_class`).\n"
    )


def _cell(text: Any) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def dimensions_table(names: list[str], bias: list[float], matrix: dict[str, Any] | None) -> str:
    """| index | id | name | description | bias | for every dimension, in score order."""
    known = {d["id"]: d for d in (matrix or {}).get("dimensions", [])}
    rows = ["| label | dimension | name | description | bias b |", "|---:|---|---|---|---:|"]
    for i, (name, b) in enumerate(zip(names, bias, strict=True)):
        info = known.get(name, {})
        rows.append(
            f"| {i} | `{name}` | {_cell(info.get('name', ''))} | {_cell(info.get('description', ''))} | {b:.6g} |"
        )
    return "\n".join(rows)


def weights_table(names: list[str], weights: dict[str, list[float]]) -> str:
    """| scenario | one weight column per dimension |, or a line saying the total is uniform."""
    if not weights:
        return f"No matrix was recorded: the total is the plain mean of the {len(names)} rewards."
    rows = ["| scenario | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---:|" * len(names)]
    rows += [f"| `{s}` | " + " | ".join(f"{w:.4g}" for w in row) + " |" for s, row in weights.items()]
    return "\n".join(rows)


def model_card(config: Any, matrix: dict[str, Any] | None) -> str:
    """README.md of the export folder whose classifier config is ``config``."""
    info = config.lit_mrrml
    names, bias = info["dimensions"], info["bias"]
    title = f"{matrix['name']} v{matrix['version']}" if matrix else "no rubric matrix"
    architecture = (config.architectures or ["the classifier"])[0]
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [reward-model, lit_mrrml, multi-dimensional-reward]
---

# Multi-dimensional reward model ({title})

A lit_mrrml reward model (GPRC-trained, linear head, `{info["training_mode"]}` training), exported as a
standard `{architecture}`{" (LoRA merged)" if info["training_mode"] == "lora" else ""}: one output per rubric
dimension (`id2label`), the reward head folded into the `score` layer. Load it with
`AutoModelForSequenceClassification.from_pretrained(this folder)`.

## What the scores are

The classifier scores a sequence at its last token: s = S h, S = diag(tau) A_hat W (one row per
dimension, no bias). The project's reward on dimension i is **anchored at the prompt**:

    r_i(x, y) = s_i(x, y) - s_i(x) + b_i

- s(x, y): the score of [prompt; answer], the chat template's rendering of the prompt messages
  followed by the answer as the assistant's turn (`add_generation_prompt=False`);
- {info["anchor"]} (its last token is the anchor);
- b: the biases below, also in `config.json` as `lit_mrrml.bias`.

Render with `tokenizer.apply_chat_template(..., tokenize=False)` and tokenize with
`add_special_tokens=False` (the template writes the special tokens). Pad on the right with the
config's `pad_token_id` ({config.pad_token_id}, the tokenizer's pad token): the classifier pools the
last token that is not a pad, which this id never is at a scored position. Precision: the weights
are `{info["source_dtype"]}`, as the backbone was trained.
{tokenizer_note(info.get("tokenizer_class"))}
## Exact rewards

This gives the rewards `RewardModel.score` gives, to float32 rounding (about 1e-5 of their scale: the
classifier computes the same sums in another order):

{snippet(info.get("tokenizer_class"))}

With lit_mrrml installed, `lit_mrrml.models.hf_rewards.exact_rewards("{SNIPPET_DIR}", prompts,
answers)` does the same for batches (right padding) and cuts over-long rows as `RewardModel.score`
does (`max_length=1024`: the prompt is cut from the left, the answer is kept).

## Group-relative RL (GRPO, GDPO) needs s(x, y) only

s(x) and b are the same for every rollout of one prompt, so they cancel from any advantage that is
normalised within the prompt's group (subtract the group mean, optionally divide by its standard
deviation), on each dimension (GDPO) and on a weighted total alike: score the rollouts with one
forward pass each and use the classifier's output as it is. Absolute rewards (thresholds,
comparisons across prompts, logging reward levels, a value function) need s(x) and b: use the
recipe above.

## Dimensions

{dimensions_table(names, bias, matrix)}

## Totals: scenario weights

A scenario's total reward is sum_i w_i r_i with its weights (`config.json`: `lit_mrrml.scenario_weights`;
the matrix snapshot is `lit_mrrml_matrix.json`, hash `{info["matrix_hash"]}`):

{weights_table(names, info["scenario_weights"])}

## Serving with vLLM

`config.json` sets `problem_type: regression`, so vLLM's classify pooler returns the raw scores (no
softmax): `vllm serve {SNIPPET_DIR} --runner pooling --convert classify` and `POST /classify`, or
`LLM(model=..., runner="pooling").classify(...)` offline; it pools the last token of each input.
Give it the token ids of the recipe (`TokensPrompt(prompt_token_ids=full)`), so that nothing adds
a BOS token, and for exact rewards the prompt's ids too. (lit_mrrml checks this folder with
transformers on CPU; the vLLM route follows vLLM's pooling-model documentation.)
"""
