"""Issue 16, items 1, 7-11, 13-14: class-wise stated by the attack, compact δ, and a cache that never hands back
wrong data (damaged member names, changed content, read-only folders) nor costs more than the work."""

from __future__ import annotations

import json
import os
import warnings
import zipfile

import numpy as np
import pytest
import torch

from uel_helpers.cache import cache_path, cached
from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.experiments import run_experiment
from uel_helpers.poisons import REGISTRY, Poison, make_poison
from uel_helpers.poisons.base import dataset_fingerprint, poison_from_delta
from uel_helpers.training import History


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("UEL_CACHE", str(tmp_path))
    return tmp_path


def _entries(root, kind="poisons", suffix=".npz"):
    return sorted((root / kind).glob(f"*{suffix}"))


# --- 1. class-wise is stated, never inferred from shapes --------------------------------------------------
def test_one_image_per_class_classwise_noise_follows_labels():
    ds = synthetic_dataset(n_per_class=1, num_classes=10, channels=3, size=8, seed=0)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))  # labels not in index order
    ds = ImageSet(ds.images[perm], ds.labels[perm], ds.classes)
    p = make_poison("random-noise-classwise", ds, cache=False)
    assert p.classwise and p.perturbation.shape[0] == 10
    for i in range(10):  # image i gets δ[label_i]
        expected = torch.floor((ds.to_float()[i] + p.perturbation[int(ds.labels[i])]).clamp(0, 1) * 255 + 0.5)
        assert torch.equal(p.poisoned.images[i], expected.to(torch.uint8))
        assert torch.equal(p.sample_perturbation(i), p.perturbation[int(ds.labels[i])])


def test_samplewise_noise_on_one_image_per_class_is_samplewise():
    ds = synthetic_dataset(n_per_class=1, num_classes=10, channels=3, size=8, seed=0)
    p = make_poison("random-noise-samplewise", ds, cache=False)
    assert not p.classwise and torch.equal(p.sample_perturbation(3), p.perturbation[3])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_attack_states_classwise(name):
    """The kind: every registered attack says whether its δ is class-wise (a bool, not a guess)."""
    ds = synthetic_dataset(n_per_class=1, num_classes=4, channels=3, size=8, seed=0)
    if name in ("em-samplewise", "em-classwise", "tap"):
        params = {"profile": "smoke"}
    else:
        params = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = make_poison(name, ds, cache=False, quiet=True, **params)
    assert isinstance(p.classwise, bool)
    if p.perturbation is not None:
        assert p.perturbation.shape[0] == (ds.num_classes if p.classwise else len(ds))


def test_poison_refuses_an_unstated_classwise():
    ds = synthetic_dataset(n_per_class=1, num_classes=2, channels=1, size=4, seed=0)
    with pytest.raises(TypeError, match="classwise"):
        poison_from_delta("x", ds, torch.zeros(2, 1, 4, 4), {}, 0)  # keyword is required
    with pytest.raises(TypeError, match="classwise must be True or False"):
        Poison("x", ds, None, {}, 0, dataset_fingerprint(ds), classwise=None)


# --- 7. OPS and LSP store what the attack is -----------------------------------------------------------------
def test_ops_stores_its_pixel_table_not_a_dense_delta():
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=8, seed=0)
    p = make_poison("ops", ds, cache=False)
    assert p.perturbation is None and p.classwise and len(p.info["pixels"]) == 3


def test_lsp_delta_is_built_lazily_from_its_patch_grid():
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=8, seed=0)
    p = make_poison("lsp", ds, cache=False)
    assert p._perturbation is None and p.has_perturbation  # poisoning did not keep a dense δ
    delta = p.perturbation
    assert delta.shape == (6, 3, 8, 8) and not p.classwise
    expected = torch.floor((ds.to_float() + delta).clamp(0, 1) * 255).to(torch.uint8)  # LSP truncates
    assert torch.equal(p.poisoned.images, expected)


# --- 8. a damaged member name is corruption -----------------------------------------------------------------
def _flip_central_directory_name(path, member=b"perturbation.npy"):
    raw = bytearray(path.read_bytes())
    where = raw.rfind(member)  # the central-directory copy comes last
    assert where > 0
    raw[where + 3] ^= 0x01
    path.write_bytes(bytes(raw))


def test_flipped_member_name_is_rebuilt(cache_root):
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=8, seed=0)
    first = make_poison("random-noise-classwise", ds)  # class-wise δ is stored
    (entry,) = _entries(cache_root)
    _flip_central_directory_name(entry)
    with pytest.raises(ValueError, match="differ from the declared"):
        Poison.load(entry)  # even without the cache's hash, the header's member list catches it
    with pytest.warns(UserWarning, match="cannot be trusted"):
        again = make_poison("random-noise-classwise", ds)
    assert again.perturbation is not None and torch.equal(again.perturbation, first.perturbation)
    Poison.load(entry, clean=ds)  # rebuilt on disk


# --- 9. well-formed entries with wrong content ---------------------------------------------------------------
def test_one_changed_image_byte_is_caught(cache_root):
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=8, seed=0)
    first = make_poison("random-noise-samplewise", ds)
    (entry,) = _entries(cache_root)
    with np.load(entry) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0, 0] ^= 1
    with open(entry, "wb") as fh:
        np.savez(fh, **arrays)  # a well-formed file, one image byte changed
    with pytest.warns(UserWarning, match="content differs"):
        again = make_poison("random-noise-samplewise", ds)
    assert torch.equal(again.poisoned.images, first.poisoned.images)


def _history_entry(root):
    (entry,) = _entries(root, "runs", ".history")
    return entry


