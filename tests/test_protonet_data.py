"""The cifar-fs loader on generated CIFAR-100-shaped pickles (CIFAR cannot be downloaded in tests)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from uel_helpers.data import CIFAR_FS_SPLITS, load_dataset

ALL_NAMES = sorted(n for names in CIFAR_FS_SPLITS.values() for n in names)  # CIFAR-100's alphabetical fine labels


def _write_fake_cifar100(root, per_class_train=3, per_class_test=1, names=ALL_NAMES):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        labels = np.repeat(np.arange(len(names)), n)
        rng.shuffle(labels)
        data = np.zeros((len(labels), 3072), dtype=np.uint8)
        data[:, 0] = labels          # first red pixel = fine label, second = 0 (train) / 1 (test)
        data[:, 1] = 0 if split == "train" else 1
        with open(folder / split, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": labels.tolist()}, fh)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": list(names)}, fh)
    return root


def test_split_lists_are_disjoint_and_cover_cifar100():
    sizes = {k: len(v) for k, v in CIFAR_FS_SPLITS.items()}
    assert sizes == {"train": 64, "val": 16, "test": 20}
    assert len(set(ALL_NAMES)) == 100


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_cifar_fs_pools_train_and_test_and_splits_by_class(tmp_path, split):
    root = _write_fake_cifar100(tmp_path)
    ds = load_dataset("cifar-fs", split, root=root)
    wanted = CIFAR_FS_SPLITS[split]
    assert ds.classes == wanted and len(ds) == 4 * len(wanted) and ds.shape == (3, 32, 32)
    assert ds.class_counts() == [4] * len(wanted)
    fine = ds.images[:, 0, 0, 0].long()                       # the generated fine label of each image
    assert [ALL_NAMES[int(f)] for f in fine] == [wanted[int(k)] for k in ds.labels]  # resolved by name
    assert set(ds.images[:, 0, 0, 1].tolist()) == {0, 1}        # both CIFAR-100 splits pooled
    assert torch.equal(torch.tensor(ds.meta["cifar100_labels"]), torch.tensor([ALL_NAMES.index(c) for c in wanted]))


def test_cifar_fs_bad_split_and_foreign_archive(tmp_path):
    root = _write_fake_cifar100(tmp_path / "a")
    with pytest.raises(ValueError, match="cifar-fs split must be one of train, val, test"):
        load_dataset("cifar-fs", "validation", root=root)
    renamed = [n if n != "baby" else "infant" for n in ALL_NAMES]
    other = _write_fake_cifar100(tmp_path / "b", names=renamed)
    with pytest.raises(ValueError, match="\\['baby'\\] are not in the CIFAR-100 archive"):
        load_dataset("cifar-fs", "test", root=other)
    with pytest.raises(FileNotFoundError, match="cifar100"):
        load_dataset("cifar-fs", "train", root=tmp_path / "empty")
