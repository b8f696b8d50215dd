"""ExportOnFitEnd: write the trained model's ``save_pretrained`` folder when ``fit`` ends."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L


class ExportOnFitEnd(L.Callback):
    """Exports the module (a policy's Hugging Face folder, a reward model's export) after fit.

    Args:
        directory: Folder to write; default ``<trainer.default_root_dir>/export``.
        merge: For a LoRA policy, merge the adapter into the base (an ordinary HF model folder).
    """

    def __init__(self, directory: str | None = None, merge: bool = True) -> None:
        self.directory, self.merge = directory, merge

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.interrupted:
            return
        directory = Path(self.directory or Path(trainer.default_root_dir) / "export")
        save = getattr(pl_module, "save_pretrained", None)
        if save is None:
            raise TypeError(f"{type(pl_module).__name__} has no save_pretrained to export with")
        options = {"merge": self.merge} if "merge" in inspect.signature(save).parameters else {}
        save(directory, **options)
        print(f"exported to {directory}")
