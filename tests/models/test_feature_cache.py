"""FeatureCache: content-keyed, fingerprint-namespaced, atomic files."""

from __future__ import annotations

import torch

from lit_mrrml.models.backbone import build_backbone
from lit_mrrml.models.feature_cache import FeatureCache, backbone_fingerprint, sequence_key


def test_keys_depend_on_tokens_and_anchor():
    ids = torch.tensor([1, 2, 3])
    assert sequence_key(ids, 1) == sequence_key(ids.clone(), 1)
    assert sequence_key(ids, 1) != sequence_key(ids, 2)
    assert sequence_key(ids, 1) != sequence_key(torch.tensor([1, 2, 4]), 1)


def test_get_is_all_or_nothing_and_round_trips_through_disk(tmp_path):
    cache = FeatureCache("abc", tmp_path)
    feats = torch.randn(2, 2, 8)
    cache.put(["k1", "k2"], feats)
    torch.testing.assert_close(cache.get(["k2", "k1"]), feats.flip(0))
    assert cache.get(["k1", "missing"]) is None and cache.get([]) is None
    path = cache.save(rank=0)
    assert path is not None and path.name == "abc-rank0.safetensors"
    assert cache.save(rank=0) is None  # nothing new to write
    other = FeatureCache("abc", tmp_path)
    assert other.load() == 2
    torch.testing.assert_close(other.get(["k1", "k2"]), feats)
    assert FeatureCache("other", tmp_path).load() == 0  # another backbone never reads these


def test_fingerprint_changes_with_the_weights(tiny_spec):
    torch.manual_seed(0)
    a = build_backbone(tiny_spec)
    torch.manual_seed(0)
    b = build_backbone(tiny_spec)
    assert backbone_fingerprint(a) == backbone_fingerprint(b)
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1.0
    assert backbone_fingerprint(a) != backbone_fingerprint(b)
