"""The configuration-keyed cache: hit, miss, corrupt file, atomic write."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uel_helpers.cache import atomic_write, cache_path, cached, config_key, file_sha256, tensor_fingerprint


def _save(arr, path):
    with open(path, "wb") as fh:
        np.save(fh, arr)


def test_key_is_stable_and_order_free():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})
    assert tensor_fingerprint(torch.zeros(3)) != tensor_fingerprint(torch.zeros(4))


def test_cached_builds_once_and_writes_config(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return np.arange(5)

    kwargs = dict(save=_save, load=np.load, suffix=".npy", root=tmp_path)
    a = cached("demo", {"n": 5}, build, **kwargs)
    b = cached("demo", {"n": 5}, build, **kwargs)
    assert np.array_equal(a, b) and len(calls) == 1
    path = cache_path("demo", {"n": 5}, ".npy", tmp_path)
    entry = json.loads(path.with_suffix(".json").read_text())
    assert entry["config"] == {"n": 5} and entry["format"] == "uel-cache-2"
    assert entry["sha256"] == file_sha256(path) and entry["bytes"] == path.stat().st_size
    cached("demo", {"n": 6}, build, **kwargs)
    assert len(calls) == 2


def test_corrupt_file_is_rebuilt_with_a_warning(tmp_path):
    path = cache_path("demo", {"n": 1}, ".npy", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding"):
        out = cached("demo", {"n": 1}, lambda: np.ones(2), save=_save, load=np.load, suffix=".npy", root=tmp_path)
    assert np.array_equal(out, np.ones(2)) and np.array_equal(np.load(path), np.ones(2))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.npy"

    def boom(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert not target.exists() and list(tmp_path.iterdir()) == []
