"""ImageSet validation, conversions, storage and the dataset loaders (offline ones only)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from tests.conftest import needs_fashion
from uel_helpers.data import (
    ImageSet,
    available_datasets,
    load_dataset,
    quantize,
    resize,
    synthetic_dataset,
    to_grayscale,
    to_rgb,
)
from uel_helpers.data.loaders import _read_idx


def make(n=6, c=3, h=4, w=4, k=3):
    return ImageSet(torch.zeros(n, c, h, w, dtype=torch.uint8), torch.arange(n) % k, [f"c{i}" for i in range(k)])


# --- validation ---------------------------------------------------------------------------------------

def test_valid_imageset_properties():
    ds = make()
    assert len(ds) == 6 and ds.num_classes == 3 and ds.shape == (3, 4, 4) and ds.channels == 3
    assert ds.labels.dtype == torch.int64
    assert "n=6" in repr(ds)


def test_accepts_numpy():
    ds = ImageSet(np.zeros((2, 1, 3, 3), np.uint8), np.array([0, 1]), ["a", "b"])
    assert isinstance(ds.images, torch.Tensor)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.int16])
def test_rejects_non_uint8_images(dtype):
    with pytest.raises(TypeError, match="uint8"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=dtype), torch.tensor([0, 1]), ["a", "b"])


@pytest.mark.parametrize("shape,match", [((2, 4, 4), r"\(N, C, H, W\)"), ((2, 4, 4, 3), "1 or 3 channels"),
                                         ((2, 2, 4, 4), "1 or 3 channels")])
def test_rejects_bad_shapes(shape, match):
    with pytest.raises(ValueError, match=match):
        ImageSet(torch.zeros(shape, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])


def test_rejects_label_out_of_range():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match="labels must lie"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([-1, 0]), ["a", "b"])


def test_rejects_float_labels_and_length_mismatch():
    with pytest.raises(TypeError, match="integers"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0.0, 1.0]), ["a", "b"])
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 1]), ["a", "b"])


def test_rejects_bad_classes_and_types():
    with pytest.raises(TypeError, match="sequence of class names"):
        ImageSet(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.tensor([0]), "ab")
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        ImageSet([[0]], torch.tensor([0]), ["a"])


# --- conversions ----------------------------------------------------------------------------------------

def test_quantize_round_and_truncate():
    x = torch.tensor([0.0, 0.5 / 255, 0.49 / 255, 1.0, 254.6 / 255])
    assert quantize(x).tolist() == [0, 1, 0, 255, 255]
    assert quantize(x, "truncate").tolist() == [0, 0, 0, 255, 254]
    with pytest.raises(ValueError, match="rounding"):
        quantize(x, "nearest")


def test_from_float_round_trip_and_range_error():
    ds = synthetic_dataset(n_per_class=3, num_classes=2, size=8)
    back = ImageSet.from_float(ds.to_float(), ds.labels, ds.classes)
    assert torch.equal(back.images, ds.images)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageSet.from_float(ds.to_float() * 2, ds.labels, ds.classes)


def test_to_float_range():
    x = synthetic_dataset(n_per_class=2, num_classes=2, size=8).to_float()
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1


def test_rgb_gray_resize_are_explicit():
    ds = make(c=1, h=8, w=8)
    rgb = to_rgb(ds)
    assert rgb.shape == (3, 8, 8) and ds.shape == (1, 8, 8)
    gray = to_grayscale(synthetic_dataset(n_per_class=2, num_classes=2, size=8))
    assert gray.channels == 3 and torch.equal(gray.images[:, 0], gray.images[:, 1])
    big = resize(ds, 16)
    assert big.shape == (1, 16, 16)
    with pytest.raises(ValueError, match="size"):
        resize(ds, 0)


def test_subset_split_take_per_class():
    ds = synthetic_dataset(n_per_class=10, num_classes=4, size=8)
    a, b = ds.split(0.3, seed=0)
    assert len(a) + len(b) == len(ds)
    assert a.class_counts() == [3, 3, 3, 3]
    assert ds.take_per_class(2).class_counts() == [2, 2, 2, 2]
    assert len(ds.subset(slice(0, 5))) == 5
    with pytest.raises(ValueError, match="out of range"):
        ds.subset([len(ds)])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ds.split(1.5)


def test_save_load_round_trip(tmp_path):
    ds = synthetic_dataset(n_per_class=3, num_classes=3, size=8)
    ds.meta["attack"] = "none"
    path = ds.save(tmp_path / "x.npz")
    back = ImageSet.load(path)
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert back.classes == ds.classes and back.meta == {"attack": "none"} and back.name == ds.name
    with pytest.raises(ValueError, match=".npz"):
        ds.save(tmp_path / "x.pkl")
    with pytest.raises(FileNotFoundError):
        ImageSet.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        ImageSet.load(tmp_path / "bad.npz")


def test_synthetic_is_deterministic_and_learnable_shape():
    a = synthetic_dataset(n_per_class=5, seed=3)
    b = synthetic_dataset(n_per_class=5, seed=3)
    assert torch.equal(a.images, b.images) and a.shape == (3, 32, 32) and a.class_counts() == [5] * 10


# --- loaders ---------------------------------------------------------------------------------------------

def test_digits_offline():
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert tr.shape == (1, 8, 8) and len(tr) + len(te) == 1797
    assert int(tr.images.max()) == 255
    assert load_dataset("digits", size=32, rgb=True).shape == (3, 32, 32)


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'mnist-7'"):
        load_dataset("mnist-7")
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("digits", split="val")
    with pytest.raises(TypeError):
        load_dataset(3)


def test_cifar_missing_offline_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz") as err:
        load_dataset("cifar10", root=tmp_path, download=False)
    assert "c58f30108f718f92721af3b95e74349a" in str(err.value)


def test_cifar_reads_pickles(tmp_path):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 9]}, fh)
    tr = load_dataset("cifar10", root=tmp_path)
    assert len(tr) == 20 and tr.shape == (3, 32, 32) and tr.classes[0] == "airplane"


def test_cifar_bad_archive_is_rejected(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="MD5"):
        load_dataset("cifar10", root=tmp_path)


def test_fashion_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setattr("uel_helpers.data.loaders.FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_idx_reader(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + arr.tobytes())
    assert np.array_equal(_read_idx(tmp_path / "x-idx3-ubyte.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="IDX"):
        _read_idx(tmp_path / "bad")


@needs_fashion
def test_fashion_mnist_from_debian_package():
    tr = load_dataset("fashion-mnist")
    te = load_dataset("fashion-mnist", "test")
    assert (len(tr), len(te)) == (60000, 10000) and tr.shape == (1, 28, 28)
    assert tr.class_counts() == [6000] * 10 and tr.classes[9] == "Ankle boot"


def test_imagefolder(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.classes == ("cat", "dog") and len(ds) == 6 and ds.shape == (3, 6, 6)
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "dog" / "odd.png")
    with pytest.raises(ValueError, match="different sizes"):
        load_dataset(f"imagefolder:{tmp_path}")
    assert load_dataset(f"imagefolder:{tmp_path}", size=4).shape == (3, 4, 4)
    with pytest.raises(FileNotFoundError):
        load_dataset(f"imagefolder:{tmp_path / 'none'}")


def test_available_datasets_lists_everything(tmp_path):
    av = available_datasets(tmp_path)
    assert av["digits"].startswith("offline")
    assert av["cifar10"].startswith("missing")
    assert set(av) >= {"digits", "fashion-mnist", "cifar10", "cifar100"}


def test_with_images_drops_an_affine_code_unless_given_again():
    from uel_helpers.data import DECODE_KEY

    ds = synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0)
    coded = ds.with_images(ds.images, **{DECODE_KEY: {"scale": 2.0, "offset": -1.0}}, note="x")
    assert coded.meta[DECODE_KEY] == {"scale": 2.0, "offset": -1.0}
    replaced = coded.with_images(255 - coded.images)
    assert DECODE_KEY not in replaced.meta and replaced.meta["note"] == "x"
    assert coded.with_images(coded.images, **{DECODE_KEY: coded.meta[DECODE_KEY]}).meta[DECODE_KEY]["scale"] == 2.0
