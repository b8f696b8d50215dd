"""GPRCWarmup, GeometryMonitor and RewardPredictionWriter on short CPU runs."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from PIL import Image

from callbacks import GeometryMonitor, GPRCWarmup
from callbacks.geometry import project_on_axis
from lit_mrrml import GPRCLoss
from tests.modules.test_reward_model import make_data, make_model, trainer


class Recorder(L.Callback):
    """Records the loss weights in force at each training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.global_step, pl_module.loss.alpha, pl_module.loss.beta))


def test_warmup_ramps_alpha_and_beta_linearly(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, loss=GPRCLoss(alpha=0.4, beta=0.2))
    recorder = Recorder()
    t = trainer(tmp_path, max_steps=6, callbacks=[GPRCWarmup(steps=4), recorder])
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    expected = [(s, 0.4 * min(1, s / 4), 0.2 * min(1, s / 4)) for s in range(6)]  # step, alpha, beta
    assert [s for s, _, _ in recorder.seen] == list(range(6))
    assert [a for _, a, _ in recorder.seen] == pytest.approx([a for _, a, _ in expected])
    assert [b for _, _, b in recorder.seen] == pytest.approx([b for _, _, b in expected])
    assert (model.loss.alpha, model.loss.beta) == (0.4, 0.2)  # restored when fitting ends


def test_warmup_needs_a_gprc_style_loss(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix)
    model.loss = torch.nn.MSELoss()
    with pytest.raises(TypeError, match="alpha"):
        trainer(tmp_path, callbacks=[GPRCWarmup(steps=2)]).fit(model, datamodule=make_data(tiny_spec, unit_files))
    with pytest.raises(ValueError):
        GPRCWarmup(steps=0)


def test_geometry_monitor_logs_and_draws_each_dimension(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix)
    monitor = GeometryMonitor()
    t = trainer(
        tmp_path,
        max_steps=-1,
        max_epochs=1,
        limit_val_batches=None,
        callbacks=[monitor],
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
    )
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    names = {p.stem for p in monitor.saved}
    assert names == set(matrix.dimension_ids)
    for path in monitor.saved:
        assert path.parent.name == "epoch=0"
        with Image.open(path) as image:
            assert image.size[0] > 300 and image.size[1] > 200
    for dim in matrix.dimension_ids:
        assert f"geometry/{dim}/axis_cos" in t.callback_metrics


def test_projection_puts_axis_on_x_and_spread_on_y():
    e = torch.tensor([1.0, 0.0, 0.0])
    v = torch.tensor([[2.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    x, y = project_on_axis(v, e)
    torch.testing.assert_close(x, torch.tensor([2.0, 1.0, 0.0]))
    torch.testing.assert_close(y.abs(), torch.tensor([1.0, 1.0, 0.0]))
    x, y = project_on_axis(v[:, :1].expand(3, 3) * e, e)  # all on the axis: no perpendicular spread
    assert torch.all(y == 0)
