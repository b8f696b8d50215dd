"""Cheap fingerprints of model files, so that caches notice retrained weights in the same place.

Hashing 100 GB of weights would take minutes; a file's name, size and its first and last 64 KiB
change whenever training writes new weights (safetensors headers and tensor bytes both move).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".ckpt", ".json", ".model")
PROBE = 1 << 16  # bytes read at each end of a file


def files_fingerprint(paths: Iterable[Path]) -> str:
    """12 hex digits over the model files among ``paths`` (folders are walked), in sorted order."""
    digest = hashlib.sha256()
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    for path in files:
        if path.suffix not in WEIGHT_SUFFIXES:
            continue
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(PROBE))
            if size > PROBE:
                handle.seek(max(PROBE, size - PROBE))
                digest.update(handle.read(PROBE))
    return digest.hexdigest()[:12]
