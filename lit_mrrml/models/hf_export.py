"""Export a linear-head RewardModel as a standard Hugging Face ``*ForSequenceClassification`` folder.

The head is linear in the backbone's hidden state h (design/gprc.md): z = W h + c and
r_i = tau_i <z - z_x, a_i / ||a_i||> + b_i, so r_i = tau_i (a_i / ||a_i||)^T W (h_y - h_x) + b_i.
The score layer of the exported classifier is S = diag(tau) A_hat W, (L, H), without a bias: with
s(.) = S h at a sequence's last token, the project's reward is r = s(x, y) - s(x) + b, where s(x, y)
scores [prompt; answer] and s(x) the prompt alone (its last token is the anchor). c cancels in the
difference. The biases b, the dimensions and the matrix's scenario weights go to ``config.json``
under ``lit_mrrml``, and the model card (README.md, lit_mrrml.models.hf_card) gives the exact recipe;
``lit_mrrml.models.hf_rewards.exact_rewards`` runs it.

LoRA adapters are merged (W + scale * B A, computed without touching the live model). A
bitsandbytes-quantized base cannot be merged into full-precision weights, and an MLP head is not
linear: both are refused. A GGUF-loaded backbone holds dequantized weights and exports like any other.
Imports torch and transformers, not Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from lit_mrrml.errors import InputError
from lit_mrrml.losses.functional import unit_axes
from lit_mrrml.models.backbone import base_state_dict, load_tokenizer
from lit_mrrml.models.hf_card import model_card
from lit_mrrml.models.lora import dense, merged_weight

if TYPE_CHECKING:
    from lit_mrrml.modules.reward import RewardModel

HF_FORMAT = "lit_mrrml.seqcls/1"
MATRIX_FILE = "lit_mrrml_matrix.json"
PROBE = [{"role": "user", "content": "Is this a probe?"}]  # renders the template's closing tokens
PROBE_ANSWER = "Yes."
PROBE_ROWS = [  # digits, spacing, punctuation and non-ASCII text: where tokenizer classes differ
    (PROBE, PROBE_ANSWER),
    (
        [{"role": "system", "content": "You are a nurse."}, {"role": "user", "content": "Fever 39.5 C, 2x/day?  Ok"}],
        "Take 500 mg\n\n   then rest; Ünïcode — café 123456.",
    ),
]
ANCHOR_RULE = (
    "s(x) is the score of the prompt alone: the chat template's rendering of the prompt messages with "
    "add_generation_prompt=True, cut to the tokens it shares with the rendering of prompt + answer "
    "(add_generation_prompt=False), at least one token; no special tokens added by the tokenizer"
)


class HFExportError(InputError):
    """A reward model that cannot be written as a sequence classifier."""


def folded_score_weight(projection: Tensor, axes: Tensor, scale: Tensor) -> Tensor:
    """(L, H) the score layer S = diag(tau) A_hat W of a linear head: projection W (d, H), axes A
    (L, d) of any norm (A_hat: unit rows, as in anchored_rewards), scales tau (L,)."""
    return scale[:, None] * (unit_axes(axes) @ projection)


def check_exportable(model: RewardModel, source: str) -> None:
    """Refuse an MLP head, a quantized base and an unbuilt model, each in one line naming the fix."""
    if model.head_kind != "linear":
        raise HFExportError(
            f"{source}: the reward head is an MLP (head: {model.head_kind}), not linear in the hidden state, so it "
            "cannot be folded into a sequence classifier's score layer: export with --format lit "
            "(RewardModel.save_pretrained) and score with RewardModel.from_pretrained"
        )
    if model.spec.quantized:
        raise HFExportError(
            f"{source}: the backbone is bitsandbytes-quantized ({model.spec.quantization}), whose weights cannot be "
            "merged into a full-precision classifier: export from a non-quantized load (set backbone.quantization "
            "to null, in the checkpoint's hyperparameters or the export's reward_config.json, and load it again)"
        )
    if model.backbone is None or model.head is None:
        raise RuntimeError(f"{source}: the model has not been built (call configure_model() first)")


def merged_backbone_state(backbone: nn.Module) -> dict[str, Tensor]:
    """The backbone's weights under the plain base model's names, LoRA updates merged in, as dense
    detached copies (the live model is not changed)."""
    wrapped: Any = backbone
    base: Any = wrapped.get_base_model() if hasattr(wrapped, "get_base_model") else wrapped
    state = {k: dense(v).detach().clone() for k, v in base_state_dict(base).items()}
    for name, layer in base.named_modules():
        if hasattr(layer, "get_delta_weight") and hasattr(layer, "base_layer"):
            state[f"{name}.weight"] = merged_weight(layer).clone()
    return state


def end_tokens(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """The ids at the two scored positions of a probe row: the last token of [prompt; answer] and the
    last token of the prompt (the anchor), as the chat template renders them."""
    from lit_mrrml.models.hf_rewards import row_sequences

    full, anchor_length = row_sequences(tokenizer, PROBE, PROBE_ANSWER, max_length=1 << 20)
    return {full[-1], full[anchor_length - 1]}


def pooling_pad_token(tokenizer: PreTrainedTokenizerBase, source: str) -> int:
    """A pad id for the classifier's "last non-pad token" pooling: the tokenizer's own, unless it is a
    token the template ends a scored sequence with (a pad equal to EOS, say), then another special token."""
    ends = end_tokens(tokenizer)
    pad = tokenizer.pad_token_id
    if pad is not None and int(pad) not in ends:
        return int(pad)
    special = {i: str(t) for i, t in tokenizer.added_tokens_decoder.items() if t.special}  # named or not
    special.update(zip(tokenizer.all_special_ids, tokenizer.all_special_tokens, strict=True))
    for token_id in sorted(set(special) - ends):
        tokenizer.pad_token = special[token_id]
        return int(token_id)
    raise HFExportError(
        f"{source}: tokenizer {tokenizer.name_or_path!r} has no special token to pad with that is not the last "
        f"token of a scored sequence (ids {sorted(ends)}): the classifier's last-non-pad-token pooling would pick "
        "the wrong token; add a pad token to the backbone's tokenizer"
    )


def same_tokenization(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether two tokenizers give the probe rows the same token ids and anchors."""
    from lit_mrrml.models.hf_rewards import row_sequences

    return all(row_sequences(a, m, r, 1 << 20) == row_sequences(b, m, r, 1 << 20) for m, r in PROBE_ROWS)


