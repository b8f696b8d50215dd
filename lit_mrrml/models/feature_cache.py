"""Cache of frozen-backbone features, so that epochs after the first cost only the head.

Keys are content hashes of (token ids, anchor index), so a cached feature can never be served for
a different sequence; files are namespaced by a fingerprint of the backbone's weights and config,
so a cache directory can be shared between runs (the GPRC run and its baseline, say) safely.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


def backbone_fingerprint(backbone: nn.Module, extra: str = "") -> str:
    """sha256 of the backbone's config and a sample of every parameter: differs when the weights do."""
    digest = hashlib.sha256(extra.encode("utf-8"))
    config = getattr(backbone, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode("utf-8"))
    for name, param in backbone.state_dict().items():
        digest.update(name.encode("utf-8"))
        if isinstance(param, Tensor) and param.numel():
            digest.update(param.detach().flatten()[:16].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def sequence_key(input_ids: Tensor, anchor: int) -> str:
    """Content hash of one sequence's real token ids (1-D, no padding) and its anchor."""
    data = input_ids.to(torch.int64).cpu().numpy().tobytes() + anchor.to_bytes(4, "little")
    return hashlib.sha1(data).hexdigest()


class FeatureCache:
    """Maps sequence keys to (2, H) features: h at the last token and h at the anchor."""

    def __init__(self, fingerprint: str, directory: str | Path | None = None) -> None:
        self.fingerprint = fingerprint
        self.directory = Path(directory) if directory is not None else None
        self.entries: dict[str, Tensor] = {}
        self.dirty = False

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, keys: list[str]) -> Tensor | None:
        """(N, 2, H) features for every key, or None if any is missing."""
        if not keys or any(k not in self.entries for k in keys):
            return None
        return torch.stack([self.entries[k] for k in keys])

    def put(self, keys: list[str], features: Tensor) -> None:
        """Store (N, 2, H) features, detached and on the CPU."""
        for key, value in zip(keys, features.detach().cpu(), strict=True):
            self.entries[key] = value.clone()
        self.dirty = True

    def load(self) -> int:
        """Merge every cache file of this fingerprint found in the directory; returns entries read."""
        if self.directory is None:
            return 0
        count = 0
        for path in sorted(self.directory.glob(f"{self.fingerprint}-*.safetensors")):
            loaded = load_file(str(path))
            count += len(loaded)
            self.entries.update(loaded)
        return count

    def save(self, rank: int = 0) -> Path | None:
        """Write this process's entries (atomically) when there are new ones."""
        if self.directory is None or not self.dirty:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.fingerprint}-rank{rank}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in self.entries.items()}, str(tmp))
        tmp.replace(path)
        self.dirty = False
        return path
