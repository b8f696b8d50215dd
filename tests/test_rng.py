"""lit_mrrml.rng: capture and restore the global generators; the states survive torch.save/load."""

from __future__ import annotations

import io
import os
import random
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_mrrml import rng


def draws() -> tuple[list[float], list[float], list[float], float]:
    """One draw of each generator: torch, numpy (a uniform and a normal: its cached Gaussian), Python."""
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [np.random.randn(), np.random.randn()], random.random()


def test_restore_replays_the_draws_after_the_capture() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    np.random.randn()  # leaves numpy a cached Gaussian
    state = rng.capture()
    expected = draws()
    assert draws() != expected  # the generators moved on
    rng.restore(state)
    assert draws() == expected


def test_the_state_is_a_copy() -> None:
    state = rng.capture()
    first = draws()
    draws()
    rng.restore(state)
    assert draws() == first  # later draws did not change the captured state


def test_the_state_loads_with_weights_only() -> None:
    state = rng.capture()
    expected = draws()
    buffer = io.BytesIO()
    torch.save({"rng": [state]}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["rng"][0]
    rng.restore(loaded)
    assert draws() == expected


def test_one_process_gives_one_state() -> None:
    states = rng.capture_all_ranks()
    assert len(states) == 1 and torch.equal(states[0]["torch"], torch.get_rng_state())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gather(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(100 + rank)  # each rank its own stream
    states = rng.capture_all_ranks()
    own_next = torch.rand(4)
    if rank == 0:
        rng.restore(states[1])  # rank 1's state, restored on rank 0
        torch.save({"replayed": torch.rand(4)}, out + ".0")
    else:
        torch.save({"own": own_next}, out + ".1")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.distributed
def test_every_ranks_state_is_gathered_in_rank_order(tmp_path) -> None:
    out = str(tmp_path / "draws")
    mp.start_processes(_gather, args=(free_port(), out), nprocs=2, start_method="fork")
    replayed = torch.load(out + ".0", weights_only=True)["replayed"]
    own = torch.load(out + ".1", weights_only=True)["own"]
    torch.testing.assert_close(replayed, own, rtol=0, atol=0)  # rank 0 holds rank 1's stream
