"""GPRCRewardTrainer: TRL's RewardTrainer trained with the GPRC loss on a multi-output score head.

Imports TRL (and through it torch and transformers); ``lit_mrrml.integrations.trl`` imports this
module only when ``GPRCRewardTrainer`` is first asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from datasets import Dataset, IterableDataset
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, PretrainedConfig
from trl import RewardConfig, RewardTrainer
from trl.data_utils import get_dataset_column_names
from trl.trainer.reward_trainer import DataCollatorForPreference

from lit_mrrml.errors import InputError
from lit_mrrml.integrations.dimension_column import COLUMN, check_dimension_names, dimension_index
from lit_mrrml.integrations.gprc_pairs import PairInputs, last_token_index, pair_inputs
from lit_mrrml.losses.gprc import GPRCLoss

LOSS_TERMS = ("loss_rank", "loss_axis", "loss_perp", "loss_center")


class DataCollatorForDimensionPreference(DataCollatorForPreference):
    """TRL's preference collator (``input_ids`` (2B, T): the B chosen rows, then the B rejected)
    with each pair's labelled dimension index, ``dimension`` (B,) long."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        batch[COLUMN] = torch.tensor([int(example[COLUMN]) for example in examples], dtype=torch.long)
        return batch


@contextmanager
def single_label_view(config: PretrainedConfig) -> Iterator[None]:
    """Let RewardTrainer.__init__ see ``num_labels == 1`` (it refuses any other head since TRL
    PR 5087: the check reads ``config.num_labels``, the length of ``id2label``), and give the
    config its L labels back afterwards, whatever happens."""
    saved = config.id2label, config.label2id
    config.id2label, config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
    try:
        yield
    finally:
        config.id2label, config.label2id = saved


def score_head(model: nn.Module) -> nn.Module:
    """The linear score head of a sequence classifier (under a PEFT wrapper too), whose (L, H)
    weight rows are the dimension axes."""
    get_base = getattr(model, "get_base_model", None)  # a PeftModel
    base = get_base() if callable(get_base) else model
    score = getattr(base, "score", None)
    weight = getattr(score, "weight", None)
    if not isinstance(score, nn.Module) or not isinstance(weight, Tensor) or weight.dim() != 2:
        raise InputError(
            f"GPRCRewardTrainer: {type(base).__name__} has no linear 'score' head: use a decoder "
            "AutoModelForSequenceClassification (Llama, Qwen2, Mistral, ...) with num_labels = the number of dimensions"
        )
    return score


def _with_dimension_index(example: dict[str, Any], index: int, names: list[str], dataset: str) -> dict[str, Any]:
    return {COLUMN: dimension_index(example[COLUMN], names, f"{dataset} dataset, row {index}")}


