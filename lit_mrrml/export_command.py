"""``python -m lit_mrrml export --ckpt PATH --output DIR [--format hf|lit]``: write a trained reward model out.

``--ckpt`` is a Lightning checkpoint (a ``.ckpt`` file or a sharded checkpoint folder) or an
existing lit_mrrml export folder. ``--format hf`` (the default) writes a Hugging Face
``*ForSequenceClassification`` folder (lit_mrrml.models.hf_export: linear head only, LoRA merged,
a model card with the exact-reward recipe); ``--format lit`` writes this project's export folder
(lit_mrrml.models.export, what ``RewardModel.from_pretrained`` reads). The output folder must be new
or empty. Bad input (a missing path, a file that is not a checkpoint, an MLP head or a quantized
base for ``hf``) is an InputError: ``python -m lit_mrrml`` prints it in one line and exits 2.
Nothing heavy is imported until the arguments are parsed: Lightning comes with the model.
"""

from __future__ import annotations

from pathlib import Path

from lit_mrrml.errors import InputError

FORMATS = ("hf", "lit")


def check_output(path: Path) -> None:
    """The output must be a new or empty folder: an export never mixes with other files."""
    if path.exists() and not path.is_dir():
        raise InputError(f"export --output: {path} is a file; give a folder to create")
    if path.is_dir() and any(path.iterdir()):
        raise InputError(f"export --output: {path} is not empty; give a new folder (or empty this one first)")


def export_command(argv: list[str]) -> int:
    """Export the reward model at ``--ckpt`` to ``--output``; returns 0 (errors are raised)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m lit_mrrml export", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=str, required=True, help="Lightning .ckpt, sharded checkpoint or export folder.")
    parser.add_argument("--output", type=str, required=True, help="Folder to write (new or empty).")
    parser.add_argument(
        "--format",
        type=str,
        default="hf",
        choices=FORMATS,
        help="hf: a Hugging Face *ForSequenceClassification folder; lit: a lit_mrrml export folder.",
    )
    parser.add_argument(
        "--include_backbone", type=bool, default=False, help="lit format: copy a frozen or LoRA model's base too."
    )
    args = parser.parse_args(argv)
    output = Path(args.output)
    check_output(output)
    from transformers.utils import logging as transformers_logging

    from lit_mrrml.modules.loading import load_reward_model

    transformers_logging.disable_progress_bar()  # the command's output is its one line (or its error)
    source = f"export --ckpt {args.ckpt}"
    model = load_reward_model(args.ckpt, what="export --ckpt")
    if args.format == "hf":
        from lit_mrrml.models.hf_export import save_sequence_classifier

        save_sequence_classifier(model, output, source)
    else:
        model.save_pretrained(output, include_backbone=args.include_backbone or None)
    print(f"exported {args.ckpt} ({args.format} format) to {output}")
    return 0
