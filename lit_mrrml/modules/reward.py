"""RewardModel: a multi-dimensional reward model trained with GPRC, as a LightningModule.

One forward pass of the backbone gives, for every sequence, the hidden state at its last token
and at its prompt's last token (the anchor); the head turns them into rewards on every dimension.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from lit_mrrml.aggregate import row_weights, weighted_total
from lit_mrrml.data.collate import RankedUnitCollator
from lit_mrrml.data.encode import encode_unit
from lit_mrrml.data.units import RankedUnit
from lit_mrrml.errors import InputError
from lit_mrrml.losses import GPRCLoss
from lit_mrrml.losses.functional import response_mask
from lit_mrrml.losses.statistics import unit_statistics
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import check_trained_matrix
from lit_mrrml.metrics.ranking import RankingMetrics
from lit_mrrml.models.backbone import BackboneSpec, build_backbone, load_tokenizer
from lit_mrrml.models.feature_cache import FeatureCache, backbone_fingerprint, sequence_key
from lit_mrrml.models.head import HeadOutput, RewardHead
from lit_mrrml.models.lora import LoraSpec, add_lora
from lit_mrrml.models.quantization import quantized_state_keys
from lit_mrrml.models.sharding import shard_reward_model
from lit_mrrml.modules.batch_info import log_effective_batch
from lit_mrrml.modules.loss_settings import log_loss_settings
from lit_mrrml.modules.optim import trainable_optimizers
from lit_mrrml.modules.scores import Messages, RewardScores, check_rows, row_labels, scenario_indices, score_unit

TrainingMode = Literal["frozen", "lora", "full"]
MAX_LISTED = 10  # unit ids named in one error


class NonFiniteRewardError(InputError):
    """A loaded reward model gave NaN or infinite rewards: its weights are likely corrupt."""


def check_finite_rewards(rewards: Tensor, valid: Tensor, unit_ids: list[str], source: str) -> None:
    """Raise NonFiniteRewardError naming the units whose real rows (``valid``, (B, K)) have a
    non-finite reward on any dimension (``rewards``, (B, K, L))."""
    bad = (~torch.isfinite(rewards).all(-1) & valid).any(1)  # (B,)
    if not bool(bad.any()):
        return
    units = [unit_ids[i] for i in bad.nonzero().flatten().tolist()]
    more = f" and {len(units) - MAX_LISTED} more" if len(units) > MAX_LISTED else ""
    raise NonFiniteRewardError(
        f"{source}: non-finite rewards (NaN or inf) for unit(s) {units[:MAX_LISTED]}{more}: the model's weights "
        "may be corrupt (check the checkpoint or export, or train again), or the inputs overflow its dtype"
    )


class RewardModel(L.LightningModule):
    """Scores every rubric dimension of a response in one forward pass."""

    def __init__(
        self,
        backbone: BackboneSpec,
        loss: GPRCLoss | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        training_mode: TrainingMode = "frozen",
        lora: LoraSpec | None = None,
        embedding_dim: int = 256,
        head: Literal["linear", "mlp"] = "linear",
        gradient_checkpointing: bool = False,
        feature_cache_dir: str | None = None,
        num_dimensions: int | None = None,
        dimension_names: list[str] | None = None,
        matrix: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            backbone: Where the backbone comes from (hub id, folder, GGUF file or random-init config).
            loss: The GPRC loss and its weights; alpha = beta = 0 is the plain ranking baseline.
            optimizer: Optimizer factory, called with the trainable parameters.
            lr_scheduler: Optional scheduler factory, stepped every optimizer step.
            training_mode: ``frozen`` trains the head on cached backbone features; ``lora`` trains
                LoRA adapters and the head; ``full`` trains everything.
            lora: LoRA settings for ``training_mode: lora`` (defaults when omitted).
            embedding_dim: Size d of the reward embedding z.
            head: Projection head g: ``linear`` or a 2-layer ``mlp``.
            gradient_checkpointing: Recompute backbone activations in backward to save memory
                (``lora`` and ``full``; a ``frozen`` backbone runs without gradients, so there is
                nothing to recompute). Under ``BlockFSDPStrategy`` use its ``checkpoint_blocks`` instead.
            feature_cache_dir: Folder for frozen features on disk, shared between runs of the same
                backbone (default: in memory for this run only).
            num_dimensions: Number of reward dimensions L (linked from the data's rubric matrix).
            dimension_names: Names of the dimensions, in order (linked from the rubric matrix).
            matrix: Snapshot of the rubric matrix (linked from the data): gives the scenario weights
                of the total reward and travels with exported models.
        """
        super().__init__()
        if isinstance(backbone, dict):  # from a checkpoint's hyperparameters (load_from_checkpoint)
            backbone = BackboneSpec.from_dict(backbone)
        if isinstance(lora, dict):
            lora = LoraSpec(**lora)
        self.save_hyperparameters(ignore=["loss", "optimizer", "lr_scheduler"])
        # plain data only, so that checkpoints load with torch.load(weights_only=True)
        self.hparams["backbone"] = dataclasses.asdict(backbone)
        self.hparams["lora"] = dataclasses.asdict(lora) if lora is not None else None
        if matrix is not None:
            snapshot = RubricMatrix.from_dict(matrix, "model.matrix")
            dimension_names = dimension_names or list(snapshot.dimension_ids)
            weights = torch.tensor(snapshot.weight_matrix())  # (S, L)
        else:
            snapshot, weights = None, None
        if dimension_names is None:
            dimension_names = [f"dim{i}" for i in range(num_dimensions or 0)]
        if not dimension_names or (num_dimensions is not None and num_dimensions != len(dimension_names)):
            raise ValueError("RewardModel needs num_dimensions >= 1 matching dimension_names (linked from data)")
        if training_mode != "lora" and lora is not None:
            raise ValueError(f"lora settings were given but training_mode is {training_mode!r}: set it to 'lora'")
        self.spec, self.training_mode = backbone, training_mode
        self.embedding_dim, self.head_kind = embedding_dim, head
        self.gradient_checkpointing, self.feature_cache_dir = gradient_checkpointing, feature_cache_dir
        self.matrix_snapshot = matrix
        self.matrix_hash = snapshot.content_hash() if snapshot is not None else None  # recorded in checkpoints
        self.scenario_ids = list(snapshot.scenario_ids) if snapshot is not None else []  # rows of scenario_weights
        self.lora_spec = lora or LoraSpec()
        self.dimension_names = list(dimension_names)
        self.loss = loss if loss is not None else GPRCLoss()
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.register_buffer("scenario_weights", weights, persistent=False)
        self.backbone: torch.nn.Module | None = None
        self.head: RewardHead | None = None
        self.feature_cache: FeatureCache | None = None
        self.fingerprint: str | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None  # loaded by the first score()
        self.val_metrics = RankingMetrics(self.dimension_names)
        self.test_metrics = RankingMetrics(self.dimension_names)

    @property
    def num_dimensions(self) -> int:
        return len(self.dimension_names)

    # ---- construction -------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Build the backbone and the head (idempotent, so strategies may shard at build time)."""
        if self.backbone is not None:
            return
        quantized = self.spec.quantized
        if quantized and self.training_mode == "full":
            raise ValueError("a quantized backbone cannot be trained in full: use training_mode lora (QLoRA) or frozen")
        backbone: Any = build_backbone(self.spec, device=self.device)
        self.fingerprint = backbone_fingerprint(backbone)  # of the pretrained weights, before any adapter
        if self.training_mode == "frozen":
            backbone.requires_grad_(False).eval()
            self.feature_cache = FeatureCache(self.fingerprint, self.feature_cache_dir)
            self.feature_cache.load()
        elif self.training_mode == "lora":
            backbone = add_lora(backbone, self.lora_spec, quantized, self.gradient_checkpointing)
        if self.training_mode != "frozen":
            # from_pretrained returns a model in eval mode, and Lightning keeps each submodule's mode
            # (it never calls .train() at fit start): without this the blocks would train in eval
            # mode, with no dropout and, silently, no gradient checkpointing
            backbone.train(self.training)
        if self.gradient_checkpointing and self.training_mode != "frozen":
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.backbone = backbone
        hidden = int(backbone.config.hidden_size)
        self.head = RewardHead(hidden, self.num_dimensions, self.embedding_dim, self.head_kind)
        if self.device_mesh is not None:  # ModelParallelStrategy: FSDP2, sharded at build time
            shard_reward_model(self.backbone, self.head, self.device_mesh)

    def train(self, mode: bool = True) -> RewardModel:
        super().train(mode)
        if self.training_mode == "frozen" and self.backbone is not None:
            self.backbone.eval()  # a frozen backbone gives the same features every epoch (no dropout)
        return self

    def configure_optimizers(self) -> Any:
        return trainable_optimizers(self, self.optimizer_factory, self.scheduler_factory)

    def on_fit_start(self) -> None:
        """Say the effective batch (units per device x devices x nodes x accumulation); log the
        loss settings (``loss/alpha``, ...) as hyperparameters."""
        log_effective_batch(self, "units", note="each unit holds its K ranked responses")
        log_loss_settings(self, self.loss)

    # ---- forward ------------------------------------------------------------------------------
    def encode(self, input_ids: Tensor, attention_mask: Tensor, anchor_index: Tensor) -> Tensor:
        """(N, 2, H) backbone features: hidden state at each row's last real token and at its anchor."""
        assert self.backbone is not None, "call configure_model() first"
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (N, T, H)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        last = attention_mask.sum(1) - 1  # (N,): right padding
        return torch.stack([hidden[rows, last], hidden[rows, anchor_index]], dim=1)

    def features(self, input_ids: Tensor, attention_mask: Tensor, anchor_index: Tensor) -> Tensor:
        """Backbone features, served from the cache for a frozen backbone."""
        cache = self.feature_cache
        if cache is None:
            return self.encode(input_ids, attention_mask, anchor_index)
        lengths = attention_mask.sum(1).tolist()
        keys = [sequence_key(ids[:n], int(a)) for ids, n, a in zip(input_ids, lengths, anchor_index, strict=True)]
        cached = cache.get(keys)
        if cached is not None:
            return cached.to(self.device)
        with torch.no_grad():
            feats = self.encode(input_ids, attention_mask, anchor_index)
        cache.put(keys, feats)
        return feats

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, anchor_index: Tensor, dimension: Tensor | None = None
    ) -> HeadOutput:
        """Rewards (N, L) on every dimension, with z, z_anchor and the labelled axes (N, d), for N sequences."""
        assert self.head is not None, "call configure_model() first"
        feats = self.features(input_ids, attention_mask, anchor_index)  # (N, 2, H)
        return self.head(feats[:, 0], feats[:, 1], dimension)

    def score_batch(self, batch: dict[str, Any]) -> tuple[HeadOutput, Tensor]:
        """Run the real rows of a collated batch; returns outputs shaped (B, K, .) and the (B, K) mask."""
        num_responses = batch["num_responses"]
        b = num_responses.shape[0]
        k = batch["input_ids"].shape[0] // b
        valid = response_mask(num_responses, k)  # (B, K)
        flat = valid.flatten()
        mask = batch["attention_mask"][flat]
        width = int(mask.sum(1).max())  # trim columns that only padding rows used
        rows_dimension = batch["dimension"][:, None].expand(b, k).flatten()[flat]  # (N,)
        out = self(batch["input_ids"][flat, :width], mask[:, :width], batch["anchor_index"][flat], rows_dimension)
        shaped = [
            torch.zeros(b * k, x.shape[-1], dtype=x.dtype, device=x.device)
            .index_copy(0, flat.nonzero().squeeze(1), x)
            .view(b, k, -1)
            for x in out
        ]
        return HeadOutput(*shaped), valid

    # ---- steps --------------------------------------------------------------------------------
    def _step(self, batch: dict[str, Any], stage: str) -> tuple[Tensor, dict[str, Any]]:
        out, valid = self.score_batch(batch)
        if stage != "train":  # a loaded model: name the units and the likely cause, before the loss does
            check_finite_rewards(out.rewards, valid, batch["unit_ids"], stage)
        dimension = batch["dimension"]  # (B,)
        index = dimension[:, None, None].expand(-1, out.rewards.shape[1], 1)
        rewards = out.rewards.gather(2, index).squeeze(2)  # (B, K): on each unit's own dimension
        axes = out.axes[:, 0]  # (B, d): every response of a unit carries its unit's axis
        loss, metrics = self.loss(out.z, rewards, axes, batch["num_responses"], dimension)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage}: non-finite loss {loss.item()} in the batch of units {batch['unit_ids']} "
                f"(terms: { {k: round(float(v), 4) for k, v in metrics.items() if k.startswith('loss_')} })"
            )
        b = dimension.shape[0]
        self.log(f"{stage}/loss", loss, batch_size=b, prog_bar=True, sync_dist=stage != "train")
        for name in ("loss_rank", "loss_axis", "loss_perp", "loss_center"):
            self.log(f"{stage}/{name}", metrics[name], batch_size=b, sync_dist=stage != "train")
        if stage == "train":
            self.log("train/pair_acc", metrics["pair_acc"], batch_size=b, prog_bar=True)
        else:
            stats = unit_statistics(out.z, rewards, axes, batch["num_responses"], self.loss.eps)
            self._metrics(stage).update(stats, dimension)
        detached = {"z": out.z, "z_anchor": out.z_anchor, "rewards": rewards, "axes": axes}
        return loss, {k: v.detach() for k, v in detached.items()} | {
            "num_responses": batch["num_responses"],
            "dimension": dimension,
        }

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._step(batch, "val")[1]

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._step(batch, "test")[1]

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = self._metrics(stage)
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.compute().items()})
        metrics.reset()

    def _metrics(self, stage: str) -> RankingMetrics:
        return self.val_metrics if stage == "val" else self.test_metrics

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        self._save_feature_cache()

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")
        self._save_feature_cache()

    def on_train_epoch_end(self) -> None:
        self._save_feature_cache()

    def _save_feature_cache(self) -> None:
        if self.feature_cache is not None:
            self.feature_cache.save(self.global_rank)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Per-dimension rewards and the scenario-weighted total of every response."""
        out, valid = self.score_batch(batch)
        check_finite_rewards(out.rewards, valid, batch["unit_ids"], "predict")
        weights = self.total_weights(batch["scenario"])  # (B, L)
        totals = weighted_total(out.rewards, weights[:, None, :])  # (B, K)
        records = []
        for b, unit_id in enumerate(batch["unit_ids"]):
            for k in range(int(valid[b].sum())):
                rewards = dict(zip(self.dimension_names, out.rewards[b, k].tolist(), strict=True))
                records.append({"id": unit_id, "response": k, "rewards": rewards, "total": float(totals[b, k])})
        return records

    # ---- scoring outside Lightning -------------------------------------------------------------
    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The backbone's tokenizer and chat template, loaded on first use and kept."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.spec)
        return self._tokenizer

    def score(
        self,
        prompts: Sequence[Messages],
        responses: Sequence[str],
        scenarios: Sequence[str | None] | None = None,
        batch_size: int = 16,
        max_length: int = 1024,
        *,
        row_ids: Sequence[str] | None = None,
        source: str = "RewardModel.score",
    ) -> RewardScores:
        """Score N (prompt, response) rows on every dimension, with this model's tokenizer and chat template.

        ``prompts`` are chat messages ending with the user's turn; ``scenarios`` are matrix scenario
        ids giving each row's weights in ``totals`` (None, or no list: uniform 1/L). Runs in eval
        mode under ``torch.inference_mode``, ``batch_size`` rows a forward, on the model's device,
        and restores the train/eval mode; the results are plain CPU tensors (not inference tensors).
        NaN or infinite rewards raise NonFiniteRewardError naming the rows (``row_ids``, default
        ``row <i>``) after ``source``.

        Example::

            rm = RewardModel.from_pretrained("exports/tiny")
            scores = rm.score([[{"role": "user", "content": "Chest pain, what now?"}]],
                              ["Call emergency services."], scenarios=["emergency_referrals"])
            scores.rewards  # (1, L) float32 on the CPU, columns named by scores.dimension_names
            scores.totals  # (1,) the rewards weighted by emergency_referrals' weights
        """
        check_rows(prompts, responses, scenarios, batch_size)
        labels = row_labels(len(prompts), row_ids)
        rows = scenario_indices(scenarios, self.scenario_ids, len(prompts))
        units = [score_unit(*row) for row in zip(labels, prompts, responses, strict=True)]
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                rewards = self._score_units(units, batch_size, max_length, source)  # (N, L)
        finally:
            self.train(was_training)
        rewards = rewards.clone()  # outside inference mode: a tensor callers may change in place
        index = torch.tensor([-1 if i is None else i for i in rows], dtype=torch.long)  # (N,), -1: uniform
        return RewardScores(rewards, list(self.dimension_names), weighted_total(rewards, self.total_weights(index)))

    def _score_units(self, units: list[RankedUnit], batch_size: int, max_length: int, source: str) -> Tensor:
        """(N, L) float32 CPU rewards of one-response units, ``batch_size`` units a forward."""
        if not units:
            return torch.zeros(0, self.num_dimensions)
        collate = RankedUnitCollator(int(self.tokenizer.pad_token_id))
        chunks = []
        for start in range(0, len(units), batch_size):
            encoded = [encode_unit(u, self.tokenizer, max_length, 0, 0) for u in units[start : start + batch_size]]
            chunks.append(self._score_collated(collate(encoded), source))
        return torch.cat(chunks)

    def _score_collated(self, batch: dict[str, Any], source: str) -> Tensor:
        """(B, L) float32 CPU rewards of a collated batch of one-response units, checked finite."""
        tensors = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out, valid = self.score_batch(tensors)  # rewards (B, 1, L)
        check_finite_rewards(out.rewards, valid, batch["unit_ids"], source)
        return out.rewards[:, 0].float().cpu()

    def total_weights(self, scenario: Tensor) -> Tensor:
        """(B, L) each unit's scenario weights from the matrix snapshot (uniform without a matrix, or
        where the index is -1)."""
        return row_weights(cast(Tensor | None, self.scenario_weights), scenario, self.num_dimensions)

    # ---- checkpoints and export ---------------------------------------------------------------
    def _reloadable_backbone_keys(self) -> set[str]:
        """Frozen backbone weights that configure_model rebuilds identically from ``path``; none when
        sharded (a sharded checkpoint must hold every key the strategy loads back)."""
        if self.backbone is None or self.spec.path is None or self.device_mesh is not None:
            return set()
        return {f"backbone.{n}" for n, p in self.backbone.named_parameters() if not p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave out frozen pretrained weights: they reload from the backbone's path."""
        skip = self._reloadable_backbone_keys()
        if skip:  # a quantized backbone's bitsandbytes state too: packed weights and their constants
            skip |= quantized_state_keys(checkpoint["state_dict"], self.backbone, "backbone.")
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in skip}
        checkpoint["lit_mrrml"] = {
            "backbone_fingerprint": self.fingerprint,
            "dimensions": self.dimension_names,
            "matrix_hash": self.matrix_hash,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the checkpoint's dimensions against this model's matrix (refused when they differ,
        a warning for other changes), then fill the left-out frozen weights from the rebuilt backbone,
        after checking it is the same."""
        hparams = checkpoint.get("hyper_parameters") or {}
        trained = checkpoint.get("lit_mrrml", {}).get("dimensions") or hparams.get("dimension_names")
        if trained is not None:
            source = f"checkpoint {self._trainer.ckpt_path}" if self._trainer is not None else "the checkpoint"
            check_trained_matrix(trained, hparams.get("matrix"), self.dimension_names, self.matrix_snapshot, source)
        state = checkpoint.get("state_dict")
        if state is None:  # a sharded checkpoint: ModelParallelStrategy loads the weights into the shards itself
            return
        missing = [k for k in self._reloadable_backbone_keys() if k not in state]
        saved = checkpoint.get("lit_mrrml", {}).get("backbone_fingerprint")
        if missing and saved is not None and saved != self.fingerprint:
            raise ValueError(
                f"checkpoint was trained on another backbone (fingerprint {saved}, this one {self.fingerprint}): "
                f"its frozen weights are not stored; point model.backbone at the original weights"
            )
        own = self.state_dict()
        for key in missing:
            state[key] = own[key]

    def save_pretrained(
        self, directory: str | Path, include_backbone: bool | None = None, hf_format: bool = False
    ) -> Path:
        """Export for use outside Lightning (safetensors, no pickles): this project's folder (see
        ``lit_mrrml.models.export``), or with ``hf_format`` a Hugging Face ``*ForSequenceClassification``
        folder, backbone always included (linear head only; see ``lit_mrrml.models.hf_export``)."""
        if hf_format:
            from lit_mrrml.models.hf_export import save_sequence_classifier

            if include_backbone is False:
                raise ValueError("save_pretrained: an hf_format export always holds the backbone (include_backbone)")
            return save_sequence_classifier(self, Path(directory))
        from lit_mrrml.models.export import save_reward_model

        return save_reward_model(self, Path(directory), include_backbone)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        map_location: str | torch.device = "cpu",
        matrix: RubricMatrix | str | Path | None = None,
    ) -> RewardModel:
        """Rebuild an exported reward model, in eval mode; with ``matrix`` (the matrix in use, or its
        YAML file), its dimensions are checked against the export's (see ``lit_mrrml.models.export``)."""
        from lit_mrrml.models.export import load_reward_model

        return load_reward_model(Path(directory), map_location, matrix)