class GPRCRewardTrainer(RewardTrainer):
    """TRL's RewardTrainer with the GPRC loss (``lit_mrrml.losses.GPRCLoss``) on an
    ``AutoModelForSequenceClassification`` with one output per rubric dimension.

    Data: TRL's preference format (``chosen``/``rejected``, with or without ``prompt``, standard or
    conversational, or tokenized ``chosen_ids``/``rejected_ids``) plus a ``dimension`` column:
    the dimension on which ``chosen`` beats ``rejected``, as an id among ``dimension_names`` or an
    index. A ``margin`` column is refused (GPRC's margin is the setting ``GPRCLoss(margin=m)``).

    Mapping (``lit_mrrml.integrations.gprc_pairs``): each pair is a GPRC unit with K = 2; z is the
    score head's input h (the final hidden state at the scored token, so d = H), the axes are the
    rows of the head's weight W (L x H), and the rewards are the model's logits W h (+ bias):
    r_i = ||w_i|| <h, w_i / ||w_i||>, GPRC's reward with tau_i = ||w_i|| and no prompt anchor.
    The anchor would cancel in L_rank and L_axis, which see only differences within a pair, and
    L_perp is 0 for K = 2; so the loss is L_rank + alpha L_axis (+ gamma L_center on the raw
    rewards). The axis term pulls h_chosen - h_rejected towards w_i, the geometry GPRC asks for,
    and the trained model stays a plain sequence classifier: ``save_pretrained`` writes a standard
    checkpoint whose logits are the per-dimension rewards. Without the anchor, rewards of
    different prompts are not offset-corrected as lit_mrrml's anchored ``RewardHead`` makes them.

    Logged (TRL's metric log, ``eval_`` prefixed in evaluation): ``loss_rank``, ``loss_axis``,
    ``loss_perp``, ``loss_center``, ``accuracy`` (chosen scored above rejected on its dimension),
    ``margin``, ``axis_cos`` (mean cos(z_chosen - z_rejected, e_i)), ``accuracy/<dimension>`` for
    the dimensions in the batch, ``min_reward``/``mean_reward``/``max_reward`` (on the labelled
    dimensions) and ``num_tokens``.

    Supported: one device or DDP, LoRA (``peft_config``; keep ``score`` trainable, as PEFT's
    ``SEQ_CLS`` task does). Not tested with FSDP or DeepSpeed ZeRO-3, where the head's weight is
    sharded outside the forward.
    """

    _tag_names = [*RewardTrainer._tag_names, "lit_mrrml", "gprc"]  # noqa: RUF012 (TRL's own is a plain list)

    def __init__(
        self,
        model: Any,
        args: RewardConfig | None = None,
        data_collator: Any = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        *,
        loss: GPRCLoss | None = None,
        dimension_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            model: An ``AutoModelForSequenceClassification`` with ``num_labels`` = L dimensions, or
                a model id / folder, loaded with L labels named ``dimension_names`` (and with
                ``args.model_init_kwargs``, which are then cleared so that TRL does not apply them again).
            args: TRL's RewardConfig; ``center_rewards_coefficient`` is refused: centering is
                ``GPRCLoss(gamma=...)``.
            data_collator: Default ``DataCollatorForDimensionPreference``; another must also give
                ``dimension`` (B,).
            train_dataset, eval_dataset, processing_class, **kwargs: As for RewardTrainer.
            loss: The GPRC loss and its weights (default ``GPRCLoss()``); alpha = 0 is plain
                Bradley-Terry on the labelled dimension.
            dimension_names: The L dimension ids, in the head's output order (default: the
                model config's ``id2label``).
        """
        if args is not None and args.center_rewards_coefficient is not None:
            raise InputError(
                "GPRCRewardTrainer: args.center_rewards_coefficient is not used by the GPRC loss: "
                "set loss=GPRCLoss(gamma=...) for reward centering instead"
            )
        if isinstance(model, str):
            model = self._load(model, args, dimension_names)
        config = model.config
        names = dimension_names or [config.id2label[i] for i in range(config.num_labels)]
        self.dimension_names = check_dimension_names(names, config.num_labels, "GPRCRewardTrainer")
        self.gprc_loss = loss if loss is not None else GPRCLoss()
        with single_label_view(config):
            super().__init__(model, args, data_collator, train_dataset, eval_dataset, processing_class, **kwargs)
        if data_collator is None:
            tokenizer: Any = self.processing_class  # set by RewardTrainer, with its pad token
            settings: Any = self.args
            self.data_collator = DataCollatorForDimensionPreference(
                pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=settings.pad_to_multiple_of
            )
        score_head(self.trained_model)

    @property
    def trained_model(self) -> Any:
        """The model being trained, unwrapped (a transformers model, or a PeftModel)."""
        return self.model

    @staticmethod
    def _load(path: str, args: RewardConfig | None, names: Sequence[str] | None) -> Any:
        if not names:
            raise InputError(
                f"GPRCRewardTrainer: model {path!r} is given by name: pass dimension_names, one per output of its head"
            )
        given = args.model_init_kwargs if args is not None else None
        init: dict[str, Any] = json.loads(given) if isinstance(given, str) else dict(given or {})
        if args is not None:
            args.model_init_kwargs = None
        labels = dict(enumerate(names))
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=labels, label2id={n: i for i, n in labels.items()}, **init
        )

    # ---- data ---------------------------------------------------------------------------------
    def _prepare_dataset(
        self, dataset: Dataset | IterableDataset, processing_class: Any, args: RewardConfig, dataset_name: str
    ) -> Dataset | IterableDataset:
        """Check the ``dimension`` column and turn it into indices (rows named as given), then
        tokenize as RewardTrainer does."""
        columns = get_dataset_column_names(dataset)
        if "margin" in columns:
            raise InputError(
                f"GPRCRewardTrainer: {dataset_name} dataset: a 'margin' column is not used by the GPRC loss "
                "(its margin is one setting for all pairs): drop the column and set loss=GPRCLoss(margin=m)"
            )
        if COLUMN not in columns:
            raise InputError(
                f"GPRCRewardTrainer: {dataset_name} dataset has no '{COLUMN}' column: give each pair the dimension "
                f"on which chosen beats rejected (one of {self.dimension_names}, or its index)"
            )
        fn_kwargs = {"names": self.dimension_names, "dataset": dataset_name}
        dataset = dataset.map(_with_dimension_index, with_indices=True, fn_kwargs=fn_kwargs)
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", COLUMN]  # type: ignore[assignment]

    # ---- loss ---------------------------------------------------------------------------------
    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """GPRCLoss on the batch's pairs; see the class docstring for the mapping."""
        if COLUMN not in inputs:
            raise InputError(
                f"GPRCRewardTrainer: the batch has no '{COLUMN}' tensor: use DataCollatorForDimensionPreference"
            )
        mode = "train" if self.trained_model.training else "eval"
        score: Any = score_head(self.trained_model)
        captured: dict[str, Tensor] = {}

        def capture(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            captured["hidden"], captured["logits"] = args[0], output  # (2B, T, H), (2B, T, L)

        handle = score.register_forward_hook(capture)
        try:
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        finally:
            handle.remove()
        pair = self._pair_inputs(inputs, captured, outputs.logits, score.weight)
        loss, metrics = self.gprc_loss(pair.z, pair.rewards, pair.axes)
        self._record(mode, inputs, pair, metrics)
        return (loss, outputs) if return_outputs else loss

    def _pair_inputs(
        self, inputs: dict[str, Any], captured: dict[str, Tensor], logits: Tensor, weight: Tensor
    ) -> PairInputs:
        """z at the token the model scored (checked against its pooled logits), the logits, the axes."""
        input_ids = inputs["input_ids"]  # (2B, T)
        pad = self.trained_model.config.get_text_config().pad_token_id
        index = last_token_index(input_ids, pad).to(logits.device)  # (2B,)
        rows = torch.arange(input_ids.shape[0], device=logits.device)
        if not torch.equal(captured["logits"][rows, index], logits):
            raise RuntimeError(
                f"GPRCRewardTrainer: {type(self.trained_model).__name__} scores another token than the last "
                "non-padding one, so its hidden state cannot be matched to its rewards"
            )
        z = captured["hidden"][rows, index]  # (2B, H)
        dimension = inputs[COLUMN].to(logits.device)  # (B,)
        return pair_inputs(z.float(), logits.float(), weight.float(), dimension)

    @torch.no_grad()
    def _record(self, mode: str, inputs: dict[str, Any], pair: PairInputs, metrics: dict[str, Tensor]) -> None:
        """Append this batch's loss terms and rates to TRL's metric log (gathered over processes)."""
        log = self._metrics[mode]
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        log["num_tokens"] = [self._total_train_tokens]
        correct = (pair.rewards[:, 0] > pair.rewards[:, 1]).float()  # (B,)
        values = {name: metrics[name] for name in LOSS_TERMS}
        values |= {"accuracy": correct.mean(), "margin": metrics["margin"], "axis_cos": metrics["axis_cos"]}
        for name, value in values.items():
            log[name].append(self.accelerator.gather_for_metrics(value.reshape(1)).mean().item())
        rewards = self.accelerator.gather(pair.rewards)
        log["min_reward"].append(rewards.min().item())
        log["mean_reward"].append(rewards.mean().item())
        log["max_reward"].append(rewards.max().item())
        self._record_per_dimension(log, correct, inputs[COLUMN].to(correct.device))

    def _record_per_dimension(self, log: dict[str, list[float]], correct: Tensor, dimension: Tensor) -> None:
        """``accuracy/<dimension>`` for every dimension with pairs in the batch (on any process)."""
        num = len(self.dimension_names)
        hits = torch.zeros(num, device=correct.device).index_add_(0, dimension, correct)  # (L,)
        pairs = torch.zeros(num, device=correct.device).index_add_(0, dimension, torch.ones_like(correct))
        hits = self.accelerator.gather(hits).view(-1, num).sum(0)
        pairs = self.accelerator.gather(pairs).view(-1, num).sum(0)
        for i in pairs.nonzero().flatten().tolist():
            log[f"accuracy/{self.dimension_names[i]}"].append((hits[i] / pairs[i]).item())
