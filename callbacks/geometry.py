"""GeometryMonitor: log GPRC's geometry per dimension and draw it, at the end of each validation.

Every validation unit's answers are placed in the plane of (its dimension's axis, the largest
perpendicular component): x = <z - z_x, e_i>, y = the first principal component of what is left
of z - z_x once the axis part is removed. A healthy reward space shows each unit's best, medium
and worst answers in that order along x, close to a line (small y spread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from torch import Tensor

from callbacks.figures import send_figure
from lit_mrrml.losses.functional import unit_axes
from lit_mrrml.losses.statistics import pooled_rates, unit_statistics

COLOURS = ("#1a9850", "#fdae61", "#d73027")  # best, medium, worst


def project_on_axis(v: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
    """(x, y) coordinates of anchored vectors v (N, d) in the plane of unit axis e (d,) and the
    first principal component of the perpendicular parts; y is 0 when there is no spread."""
    x = v @ e  # (N,)
    perp = v - x[:, None] * e[None, :]  # (N, d)
    centered = perp - perp.mean(0, keepdim=True)
    if centered.shape[0] < 2 or float(centered.abs().max()) == 0.0:
        return x, torch.zeros_like(x)
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    return x, perp @ vh[0]


class GeometryMonitor(L.Callback):
    """Logs ``geometry/<dimension>/<metric>`` and saves ``<log_dir>/geometry/epoch=N/<dimension>.png``,
    which also goes to the run's loggers that take images (TensorBoard, W&B, MLflow) under
    ``geometry/epoch=N/<dimension>``."""

    def __init__(self, save_plots: bool = True, max_units: int = 200) -> None:
        """
        Args:
            save_plots: Save one PNG per dimension at each validation end (off: metrics only).
            max_units: Most units drawn per dimension (the first ones of the validation set).
        """
        self.save_plots, self.max_units = save_plots, max_units
        self.outputs: list[dict[str, Tensor]] = []
        self.saved: list[Path] = []
        self.sent: list[tuple[str, str]] = []  # (tag, logger class) of every figure a logger took

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.outputs = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if isinstance(outputs, dict) and "z" in outputs:
            self.outputs.append({k: v.detach().cpu() for k, v in outputs.items() if isinstance(v, Tensor)})

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.outputs:
            return
        names = [str(name) for name in cast(list[str], pl_module.dimension_names)]
        data = self._gather(self.outputs)
        log_dir = Path(trainer.log_dir or ".")  # on every rank: under DDP, log_dir is a broadcast
        stats = unit_statistics(data["z"], data["rewards"], data["axes"], data["num_responses"])
        for index, name in enumerate(names):
            select = data["dimension"] == index
            if not bool(select.any()):
                continue
            rates = pooled_rates(stats, select)
            for metric in ("axis_cos", "betweenness", "perp_ratio", "pair_acc"):
                if not rates[metric].isnan():
                    pl_module.log(f"geometry/{name}/{metric}", rates[metric], rank_zero_only=True)
            if self.save_plots and trainer.is_global_zero:
                self.saved.append(self._plot(trainer, log_dir, name, data, select, rates))

    @staticmethod
    def _gather(outputs: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        k = max(o["z"].shape[1] for o in outputs)

        def pad(x: Tensor) -> Tensor:  # (B, K', ...) -> (B, K, ...)
            if x.dim() < 2 or x.shape[1] == k:
                return x
            shape = (x.shape[0], k - x.shape[1], *x.shape[2:])
            return torch.cat([x, x.new_zeros(shape)], dim=1)

        keys = ("z", "z_anchor", "rewards", "axes", "num_responses", "dimension")
        return {
            key: torch.cat([pad(o[key]) if key in ("z", "z_anchor", "rewards") else o[key] for o in outputs])
            for key in keys
        }

    def _plot(
        self,
        trainer: L.Trainer,
        log_dir: Path,
        name: str,
        data: dict[str, Tensor],
        select: Tensor,
        rates: dict[str, Tensor],
    ) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        idx = select.nonzero().squeeze(1)[: self.max_units]
        n = data["num_responses"][idx]
        v = (data["z"][idx] - data["z_anchor"][idx]).float()  # (U, K, d)
        e = unit_axes(data["axes"][idx][0].float())
        valid = torch.arange(v.shape[1])[None, :] < n[:, None]
        x, y = project_on_axis(v[valid], e)
        coords = torch.zeros(*v.shape[:2], 2)
        coords[valid] = torch.stack([x, y], dim=1)
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
        for u in range(len(idx)):
            pts = coords[u, : int(n[u])]
            ax.plot(pts[:, 0], pts[:, 1], color="0.8", linewidth=0.6, zorder=1)
            kinds = [0, 2] if int(n[u]) == 2 else [0, *([1] * (int(n[u]) - 2)), 2]
            for (px, py), kind in zip(pts.tolist(), kinds, strict=True):
                ax.scatter(px, py, s=14, color=COLOURS[kind], zorder=2)
        for kind, label in enumerate(("best", "medium", "worst")):
            ax.scatter([], [], color=COLOURS[kind], label=label)
        ax.set_xlabel(f"along the '{name}' axis: <z - z_x, e>")
        ax.set_ylabel("largest perpendicular component")
        ax.set_title(
            f"{name} (epoch {trainer.current_epoch}): pair acc {float(rates['pair_acc']):.2f}, "
            f"axis cos {float(rates['axis_cos']):.2f}, between {float(rates['betweenness']):.2f}",
            fontsize=9,
        )
        ax.legend(loc="best", fontsize=8)
        folder = log_dir / "geometry" / f"epoch={trainer.current_epoch}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path)
        tag = f"geometry/epoch={trainer.current_epoch}/{name}"
        self.sent += [(tag, kind) for kind in send_figure(trainer.loggers, tag, fig, path, trainer.global_step)]
        plt.close(fig)
        return path
