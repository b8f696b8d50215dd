"""Tiny random-init backbones and an in-memory byte-level BPE tokenizer, for tests and smoke runs.

``configs/tokenizers/tiny`` was written by
``python -m lit_mrrml.models.tiny configs/tokenizers/tiny data/demo/train.jsonl configs/matrix/medical_dsd.yaml``
(vocabulary 1024, trained on the demo training split and the matrix).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A 2-layer Qwen2 of hidden size 64: a training step takes a few hundredths of a second on a CPU.
TINY_QWEN2: dict[str, Any] = {
    "model_type": "qwen2",
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}

DEFAULT_CORPUS = (
    "The patient reports chest pain, shortness of breath and fever. Call emergency services now. "
    "Take the medicine with food; the usual adult dose is written on the label. Ask your doctor, "
    "nurse or pharmacist if you are pregnant, breastfeeding or taking other medications. "
)


def build_tiny_tokenizer(corpus: Iterable[str] = (DEFAULT_CORPUS,), vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus``, with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


if __name__ == "__main__":
    texts = [Path(path).read_text(encoding="utf-8") for path in sys.argv[2:]] or [DEFAULT_CORPUS]
    build_tiny_tokenizer(texts, vocab_size=1024).save_pretrained(sys.argv[1])
