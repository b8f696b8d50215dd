"""The global random number generators of a process, as plain data to checkpoint and restore.

``capture`` reads the states of torch (CPU and every CUDA device), numpy and Python's ``random``;
``restore`` sets them back, so that dropout and anything else drawing from them continue as if
the process had never stopped. The states are tensors, ints, floats and strings only, so a
checkpoint holding them still loads with ``torch.load(weights_only=True)``. ``capture_all_ranks``
gathers every rank's state (a collective: every rank must call it, as every rank runs Lightning's
``dump_checkpoint``) so that rank 0's checkpoint file carries them all.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

RNGState = dict[str, Any]


def capture() -> RNGState:
    """This process's generator states (a copy: later draws do not change it)."""
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),  # (5056,) uint8
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),  # (624,): uint32 values
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }


def restore(state: RNGState) -> None:
    """Set this process's generators to ``state`` (from ``capture``); CUDA states are set only
    when this process sees as many devices as the captured one."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["algorithm"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))


def capture_all_ranks() -> list[RNGState]:
    """Every rank's ``capture()``, indexed by global rank (one entry without torch.distributed)."""
    state = capture()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states