def test_changed_digit_in_a_run_history_is_caught(cache_root):
    train, test = synthetic_dataset(n_per_class=4, num_classes=3, channels=1, size=8, seed=0), \
        synthetic_dataset(n_per_class=2, num_classes=3, channels=1, size=8, seed=1)
    first = run_experiment("none", dataset=(train, test), protocol="smoke", baseline=False)
    entry = _history_entry(cache_root)
    text = entry.read_text()
    data = json.loads(text)
    data["test_acc"][-1] = 0.0 if data["test_acc"][-1] != 0.0 else 1.0
    entry.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="content differs"):
        again = run_experiment("none", dataset=(train, test), protocol="smoke", baseline=False)
    assert again.mean == first.mean


def test_empty_history_is_corruption_even_with_a_matching_hash(tmp_path):
    """A History that claims epochs but holds no accuracies is refused by its loader (not an IndexError later)."""
    path = tmp_path / "h.history"
    empty = {"train_loss": [], "train_acc": [], "test_acc": [], "epoch_time": [], "wall_time": 1.0, "config": {}}
    path.write_text(json.dumps(empty))
    with pytest.raises(ValueError, match="test_acc"):
        History.load(path)


# --- 10. a read-only cache costs only the caching -----------------------------------------------------------
def test_unwritable_cache_folder_warns_and_returns_the_result(tmp_path, monkeypatch):
    """UEL_CACHE points where no folder can be made (a file stands there; chmod would not stop root): the poison
    is computed, a warning says it is not cached, and the result is returned."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file")
    monkeypatch.setenv("UEL_CACHE", str(blocked))
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=8, seed=0)
    with pytest.warns(UserWarning, match="not writable.*not cached"):
        p = make_poison("random-noise-samplewise", ds)
    assert torch.equal(p.poisoned.images, make_poison("random-noise-samplewise", ds, cache=False).poisoned.images)


def test_unwritable_store_warns_and_returns_the_result(tmp_path):
    """The same path as a read-only folder, made by a save that fails with PermissionError (runs as root too)."""
    def save(value, path):
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.warns(UserWarning, match="not writable.*not cached"):
        out = cached("demo", {"n": 1}, lambda: 42, save, load=lambda p: None, root=tmp_path)
    assert out == 42 and not list((tmp_path / "demo").glob(".tmp*"))


def test_unremovable_corrupt_entry_still_rebuilds(tmp_path, monkeypatch):
    path = cache_path("demo", {"n": 1}, ".npy", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "unlink", refuse)
    with pytest.warns(UserWarning, match="cannot be trusted"):
        out = cached("demo", {"n": 1}, lambda: np.ones(2), lambda a, p: np.save(p, a), np.load, suffix=".npy",
                     root=tmp_path)
    assert np.array_equal(out, np.ones(2))


def test_cache_writes_one_temporary_file_not_one_inside_another(cache_root, monkeypatch):
    seen = []
    real = np.savez

    def spy(file, **arrays):
        seen.append(getattr(file, "name", file))
        return real(file, **arrays)

    monkeypatch.setattr(np, "savez", spy)
    make_poison("random-noise-classwise", synthetic_dataset(n_per_class=1, num_classes=2, channels=1, size=4))
    (name,) = seen
    assert os.path.basename(str(name)).count(".tmp") == 1


# --- 11. caching stores what is needed, uncompressed ------------------------------------------------------
def test_cheap_samplewise_delta_is_not_stored_and_is_recomputed(cache_root):
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=16, seed=0)
    first = make_poison("ar", ds)
    (entry,) = _entries(cache_root)
    with zipfile.ZipFile(entry) as z:
        assert sorted(z.namelist()) == ["header.npy", "images.npy", "labels.npy"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    again = make_poison("ar", ds)
    assert again._perturbation is None  # loaded without δ ...
    assert torch.equal(again.perturbation, first.perturbation)  # ... and rebuilt, equal, on access


def test_expensive_samplewise_delta_is_stored(cache_root):
    ds = synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0)
    first = make_poison("em-samplewise", ds, profile="smoke", quiet=True)
    again = make_poison("em-samplewise", ds, profile="smoke", quiet=True)
    assert again._perturbation is not None and torch.equal(again.perturbation, first.perturbation)


def test_recomputed_delta_must_match_the_stored_images(tmp_path):
    ds = synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0)
    p = make_poison("random-noise-samplewise", ds, cache=False)
    other = make_poison("random-noise-samplewise", ds, cache=False, seed=1)
    path = p.save(tmp_path / "p.npz", with_perturbation=False)
    with pytest.raises(ValueError, match="recompute"):
        Poison.load(path)
    back = Poison.load(path, recompute=lambda: other)
    with pytest.raises(RuntimeError, match="other images than the cached ones"):
        _ = back.perturbation


# --- 13, 14. seeds, numpy scalars, empty sets ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["ar", "random-noise-samplewise", "lsp", "ops", "cuda", "regions"])
def test_float_seed_is_refused(name):
    ds = synthetic_dataset(n_per_class=1, num_classes=2, channels=3, size=8, seed=0)
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        make_poison(name, ds, seed=1.5, cache=False)


def test_numpy_scalar_eps_is_a_number():
    ds = synthetic_dataset(n_per_class=1, num_classes=2, channels=3, size=8, seed=0)
    a = make_poison("random-noise-samplewise", ds, eps=np.float32(0.5), cache=False)
    b = make_poison("random-noise-samplewise", ds, eps=0.5, cache=False)
    assert torch.equal(a.poisoned.images, b.poisoned.images)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_empty_set_is_refused_before_any_work(name):
    ds = synthetic_dataset(n_per_class=1, num_classes=2, channels=3, size=8, seed=0)
    empty = ds.subset(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        make_poison(name, empty, cache=False)