def reload_class(tokenizer: PreTrainedTokenizerBase, directory: Path, source: str) -> str | None:
    """None when ``AutoTokenizer`` reloads the tokenizer saved in ``directory`` to the same token ids;
    else the name of the transformers class that does (for some model types, qwen2 among them,
    transformers loads the type's own tokenizer class whatever tokenizer_config.json says)."""
    from transformers import AutoTokenizer

    if same_tokenization(tokenizer, AutoTokenizer.from_pretrained(directory)):
        return None
    name = type(tokenizer).__name__
    if type(tokenizer).__module__.startswith("transformers.") and same_tokenization(
        tokenizer, type(tokenizer).from_pretrained(directory)
    ):
        return name
    raise HFExportError(
        f"{source}: the tokenizer saved in {directory} does not reload to the token ids the reward model was "
        f"trained with (neither through AutoTokenizer nor as {name}): the exported rewards would differ, and "
        "the folder is incomplete (delete it); export with --format lit instead"
    )


def classifier_config(model: RewardModel, pad_token_id: int) -> Any:
    """The backbone's config as a sequence classifier's: one label per dimension, raw scores
    (problem_type regression, so that vLLM applies no softmax), our pad id, no quantization config."""
    backbone: Any = model.backbone
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    config = type(base.config).from_dict(base.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    names = model.dimension_names
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    config.pad_token_id = pad_token_id
    config.problem_type = "regression"
    return config


def export_info(model: RewardModel) -> dict[str, Any]:
    """What ``config.json`` records under ``lit_mrrml``: enough to turn scores into rewards and totals."""
    assert model.head is not None
    weights = cast(Tensor | None, model.scenario_weights)  # (S, L) buffer, None without a matrix
    scenario_weights = (
        {s: [float(w) for w in row] for s, row in zip(model.scenario_ids, weights.tolist(), strict=True)}
        if weights is not None
        else {}
    )
    return {
        "format": HF_FORMAT,
        "dimensions": list(model.dimension_names),
        "bias": [float(b) for b in dense(model.head.bias).detach().float().cpu()],
        "reward": "r = s(x, y) - s(x) + bias, one value per dimension (id2label order)",
        "anchor": ANCHOR_RULE,
        "scenario_weights": scenario_weights,
        "matrix_hash": model.matrix_hash,
        "training_mode": model.training_mode,
        "source_dtype": model.spec.dtype,
    }


def build_classifier(model: RewardModel, pad_token_id: int) -> Any:
    """A transformers sequence classifier holding the merged backbone and the folded score layer."""
    assert model.backbone is not None and model.head is not None
    config = classifier_config(model, pad_token_id)
    classifier: Any = AutoModelForSequenceClassification.from_config(config, dtype=model.spec.torch_dtype)
    classifier.base_model.load_state_dict(merged_backbone_state(model.backbone), strict=True)
    score = getattr(classifier, "score", None)
    if not isinstance(score, nn.Linear) or score.bias is not None:
        raise HFExportError(
            f"{type(classifier).__name__} has no bias-free linear `score` layer to fold the reward head into"
        )
    head = model.head
    projection: Any = head.projection
    with torch.no_grad():
        weight = folded_score_weight(
            dense(projection.weight).float(), dense(head.axes).float(), dense(head.scale).float()
        )  # (L, H)
        score.weight.copy_(weight.to(score.weight.dtype))
    classifier.config.lit_mrrml = export_info(model)
    return classifier.eval()


def save_sequence_classifier(
    model: RewardModel, directory: str | Path, source: str = "save_pretrained(hf_format=True)"
) -> Path:
    """Write ``model`` (linear head) to ``directory`` as a ``*ForSequenceClassification`` folder: the
    classifier's config and safetensors weights, the tokenizer with its chat template (padding on
    the right with the config's pad id), README.md (the model card) and the matrix snapshot.
    ``source`` opens the error messages. Returns the folder."""
    check_exportable(model, source)
    out = Path(directory)
    tokenizer = load_tokenizer(model.spec)  # a fresh one: the pad token may change for the export
    tokenizer.padding_side = "right"
    classifier = build_classifier(model, pooling_pad_token(tokenizer, source))
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out)
    tokenizer.save_pretrained(out)
    classifier.config.lit_mrrml["tokenizer_class"] = reload_class(tokenizer, out, source)  # with config.json there
    classifier.config.save_pretrained(out)
    if model.matrix_snapshot is not None:
        from lit_mrrml.jsonio import dumps

        path = out / MATRIX_FILE
        path.write_text(dumps(model.matrix_snapshot, str(path), indent=2), encoding="utf-8")
    (out / "README.md").write_text(model_card(classifier.config, model.matrix_snapshot), encoding="utf-8")
    return out
