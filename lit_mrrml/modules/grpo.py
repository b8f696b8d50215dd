"""GRPOPolicy: reinforcement learning of the policy against the multi-dimensional reward.

One training step (design: lit_mrrml.losses.grpo for the math):
1. sample G completions for each of this rank's B prompts (``RolloutEngine``, seeded);
2. decode them and score (prompt messages, text) on every dimension with the reward source,
   which tokenizes with its own tokenizer: rewards (B, G, L);
3. advantages per group (``weighted`` or ``gdpo``; GDPO's batch standardisation over all ranks);
4. old log-probabilities once, in eval mode and without gradients; the reference's when beta > 0
   (a frozen copy in full fine-tuning; with LoRA the same model with its adapter disabled);
5. ``num_iterations`` optimisation passes over the rollout batch, each one optimizer step over
   shuffled micro-batches of ``micro_batch_size`` sequences whose gradients add up to the whole
   batch's (the ``token_mean`` denominator is the whole batch's token count on all ranks); after
   each step ``engine.sync``, so that an engine with its own copy of the weights (vLLM) draws the
   next rollouts from the trained ones. An engine that reports its own log-probabilities logs
   their gap to the old ones (``rollout/logp_gap``) and feeds them to the loss's truncated
   importance sampling (``GRPOLoss(tis_cap=...)``).
Optimisation is manual, so ``trainer.global_step`` counts optimizer steps: ``num_iterations`` a
rollout batch. Validation samples one completion per held-out prompt with a fixed seed, and runs
once before the first step too, so a run shows where it started.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterator
from typing import Any, Literal, cast

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.tensor import DTensor

from lit_mrrml.aggregate import row_weights, weighted_total
from lit_mrrml.losses.grpo import GRPOLoss, group_advantages, logp_gap
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import PolicyMode
from lit_mrrml.models.sharding import shard_frozen
from lit_mrrml.modules.batch_info import log_effective_batch, micro_batch_note, per_device_batch
from lit_mrrml.modules.causal_lm import CausalLMModule
from lit_mrrml.modules.loss_settings import log_loss_settings
from lit_mrrml.modules.reward import NonFiniteRewardError
from lit_mrrml.policy.diagnostics import reward_metrics
from lit_mrrml.policy.logprobs import sequence_logprobs
from lit_mrrml.policy.rewards import RewardSource
from lit_mrrml.policy.rollout import HFGenerateEngine, RolloutEngine, Rollouts, SamplingSettings

log = logging.getLogger(__name__)
VAL_SEED_OFFSET = 7_919  # validation draws from its own seed, the same at every validation


def mix_seed(*parts: int) -> int:
    """A 63-bit seed fixed by ``parts`` (the run's seed, the rollout step, the rank...)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


class GRPOPolicy(CausalLMModule):
    """GRPO (or GDPO) against a reward source, usually the multi-dimensional reward model."""

    def __init__(
        self,
        backbone: BackboneSpec,
        reward: RewardSource,
        engine: RolloutEngine | None = None,
        loss: GRPOLoss | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        training_mode: PolicyMode = "lora",
        lora: LoraSpec | None = None,
        num_generations: int = 4,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        val_temperature: float | None = None,
        advantage: Literal["gdpo", "weighted"] = "gdpo",
        std_floor: float = 1e-3,
        num_iterations: int = 1,
        micro_batch_size: int = 8,
        mask_truncated: bool = False,
        length_penalty: float = 0.0,
        max_grad_norm: float | None = 1.0,
        seed: int = 0,
        gradient_checkpointing: bool = False,
        disable_dropout: bool = True,
        matrix: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            backbone: The policy to train (for the RL stage: the SFT export); the same fields as
                a reward model's backbone.
            reward: Where rewards come from: ``lit_mrrml.policy.rewards.RewardModelReward`` (an
                export folder or checkpoint of a RewardModel) or ``CallableReward`` (a function).
            engine: Draws the rollouts (default: ``HFGenerateEngine``, transformers ``generate``;
                on GPUs ``lit_mrrml.policy.vllm_engine.VLLMEngine``, vLLM colocated with training,
                whose log-probabilities are logged against the trainer's: ``rollout/logp_gap``).
            loss: The clipped GRPO loss and its settings (eps_low, eps_high, beta, loss_type).
            optimizer: Optimizer factory, called with the trainable parameters.
            lr_scheduler: Optional scheduler factory, stepped every optimizer step.
            training_mode: ``full`` trains every weight (the reference is a frozen copy); ``lora``
                trains a fresh adapter (the reference is the model with the adapter disabled).
            lora: LoRA settings for ``training_mode: lora``.
            num_generations: G, completions per prompt (at least 2: a group needs a spread).
            max_new_tokens: Longest completion; one without EOS by then is truncated.
            temperature: Sampling temperature T; the log-probabilities use logits / T too.
            top_p: Nucleus sampling mass (1.0 keeps the whole distribution).
            val_temperature: Sampling temperature of validation (default: ``temperature``).
            advantage: ``gdpo`` (per-dimension group normalisation, then batch standardisation)
                or ``weighted`` (group normalisation of the scenario-weighted total).
            std_floor: In ``gdpo``, a dimension whose group std is below this gives 0 advantage.
            num_iterations: Optimisation passes (optimizer steps) over each rollout batch.
            micro_batch_size: Sequences per forward/backward within a pass (gradients accumulate).
            mask_truncated: Leave completions without EOS out of the loss (they still count in
                the group statistics).
            length_penalty: Weight of an extra reward term -(completion length / max_new_tokens).
            max_grad_norm: Clip the gradient norm to this before each step (None: no clipping).
            seed: Seed of the rollouts (mixed with the rollout step and the rank).
            gradient_checkpointing: Recompute activations in backward to save memory.
            disable_dropout: Set every dropout to 0, so that the first pass's ratio is exactly 1.
            matrix: Snapshot of the rubric matrix (linked from the prompt data): the scenario
                weights of the total, and the dimension list the reward model must have.
        """
        super().__init__(
            backbone, optimizer, lr_scheduler, training_mode, lora, gradient_checkpointing, disable_dropout
        )
        if num_generations < 2:
            raise ValueError(f"num_generations must be at least 2 (a group needs a spread), got {num_generations}")
        if num_iterations < 1 or micro_batch_size < 1:
            raise ValueError("num_iterations and micro_batch_size must be at least 1")
        self.save_hyperparameters(ignore=["reward", "engine", "loss", "optimizer", "lr_scheduler"])
        self._plain_hparams()
        self.automatic_optimization = False
        self.reward, self.engine = reward, engine or HFGenerateEngine()
        self.loss = loss if loss is not None else GRPOLoss()
        self.sampling = SamplingSettings(max_new_tokens, temperature, top_p)
        val_t = temperature if val_temperature is None else val_temperature
        self.val_sampling = SamplingSettings(max_new_tokens, val_t, top_p)
        self.num_generations, self.advantage_mode, self.std_floor = num_generations, advantage, std_floor
        self.num_iterations, self.micro_batch_size = num_iterations, micro_batch_size
        self.mask_truncated, self.length_penalty = mask_truncated, length_penalty
        self.max_grad_norm, self.seed = max_grad_norm, seed
        self.matrix = RubricMatrix.from_dict(matrix, "model.matrix") if matrix is not None else None
        self.matrix_snapshot = matrix
        table = torch.tensor(self.matrix.weight_matrix(), dtype=torch.float32) if self.matrix is not None else None
        self.register_buffer("weight_table", table, persistent=False)  # (S, L), follows the module's device
        self.reference: Any = None
        self.rollout_step = 0  # rollout batches drawn so far; saved in checkpoints
        self.validated_before_training = False

    # ---- construction -------------------------------------------------------------------------
    def build_companions(self) -> None:
        """Full fine-tuning with beta > 0: the reference, a frozen copy of the policy as built."""
        if self.loss.beta > 0 and self.training_mode == "full":
            self.reference = copy.deepcopy(self.policy).requires_grad_(False).eval()

    def shard(self, mesh: DeviceMesh) -> None:
        """The policy in its FSDP2 units; the frozen reference in units of its own, so that it holds
        1/W of its weights a rank (a replica would be a whole second model on every device) and,
        being outside the policy's units and frozen, has no gradients and no optimizer state."""
        super().shard(mesh)
        if self.reference is not None:
            shard_frozen(self.reference, mesh)

    def setup(self, stage: str) -> None:
        """Move the reward source next to the policy and check its dimensions against the matrix."""
        self.reward.to(self.device)
        check = getattr(self.reward, "check_matrix", None)
        if check is not None and self.matrix is not None:
            check(list(self.matrix.dimension_ids), self.matrix_snapshot)

    def train(self, mode: bool = True) -> GRPOPolicy:
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()
        return self

    @property
    def dimension_names(self) -> list[str]:
        return list(self.reward.dimension_names)

    def scenario_weights(self, scenario: Tensor) -> Tensor:
        """(B, L) each prompt's scenario weights from the matrix; uniform for prompts without a
        scenario, and for a reward whose dimensions are not the matrix's (a rule reward)."""
        names = self.dimension_names
        own = self.matrix is not None and names == list(self.matrix.dimension_ids)
        return row_weights(cast(Tensor, self.weight_table) if own else None, scenario, len(names))

    # ---- rollouts and rewards -----------------------------------------------------------------
    def rollout(self, batch: dict[str, Any], sampling: SamplingSettings, num_generations: int, seed: int) -> Rollouts:
        pad = int(self.tokenizer.pad_token_id)
        return self.engine.generate(
            self.policy, batch["prompt_ids"], num_generations, sampling, self.stop_ids, pad, seed
        )

    def completion_texts(self, rollouts: Rollouts) -> list[str]:
        """Each completion as text, its EOS and anything after it left out."""
        rows = [ids[mask].tolist() for ids, mask in zip(rollouts.completion_ids, rollouts.completion_mask, strict=True)]
        return [str(t) for t in self.tokenizer.batch_decode(rows, skip_special_tokens=True)]

    def score(self, batch: dict[str, Any], rollouts: Rollouts, num_generations: int) -> tuple[Tensor, list[str]]:
        """(N, L) rewards of every completion, scored on (prompt messages, text), and the texts."""
        texts = self.completion_texts(rollouts)
        prompts = [m for m in batch["messages"] for _ in range(num_generations)]
        rewards = self.reward.score(prompts, texts).to(self.device, torch.float32)
        bad = ~torch.isfinite(rewards).all(1)
        if bool(bad.any()):
            ids = [batch["ids"][i // num_generations] for i in bad.nonzero().flatten().tolist()]
            raise NonFiniteRewardError(f"reward source gave non-finite rewards for completions of prompts {ids[:10]}")
        return rewards, texts

    def advantages(self, rewards: Tensor, weights: Tensor, lengths: Tensor) -> Tensor:
        """(B*G,) advantages of this rank's rollouts; GDPO standardises over every rank's batch."""
        g = self.num_generations
        grouped = rewards.view(-1, g, rewards.shape[1])  # (B, G, L)
        if self.length_penalty > 0:  # an extra dimension: minus the completion's share of the token budget
            short = -(lengths.float() / self.sampling.max_new_tokens).view(-1, g, 1)
            grouped = torch.cat([grouped, short], 2)
            weights = torch.cat([weights, weights.new_full((weights.shape[0], 1), self.length_penalty)], 1)
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1 and self.advantage_mode == "gdpo":
            b = grouped.shape[0]
            every = cast(Tensor, self.all_gather(grouped)).flatten(0, 1)  # (W*B, G, L)
            every_weights = cast(Tensor, self.all_gather(weights)).flatten(0, 1)
            rank = self.global_rank
            adv = group_advantages(every, every_weights, "gdpo", self.std_floor)[rank * b : (rank + 1) * b]
        else:
            adv = group_advantages(grouped, weights, self.advantage_mode, self.std_floor)
        return adv.flatten()

    # ---- log-probabilities --------------------------------------------------------------------
    def logprobs(
        self, rollouts: Rollouts, with_entropy: bool = False, model: torch.nn.Module | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(N, T) log-probabilities of the completions under ``model`` (default: the policy)."""
        return sequence_logprobs(
            self.policy if model is None else model,
            rollouts.prompt_ids,
            rollouts.prompt_mask,
            rollouts.completion_ids,
            rollouts.completion_mask,
            self.sampling.temperature or 1.0,
            with_entropy,
        )

    @torch.no_grad()
    def fixed_logprobs(self, rollouts: Rollouts) -> tuple[Tensor, Tensor | None]:
        """(old_logp, ref_logp), each (N, T), in eval mode, in micro-batches; ref only when beta > 0."""
        was_training = self.policy.training
        self.policy.eval()
        old, ref = [], []
        for rows in self.micro_batches(rollouts.completion_ids.shape[0], shuffle_seed=None):
            part = rollouts.select(rows)
            old.append(self.logprobs(part)[0])
            if self.loss.beta > 0:
                ref.append(self.reference_logprobs(part))
        self.policy.train(was_training)
        return torch.cat(old), torch.cat(ref) if ref else None

    def reference_logprobs(self, rollouts: Rollouts) -> Tensor:
        if self.reference is not None:
            return self.logprobs(rollouts, model=self.reference)[0]
        with self.policy.disable_adapter():  # LoRA: the reference is the model the adapter was added to
            return self.logprobs(rollouts)[0]

    def micro_batches(self, n: int, shuffle_seed: int | None) -> Iterator[Tensor]:
        """Row indices in micro-batches; shuffled with ``shuffle_seed`` (None: in order)."""
        if shuffle_seed is None:
            order = torch.arange(n)
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
        yield from order.split(self.micro_batch_size)

    # ---- training -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Say the effective batch: prompts x G rollouts per device x devices x nodes, accumulated
        over micro-batches (Lightning's accumulate_grad_batches cannot be used: manual optimisation)."""
        rows = (per_device_batch(self.trainer) or 0) * self.num_generations
        note = micro_batch_note(rows, self.micro_batch_size, self.num_iterations)
        log_effective_batch(self, "prompts", group=self.num_generations, group_unit="rollouts", note=note)
        log_loss_settings(self, self.loss)

    def on_train_start(self) -> None:
        """Validate before the first step, so the run's logs show where the policy started."""
        self.engine.sync(self.policy, self.trainer.strategy.model)  # an engine's own copy starts from these weights
        if self.global_step == 0 and not self.validated_before_training and self.trainer.val_dataloaders is not None:
            self.validated_before_training = True
            trainer = self.trainer
            trainer.validating = True
            trainer.fit_loop.epoch_loop.val_loop.run()
            trainer.training = True

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        g = self.num_generations
        seed = mix_seed(self.seed, self.rollout_step, self.global_rank)
        rollouts = self.rollout(batch, self.sampling, g, seed)
        self.rollout_step += 1
        rewards, _ = self.score(batch, rollouts, g)
        weights = self.scenario_weights(batch["scenario"].to(self.device))  # (B, L)
        lengths = rollouts.lengths
        adv = self.advantages(rewards, weights, lengths)  # (N,)
        old_logp, ref_logp = self.fixed_logprobs(rollouts)
        mask = (
            rollouts.completion_mask & ~rollouts.truncated[:, None] if self.mask_truncated else rollouts.completion_mask
        )
        stats = self.optimise(rollouts, adv, old_logp, ref_logp, mask.float(), seed)
        if rollouts.sampler_logprobs is not None:  # the engine's own log-probs (vLLM) against the trainer's
            stats["logp_gap"] = logp_gap(rollouts.sampler_logprobs, old_logp, rollouts.completion_mask)
        totals = weighted_total(rewards, weights.repeat_interleave(g, 0))  # (N,)
        self.log_rollout(rewards, totals, adv, rollouts, stats)

    def optimise(
        self, rollouts: Rollouts, adv: Tensor, old_logp: Tensor, ref_logp: Tensor | None, mask: Tensor, seed: int
    ) -> dict[str, Tensor]:
        """``num_iterations`` optimizer steps over the rollout batch; returns the metrics."""
        opt, scheduler = cast(LightningOptimizer, self.optimizers()), self.lr_schedulers()
        world = self.trainer.world_size
        tokens = self.trainer.strategy.reduce(mask.sum(), reduce_op="sum")
        sequences = self.trainer.strategy.reduce((mask.sum(1) > 0).sum().float(), reduce_op="sum")
        # DDP averages gradients over ranks: a local denominator of (global count / W) makes the
        # sum over ranks and micro-batches the gradient of the whole batch's mean
        num_tokens, num_sequences = tokens / world, sequences / world
        empty = float(tokens) == 0  # nothing in the loss (all truncated, mask_truncated): no update
        sums: dict[str, Tensor] = {}
        for iteration in range(self.num_iterations):
            opt.zero_grad(set_to_none=True)
            for rows in [] if empty else self.micro_batches(adv.shape[0], mix_seed(seed, iteration)):
                part = rollouts.select(rows)
                logp, entropy = self.logprobs(part, with_entropy=iteration == 0)
                ref = ref_logp[rows] if ref_logp is not None else None
                sampler = part.sampler_logprobs  # (n, T) or None: the TIS correction's denominator
                out = self.loss(
                    logp, old_logp[rows], adv[rows], mask[rows], ref, num_tokens, num_sequences, sampler_logp=sampler
                )
                self.manual_backward(out.loss)
                self._accumulate(sums, out, mask[rows], entropy)
            root, limit = self.trainer.strategy.model, self.max_grad_norm or float("inf")
            if isinstance(root, FullyShardedDataParallel):  # FSDP1: torch's clip would see local shards only
                norm = root.clip_grad_norm_(limit)
            else:
                norm = torch.nn.utils.clip_grad_norm_([p for p in self.parameters() if p.requires_grad], limit)
            norm = norm.full_tensor() if isinstance(norm, DTensor) else norm  # FSDP2: a DTensor
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + norm.detach() / self.num_iterations
            opt.step()
            self.engine.sync(self.policy, self.trainer.strategy.model)  # an engine's own copy is now stale
            if scheduler is not None:
                scheduler.step()  # type: ignore[union-attr]
        return sums

    def _accumulate(self, sums: dict[str, Tensor], out: Any, mask: Tensor, entropy: Tensor | None) -> None:
        """Token-weighted sums of the loss metrics over micro-batches and passes."""
        n = mask.sum()
        sums["loss"] = sums.get("loss", 0.0) + out.loss.detach() / self.num_iterations
        sums["tokens"] = sums.get("tokens", 0.0) + n
        for key in ("kl", "clip_frac_low", "clip_frac_high", "tis_weight_mean", "tis_clipped_frac"):
            if key in out.metrics:  # the TIS metrics: only with sampler log-probs and a tis_cap
                sums[key] = sums.get(key, 0.0) + out.metrics[key] * n
        if entropy is not None:
            sums["entropy"] = sums.get("entropy", 0.0) + (entropy.detach() * mask).sum()
            sums["entropy_tokens"] = sums.get("entropy_tokens", 0.0) + n

    def log_rollout(self, rewards: Tensor, totals: Tensor, adv: Tensor, rollouts: Rollouts, sums: dict) -> None:
        metrics = reward_metrics(
            rewards, totals, rollouts.lengths, self.dimension_names, self.num_generations, self.std_floor
        )
        tokens = sums.get("tokens", torch.tensor(0.0)).clamp(min=1)
        metrics |= {
            "policy/loss": sums.get("loss", torch.tensor(0.0)),
            "policy/kl": sums.get("kl", torch.tensor(0.0)) / tokens,
            "policy/clip_frac/low": sums.get("clip_frac_low", torch.tensor(0.0)) / tokens,
            "policy/clip_frac/high": sums.get("clip_frac_high", torch.tensor(0.0)) / tokens,
            "policy/grad_norm": sums["grad_norm"],
            "completions/mean_length": rollouts.lengths.float().mean(),
            "completions/truncated_frac": rollouts.truncated.float().mean(),
            "advantage/mean": adv.mean(),
            "advantage/std": adv.std(),
        }
        if "entropy" in sums:
            metrics["policy/entropy"] = sums["entropy"] / sums["entropy_tokens"].clamp(min=1)
        if "logp_gap" in sums:
            metrics["rollout/logp_gap"] = sums["logp_gap"]
        if "tis_weight_mean" in sums:
            metrics["tis/weight_mean"] = sums["tis_weight_mean"] / tokens
            metrics["tis/clipped_frac"] = sums["tis_clipped_frac"] / tokens
        b = rewards.shape[0] // self.num_generations
        self.log_dict({k: v.float() for k, v in metrics.items()}, batch_size=b, sync_dist=True)
        self.log("train/reward", metrics["reward/total/mean"].float(), batch_size=b, prog_bar=True, sync_dist=True)

    # ---- validation ---------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:  # type: ignore[override]
        """One completion per held-out prompt (fixed seed); returns the samples for RolloutSamples."""
        seed = mix_seed(self.seed, VAL_SEED_OFFSET, batch_idx, self.global_rank)
        rollouts = self.rollout(batch, self.val_sampling, 1, seed)
        rewards, texts = self.score(batch, rollouts, 1)
        totals = weighted_total(rewards, self.scenario_weights(batch["scenario"].to(self.device)))  # (B,)
        b = rewards.shape[0]
        for name, values in zip(self.dimension_names, rewards.unbind(1), strict=True):
            self.log(f"val/reward/{name}", values.mean(), batch_size=b, sync_dist=True)
        self.log("val/reward/total", totals.mean(), batch_size=b, sync_dist=True, prog_bar=True)
        self.log("val/length", rollouts.lengths.float().mean(), batch_size=b, sync_dist=True)
        self.log("val/truncated_frac", rollouts.truncated.float().mean(), batch_size=b, sync_dist=True)
        return [
            {
                "id": batch["ids"][i],
                "prompt": batch["messages"][i][-1]["content"],
                "completion": texts[i],
                "rewards": dict(zip(self.dimension_names, rewards[i].tolist(), strict=True)),
                "total": float(totals[i]),
                "length": int(rollouts.lengths[i]),
                "truncated": bool(rollouts.truncated[i]),
            }
            for i in range(b)
        ]

    # ---- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["lit_mrrml_policy"] = {
            "rollout_step": self.rollout_step,
            "validated": self.validated_before_training,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("lit_mrrml_policy", {})
        self.rollout_step = int(state.get("rollout_step", 0))
        self.validated_before_training = bool(state.get("validated", False))
