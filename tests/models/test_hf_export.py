"""The Hugging Face sequence-classifier export: folded score layer, merged LoRA, s(x, y) - s(x) + b
equal to RewardModel.score, the pad id the pooling needs, the model card, refusals, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lit_mrrml.cli import main
from lit_mrrml.errors import InputError
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.hf_card import SNIPPET_DIR
from lit_mrrml.models.hf_export import HFExportError, folded_score_weight, save_sequence_classifier
from lit_mrrml.models.hf_rewards import exact_rewards, load_classifier, row_sequences
from lit_mrrml.models.tiny import CHATML_TEMPLATE
from lit_mrrml.modules.reward import RewardModel
from tests.conftest import TINY_TOKENIZER, run_fresh
from tests.models.test_export import perturb
from tests.modules.test_reward_model import make_data, make_model, trainer

PROMPTS = [
    [{"role": "user", "content": "I have chest pain. What should I do?"}],
    [
        {"role": "system", "content": "You are a careful nurse."},
        {"role": "user", "content": "Fever of 39 C for two days, what now?"},
    ],
    [
        {"role": "user", "content": "Dose?"},
        {"role": "assistant", "content": "Of which medicine?"},
        {"role": "user", "content": "Paracetamol for an adult, please."},
    ],
    [{"role": "user", "content": "Short?"}],
    [{"role": "user", "content": "Is it safe to take ibuprofen while pregnant or breastfeeding?"}],
]
ANSWERS = [
    "Call emergency services now.",
    "Drink fluids, rest, and see a doctor if it lasts longer than three days or you feel worse.",
    "The usual adult dose is written on the label.",
    "Yes.",
    "Ask your doctor or pharmacist first.",
]
TOL = {"atol": 1e-5, "rtol": 1e-5}


def built(spec: BackboneSpec, matrix, **kwargs) -> RewardModel:
    """A tiny reward model, built and moved off its initial weights (head biases too)."""
    model = make_model(spec, matrix, **kwargs)
    model.configure_model()
    perturb(model)
    with torch.no_grad():
        model.head.bias.add_(torch.randn_like(model.head.bias))
    return model.eval()


def test_the_score_layer_is_diag_tau_times_unit_axes_times_w():
    projection = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])  # W (d=2, H=3)
    axes = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # unit rows: [0.6, 0.8] and [0, 1]
    scale = torch.tensor([2.0, 0.5])
    expected = torch.tensor([[1.2, 1.6, 2.4], [0.0, 0.5, 0.0]])  # 2 * [0.6, 0.8, 1.2] and 0.5 * [0, 1, 0]
    torch.testing.assert_close(folded_score_weight(projection, axes, scale), expected)


@pytest.mark.parametrize("mode", ["full", "lora"])
@pytest.mark.parametrize("model_type", ["qwen2", "llama"])
def test_the_classifier_gives_the_projects_rewards(mode, model_type, tiny_spec, matrix, tmp_path):
    torch.manual_seed(0)
    spec = BackboneSpec(config=dict(tiny_spec.config, model_type=model_type), tokenizer=tiny_spec.tokenizer)
    model = built(spec, matrix, training_mode=mode)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = model.score(PROMPTS, ANSWERS).rewards  # (5, 6)
    out = model.save_pretrained(tmp_path / "hf", hf_format=True)

    for key, value in model.state_dict().items():  # the live model is not touched (no merge in place)
        assert torch.equal(value, before[key]), key
    assert {"config.json", "model.safetensors", "README.md", "lit_mrrml_matrix.json"} <= {p.name for p in out.iterdir()}
    weights = load_file(str(out / "model.safetensors"))
    assert not any("lora_" in k or "base_layer" in k for k in weights) and "score.weight" in weights

    classifier = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(classifier).__name__ == {"qwen2": "Qwen2", "llama": "Llama"}[model_type] + "ForSequenceClassification"
    assert classifier.config.id2label == dict(enumerate(matrix.dimension_ids))
    assert classifier.config.label2id == {d: i for i, d in enumerate(matrix.dimension_ids)}
    info = classifier.config.lit_mrrml
    assert info["dimensions"] == list(matrix.dimension_ids)
    assert info["bias"] == pytest.approx(model.head.bias.tolist())
    assert info["scenario_weights"]["emergency_referrals"] == pytest.approx(list(matrix.weights("emergency_referrals")))

    # transformers loads its Qwen2 tokenizer class for a qwen2 folder, which splits the tiny tokenizer's
    # text otherwise ("39" as two digits): the export records the class that gives the trained ids
    assert info["tokenizer_class"] == {"qwen2": "TokenizersBackend", "llama": None}[model_type]
    tokenizer = load_classifier(out)[1]
    assert tokenizer.chat_template and tokenizer.padding_side == "right"
    assert tokenizer.pad_token_id == classifier.config.pad_token_id
    for batch_size in (1, 3):  # one row a forward; right-padded batches of 3 and 2 rows (2 sequences a row)
        got = exact_rewards(out, PROMPTS, ANSWERS, batch_size=batch_size)
        torch.testing.assert_close(got, expected, **TOL)
    assert float((expected - expected.mean(0)).abs().max()) > 1e-3  # the rows differ: the check is not trivial

    # by hand, unpadded: s(x, y) at the last token, s(x) at the anchor, plus b
    full, n = row_sequences(tokenizer, PROMPTS[1], ANSWERS[1], max_length=1024)
    with torch.no_grad():
        s_xy = classifier(torch.tensor([full])).logits[0]
        s_x = classifier(torch.tensor([full[:n]])).logits[0]
    torch.testing.assert_close(s_xy - s_x + torch.tensor(info["bias"]), expected[1], **TOL)


def test_over_long_rows_are_cut_as_the_reward_model_cuts_them(tiny_spec, matrix, tmp_path):
    torch.manual_seed(0)
    model = built(tiny_spec, matrix, training_mode="full")
    out = model.save_pretrained(tmp_path / "hf", hf_format=True)
    for max_length in (24, 8):  # 24: the prompt is cut from the left; 8: the answers are cut too
        expected = model.score(PROMPTS, ANSWERS, max_length=max_length).rewards
        torch.testing.assert_close(exact_rewards(out, PROMPTS, ANSWERS, 2, max_length), expected, **TOL)


def test_the_model_card_recipe_runs_as_written_and_gives_the_rewards(tiny_spec, matrix, tmp_path):
    torch.manual_seed(0)
    model = built(tiny_spec, matrix, training_mode="full")
    out = model.save_pretrained(tmp_path / "hf", hf_format=True)
    card = (out / "README.md").read_text()
    for dimension, bias in zip(matrix.dimension_ids, model.head.bias.tolist(), strict=True):
        assert f"| `{dimension}` |" in card and f"{bias:.6g}" in card
    assert "s_i(x, y) - s_i(x) + b_i" in card and "GRPO" in card and matrix.content_hash() in card
    (snippet,) = re.findall(r"```python\n(.*?)```", card, re.S)
    namespace: dict = {}
    exec(snippet.replace(SNIPPET_DIR, str(out)), namespace)  # the card's own code, unchanged
    expected = model.score([namespace["prompt"]], [namespace["answer"]]).rewards[0]
    torch.testing.assert_close(namespace["rewards"], expected, **TOL)


def test_a_pad_token_that_ends_scored_sequences_is_replaced_for_the_pooling(tiny_spec, matrix, tmp_path):
    # a template with no newline after <|im_end|>, and the pad token set to <|im_end|> (pad = EOS, as
    # many tokenizers have it): every [prompt; answer] ends with the pad id, so the classifier's
    # "last non-pad token" pooling would skip the token the reward model scores
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER)
    tokenizer.chat_template = CHATML_TEMPLATE.replace(" + '\\n' }}{% endfor %}", " }}{% endfor %}")
    tokenizer.pad_token = "<|im_end|>"
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    spec = BackboneSpec(config=dict(tiny_spec.config), tokenizer=str(tmp_path / "tokenizer"))
    torch.manual_seed(0)
    model = built(spec, matrix, training_mode="full")
    assert model.tokenizer.pad_token_id == model.tokenizer.eos_token_id
    full, _ = row_sequences(model.tokenizer, PROMPTS[0], ANSWERS[0], 1024)
    assert full[-1] == model.tokenizer.pad_token_id

    out = model.save_pretrained(tmp_path / "hf", hf_format=True)
    torch.testing.assert_close(exact_rewards(out, PROMPTS, ANSWERS, 3), model.score(PROMPTS, ANSWERS).rewards, **TOL)
    config = json.loads((out / "config.json").read_text())
    assert config["pad_token_id"] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert load_classifier(out)[1].pad_token == "<|endoftext|>"


def test_an_mlp_head_is_refused(tiny_spec, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, head="mlp")
    model.configure_model()
    with pytest.raises(HFExportError, match=r"the reward head is an MLP .* export with --format lit"):
        model.save_pretrained(tmp_path / "hf", hf_format=True)
    assert not (tmp_path / "hf").exists()


def test_a_quantized_base_is_refused(matrix, tmp_path):
    pytest.importorskip("bitsandbytes")
    from lit_mrrml.models.backbone import QuantizationSpec, build_backbone
    from lit_mrrml.models.tiny import TINY_QWEN2

    folder = tmp_path / "pretrained"
    config = dict(TINY_QWEN2, hidden_size=128, intermediate_size=256)  # wide enough for 64-weight 4-bit blocks
    build_backbone(BackboneSpec(config=config, tokenizer=str(TINY_TOKENIZER))).save_pretrained(folder)
    spec = BackboneSpec(path=str(folder), tokenizer=str(TINY_TOKENIZER), quantization=QuantizationSpec(bits=4))
    model = make_model(spec, matrix, training_mode="frozen")
    model.configure_model()
    with pytest.raises(HFExportError, match=r"bitsandbytes-quantized .* export from a non-quantized load"):
        save_sequence_classifier(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_an_unbuilt_model_and_a_backbone_less_hf_export_are_refused(tiny_spec, matrix, tmp_path):
    with pytest.raises(RuntimeError, match="configure_model"):
        make_model(tiny_spec, matrix).save_pretrained(tmp_path / "a", hf_format=True)
    with pytest.raises(ValueError, match="always holds the backbone"):
        make_model(tiny_spec, matrix).save_pretrained(tmp_path / "b", include_backbone=False, hf_format=True)


def test_exact_rewards_refuses_rows_that_do_not_pair_and_foreign_folders(tiny_spec, matrix, tmp_path):
    torch.manual_seed(0)
    out = built(tiny_spec, matrix, training_mode="full").save_pretrained(tmp_path / "hf", hf_format=True)
    with pytest.raises(InputError, match="exact_rewards: 2 prompts and 1 responses"):
        exact_rewards(out, PROMPTS[:2], ANSWERS[:1])
    with pytest.raises(InputError, match="row 0: the prompt must be chat messages ending with the user's turn"):
        exact_rewards(out, [[{"role": "assistant", "content": "Hi"}]], ["Hello"])
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    del plain.config.lit_mrrml
    plain.save_pretrained(tmp_path / "plain")
    with pytest.raises(InputError, match=r"config\.json: no 'lit_mrrml' entry"):
        load_classifier(tmp_path / "plain")


# ---- the command ------------------------------------------------------------------------------
def test_export_command_writes_both_formats_from_a_checkpoint_and_from_an_export(
    tiny_spec, unit_files, matrix, tmp_path, capsys
):
    torch.manual_seed(0)
    model = make_model(tiny_spec, matrix, training_mode="full")
    fit = trainer(tmp_path, max_steps=1, limit_val_batches=0)
    fit.fit(model, datamodule=make_data(tiny_spec, unit_files))
    ckpt = tmp_path / "step1.ckpt"
    fit.save_checkpoint(ckpt)
    expected = model.eval().score(PROMPTS, ANSWERS).rewards

    assert main(["export", "--ckpt", str(ckpt), "--output", str(tmp_path / "hf")]) == 0
    assert f"exported {ckpt} (hf format) to {tmp_path / 'hf'}" in capsys.readouterr().out
    torch.testing.assert_close(exact_rewards(tmp_path / "hf", PROMPTS, ANSWERS, 3), expected, **TOL)

    assert main(["export", "--ckpt", str(ckpt), "--output", str(tmp_path / "lit"), "--format", "lit"]) == 0
    lit = RewardModel.from_pretrained(tmp_path / "lit")
    torch.testing.assert_close(lit.score(PROMPTS, ANSWERS).rewards, expected, **TOL)

    assert main(["export", "--ckpt", str(tmp_path / "lit"), "--output", str(tmp_path / "hf2")]) == 0
    torch.testing.assert_close(exact_rewards(tmp_path / "hf2", PROMPTS, ANSWERS, 3), expected, **TOL)


@pytest.fixture
def mlp_export(tiny_spec, matrix, tmp_path) -> Path:
    model = make_model(tiny_spec, matrix, head="mlp", training_mode="full")
    model.configure_model()
    return model.save_pretrained(tmp_path / "mlp")


def test_export_command_bad_input_is_one_line_and_exit_2(tmp_path, capsys, mlp_export):
    missing, text, busy = tmp_path / "missing.ckpt", tmp_path / "notes.txt", tmp_path / "busy"
    text.write_text("not a checkpoint")
    busy.mkdir()
    (busy / "keep.txt").write_text("someone's file")
    cases = [
        (["--ckpt", str(missing)], f"export --ckpt: {missing} is neither an export folder nor a checkpoint file"),
        (["--ckpt", str(text)], f"export --ckpt: {text} is not a Lightning checkpoint (not a torch.save archive)"),
        (["--ckpt", str(missing), "--output", str(busy)], f"export --output: {busy} is not empty; give a new folder"),
        (["--ckpt", str(mlp_export)], f"export --ckpt {mlp_export}: the reward head is an MLP (head: mlp)"),
    ]
    for args, message in cases:
        argv = ["export", *args] if "--output" in args else ["export", *args, "--output", str(tmp_path / "out")]
        assert main(argv) == 2
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert line.startswith(f"error: {message}"), line
    assert not (tmp_path / "out").exists() and (busy / "keep.txt").read_text() == "someone's file"


def test_export_help_imports_neither_torch_nor_lightning():
    code = "import contextlib\nfrom lit_mrrml.export_command import export_command\n"
    code += "with contextlib.suppress(SystemExit):\n    export_command(['--help'])"
    run = run_fresh(code, ["lightning", "torch"])
    assert "--format {hf,lit}" in run.output and run.imported == set()
