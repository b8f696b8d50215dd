"""ExportOnFitEnd: write the trained model's ``save_pretrained`` folder when ``fit`` ends.

A sharded module (FSDP2 under ModelParallelStrategy) holds 1/W of each weight on each rank, so
``save_pretrained`` on rank 0 alone cannot write it: every rank first takes part in gathering the
full state dict onto rank 0's CPU, which then rebuilds an unsharded twin of the module from its
hyperparameters (and the collaborators they leave out: the loss, a policy's reward source and
rollout engine), loads the gathered weights into it and exports the twin. Rank 0 then holds the
model twice in CPU memory for a moment.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L

COLLABORATORS = ("loss", "reward", "engine")  # constructor arguments kept out of the hyperparameters


class ExportOnFitEnd(L.Callback):
    """Exports the module (a policy's Hugging Face folder, a reward model's export) after fit.

    Args:
        directory: Folder to write; default ``<trainer.default_root_dir>/export``.
        merge: For a LoRA policy, merge the adapter into the base (an ordinary HF model folder).
    """

    def __init__(self, directory: str | None = None, merge: bool = True) -> None:
        self.directory, self.merge = directory, merge

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.interrupted:
            return
        from lit_mrrml.models.sharding import is_sharded

        module = unsharded_twin(pl_module, trainer.is_global_zero) if is_sharded(pl_module) else pl_module
        if not trainer.is_global_zero or module is None:
            return
        directory = Path(self.directory or Path(trainer.default_root_dir) / "export")
        save = getattr(module, "save_pretrained", None)
        if save is None:
            raise TypeError(f"{type(module).__name__} has no save_pretrained to export with")
        options = {"merge": self.merge} if "merge" in inspect.signature(save).parameters else {}
        save(directory, **options)
        print(f"exported to {directory}")


def unsharded_twin(module: L.LightningModule, is_global_zero: bool) -> Any:
    """On rank 0, an unsharded copy of a sharded ``module`` holding its full weights (None on the
    other ranks). Every rank must call it: gathering the weights is a collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # the full tensors on rank 0 only
    state = get_model_state_dict(module, options=options)
    if not is_global_zero:
        return None
    accepted = inspect.signature(type(module).__init__).parameters
    arguments = {k: v for k, v in module.hparams.items() if k in accepted}  # not LightningCLI's _class_path
    arguments |= {name: getattr(module, name) for name in COLLABORATORS if name in accepted and hasattr(module, name)}
    twin: Any = type(module)(**arguments)
    twin.configure_model()
    twin.load_state_dict(state)
    return twin
