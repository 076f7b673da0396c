"""Field reports (issue 16) on data and training inputs: imagefolder splits, class mismatch between a training and a
test set, NaN pixels on the way to uint8, empty sets, and bad arguments of the loaders and the trainer.

Each test feeds the reported input (or a smaller one) and checks the right value: a clear error that names the
argument, or the correct result. Small generated data only (synthetic_dataset, PIL image folders in tmp_path).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from uel_helpers.data import (
    ImageSet,
    check_same_classes,
    encode_images,
    load_dataset,
    quantize,
    synthetic_dataset,
)
from uel_helpers.training import _check_compatible, evaluate, get_protocol, train

SMOKE = get_protocol("smoke", epochs=1, batch_size=8)


def _write_folder(root, classes, n=3, side=8):
    from PIL import Image

    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((side, side, 3), 20 * k + 5 * i, np.uint8)).save(root / cls / f"{i}.png")


def _small(num_classes=2, seed=0, n=4):
    return synthetic_dataset(n_per_class=n, num_classes=num_classes, channels=1, size=8, seed=seed)


def _renamed(ds: ImageSet, classes) -> ImageSet:
    return ImageSet(ds.images, ds.labels, tuple(classes), name=ds.name)


def _empty(ds: ImageSet) -> ImageSet:
    return ds.subset([])


# --- fault 2a: imagefolder without train/ and test/ ----------------------------------------------------------------

def test_imagefolder_without_test_split_refuses_the_test_split(tmp_path):
    _write_folder(tmp_path, ("cat", "dog"))
    with pytest.raises(ValueError, match=r"no test/ split.*training accuracy.*test/<class>.*\.split\(0\.8"):
        load_dataset(f"imagefolder:{tmp_path}", "test")


def test_imagefolder_without_splits_is_a_training_split(tmp_path):
    _write_folder(tmp_path, ("cat", "dog"))
    ds = load_dataset(f"imagefolder:{tmp_path}", "train")
    assert ds.classes == ("cat", "dog") and len(ds) == 6
    held_in, held_out = ds.split(0.67, seed=0)  # the explicit hold-out the error message suggests
    assert len(held_in) + len(held_out) == 6 and held_out.classes == held_in.classes


def test_imagefolder_with_train_and_test_reads_each_split(tmp_path):
    _write_folder(tmp_path / "train", ("cat", "dog"), n=3)
    _write_folder(tmp_path / "test", ("cat", "dog"), n=2)
    tr, te = load_dataset(f"imagefolder:{tmp_path}", "train"), load_dataset(f"imagefolder:{tmp_path}", "test")
    assert (len(tr), len(te)) == (6, 4) and tr.classes == te.classes == ("cat", "dog")


def test_imagefolder_with_only_train_refuses_the_test_split(tmp_path):
    _write_folder(tmp_path / "train", ("cat", "dog"))
    with pytest.raises(ValueError, match=r"has a train/ split but no test/ folder"):
        load_dataset(f"imagefolder:{tmp_path}", "test")


def test_imagefolder_needs_a_path():
    with pytest.raises(ValueError, match="needs a folder after the colon"):
        load_dataset("imagefolder:", "train")


# --- fault 2b: a training set meets a test set with other classes --------------------------------------------------

def test_train_refuses_imagefolder_splits_with_different_classes(tmp_path):
    _write_folder(tmp_path / "train", ("n01", "n02", "n03"))
    _write_folder(tmp_path / "test", ("n01", "n02", "n04"))
    tr, te = load_dataset(f"imagefolder:{tmp_path}", "train"), load_dataset(f"imagefolder:{tmp_path}", "test")
    assert tr.num_classes == te.num_classes == 3  # the old check compared only these
    with pytest.raises(ValueError, match=r"classes must match.*only in train_set: \['n03'\]; only in test_set: "
                                         r"\['n04'\]"):
        train(tr, te, SMOKE, device="cpu", quiet=True)


def test_train_accepts_imagefolder_splits_with_the_same_classes(tmp_path):
    _write_folder(tmp_path / "train", ("n01", "n02", "n03"))
    _write_folder(tmp_path / "test", ("n01", "n02", "n03"), n=2)
    tr, te = load_dataset(f"imagefolder:{tmp_path}", "train"), load_dataset(f"imagefolder:{tmp_path}", "test")
    hist = train(tr, te, SMOKE, device="cpu", quiet=True)
    assert hist.epochs == 1 and 0.0 <= hist.final_acc <= 1.0


def test_same_classes_in_another_order_are_refused():
    ds = _small(num_classes=2)
    with pytest.raises(ValueError, match=r"different order: label 0 is 'class0' in train_set but 'class1'"):
        check_same_classes(ds, _renamed(ds, ("class1", "class0")), "train")
    check_same_classes(ds, _small(num_classes=2, seed=1))  # legitimately shared classes: no error


def _dfr_call(tr, te):
    from uel_helpers.dfr import reweight_last_layer

    head = nn.Sequential(nn.Flatten(), nn.Linear(64, tr.num_classes))
    reweight_last_layer(head, tr, te, SMOKE, device="cpu")


def _snapshot_call(tr, te):
    from uel_helpers.dfr import snapshot_every_epoch

    snapshot_every_epoch(tr, te, SMOKE, device="cpu", quiet=True)


def _counterfactual_call(tr, te):
    from uel_helpers.attribution import Counterfactual

    Counterfactual(tr, te, SMOKE.with_(max_train=None), device="cpu")


def _trak_call(tr, te):
    from uel_helpers.attribution.trak_baseline import trak_attribution

    trak_attribution([nn.Linear(1, 1)], tr, te, k=1)


def _ssl_call(tr, te):
    from uel_helpers.attribution import train_ssl

    train_ssl(tr, monitor=te, cache=False, quiet=True)


TRAIN_TEST_CALLS = {
    "train": lambda tr, te: train(tr, te, SMOKE, device="cpu", quiet=True),
    "check_compatible": lambda tr, te: _check_compatible(tr, te),
    "dfr.reweight_last_layer": _dfr_call,
    "dfr.snapshot_every_epoch": _snapshot_call,
    "attribution.Counterfactual": _counterfactual_call,
    "attribution.trak_attribution": _trak_call,
    "attribution.train_ssl(monitor)": _ssl_call,
}


@pytest.mark.parametrize("call", TRAIN_TEST_CALLS.values(), ids=TRAIN_TEST_CALLS.keys())
def test_every_train_meets_test_checks_class_names(call):
    tr = _small(num_classes=3)
    te = _renamed(_small(num_classes=3, seed=1), ("class0", "class1", "other"))
    with pytest.raises(ValueError, match=r"classes must match.*\['class2'\].*\['other'\]"):
        call(tr, te)


# --- fault 12: NaN pixels on the way to uint8 ----------------------------------------------------------------------

def test_from_float_refuses_a_nan_pixel():
    x = torch.full((1, 1, 2, 2), 0.5)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"ImageSet\.from_float: images has 1 NaN or infinite"):
        ImageSet.from_float(x, torch.tensor([0]), ["a"])
    cleaned = ImageSet.from_float(torch.nan_to_num(x, nan=0.5), torch.tensor([0]), ["a"])
    assert cleaned.images.flatten().tolist() == [128] * 4


def test_quantize_and_encode_images_refuse_nan():
    x = torch.tensor([[[[0.5, float("nan")]]]])
    with pytest.raises(ValueError, match=r"quantize: x has 1 NaN"):
        quantize(x)
    with pytest.raises(ValueError, match=r"encode_images: x has 1 NaN"):
        encode_images(x, {"scale": 1.0, "offset": 0.0})


# --- fault 14: empty training and test sets ------------------------------------------------------------------------

def test_train_refuses_an_empty_training_set_before_any_work(monkeypatch):
    import uel_helpers.training as training

    monkeypatch.setattr(training, "build_model", lambda *a, **k: pytest.fail("train() built a model"))
    ds = _small()
    with pytest.raises(ValueError, match=r"train: train_set is empty"):
        train(_empty(ds), ds, SMOKE, device="cpu", quiet=True)


def test_train_refuses_an_empty_test_set_before_any_work(monkeypatch):
    import uel_helpers.training as training

    monkeypatch.setattr(training, "build_model", lambda *a, **k: pytest.fail("train() built a model"))
    ds = _small()
    with pytest.raises(ValueError, match=r"train: test_set is empty"):
        train(ds, _empty(ds), SMOKE, device="cpu", quiet=True)


def test_evaluate_refuses_an_empty_set():
    with pytest.raises(ValueError, match=r"evaluate: data is empty"):
        evaluate(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), _empty(_small()), "cpu")


def _protonet_train(empty):
    from uel_helpers.protonet import train_protonet

    train_protonet(empty, device="cpu", cache=False, quiet=True)


def _protonet_eval(empty):
    from uel_helpers.protonet import AutoProtoNet, evaluate_episodes

    evaluate_episodes(AutoProtoNet(1, (16, 16), decoder=False), empty, device="cpu")


EMPTY_CALLS = {
    "dfr(clean_subset)": (lambda e, ds: _dfr_call(e, ds), "clean_subset is empty"),
    "dfr(test_set)": (lambda e, ds: _dfr_call(ds, e), "test_set is empty"),
    "snapshot(train_set)": (lambda e, ds: _snapshot_call(e, ds), "train_set is empty"),
    "counterfactual(train_set)": (lambda e, ds: _counterfactual_call(e, ds), "train_set is empty"),
    "counterfactual(test_set)": (lambda e, ds: _counterfactual_call(ds, e), "test_set is empty"),
    "trak(test_set)": (lambda e, ds: _trak_call(ds, e), "test_set is empty"),
    "train_ssl(train_set)": (lambda e, ds: _ssl_call(e, ds), "train_set is empty"),
    "train_protonet": (lambda e, ds: _protonet_train(e), "train_set is empty"),
    "evaluate_episodes": (lambda e, ds: _protonet_eval(e), "test_set is empty"),
}


@pytest.mark.parametrize("call,match", EMPTY_CALLS.values(), ids=EMPTY_CALLS.keys())
def test_every_consumer_refuses_an_empty_set(call, match):
    ds = _small()
    with pytest.raises(ValueError, match=match):
        call(_empty(ds), ds)


def test_split_that_would_leave_a_part_empty_is_refused():
    ds = _small(num_classes=2, n=2)
    with pytest.raises(ValueError, match=r"fraction=0\.1 .* leaves the first part empty"):
        ds.split(0.1)


# --- fault 16: bad arguments of the loaders, the trainer and from_float ----------------------------------------------

NAN = float("nan")
LOAD_DATASET_BAD = [
    (dict(size=16.5), TypeError, r"\bsize\b"),
    (dict(size=NAN), TypeError, r"\bsize\b"),
    (dict(size=True), TypeError, r"\bsize\b"),
    (dict(size=0), ValueError, r"\bsize\b"),
    (dict(size=-4), ValueError, r"\bsize\b"),
    (dict(size=(8, 8.5)), TypeError, r"\bsize\b"),
    (dict(size="16"), TypeError, r"\bsize\b"),
    (dict(split=1), TypeError, r"\bsplit\b"),
    (dict(split="val"), ValueError, r"\bsplit\b"),
    (dict(download="yes"), TypeError, r"\bdownload\b"),
    (dict(rgb=1), TypeError, r"\brgb\b"),
    (dict(root=5), TypeError, r"\broot\b"),
]


@pytest.mark.parametrize("kwargs,error,match", LOAD_DATASET_BAD, ids=[str(k) for k, _, _ in LOAD_DATASET_BAD])
def test_load_dataset_bad_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset("digits", **kwargs)


def test_load_dataset_bad_name():
    with pytest.raises(TypeError, match=r"load_dataset: name must be a string"):
        load_dataset(3)


def test_load_dataset_size_pair_is_height_width():
    assert load_dataset("digits", size=(12, 6)).shape == (1, 12, 6)


SYNTHETIC_BAD = [
    (dict(n_per_class=2.5), TypeError, "n_per_class"),
    (dict(n_per_class=0), ValueError, "n_per_class"),
    (dict(n_per_class=-3), ValueError, "n_per_class"),
    (dict(n_per_class=True), TypeError, "n_per_class"),
    (dict(num_classes=NAN), TypeError, "num_classes"),
    (dict(num_classes=0), ValueError, "num_classes"),
    (dict(num_classes="3"), TypeError, "num_classes"),
    (dict(channels=2), ValueError, "channels"),
    (dict(channels=3.0), TypeError, "channels"),
    (dict(size=16.5), TypeError, r"\bsize\b"),
    (dict(size=1), ValueError, r"\bsize\b"),
    (dict(seed=-1), ValueError, r"\bseed\b"),
    (dict(seed=1.5), TypeError, r"\bseed\b"),
    (dict(noise=NAN), ValueError, r"\bnoise\b"),
    (dict(noise=-0.1), ValueError, r"\bnoise\b"),
    (dict(noise="0.1"), TypeError, r"\bnoise\b"),
    (dict(name=3), TypeError, r"\bname\b"),
]


@pytest.mark.parametrize("kwargs,error,match", SYNTHETIC_BAD, ids=[str(k) for k, _, _ in SYNTHETIC_BAD])
def test_synthetic_dataset_bad_argument(kwargs, error, match):
    args = dict(n_per_class=2, num_classes=2, channels=1, size=8) | kwargs
    with pytest.raises(error, match=f"synthetic_dataset: .*{match}"):
        synthetic_dataset(**args)


TRAIN_BAD = [
    (dict(seed=1.5), TypeError, r"\bseed\b"),
    (dict(seed=-1), ValueError, r"\bseed\b"),
    (dict(seed=True), TypeError, r"\bseed\b"),
    (dict(quiet="no"), TypeError, r"\bquiet\b"),
    (dict(return_model=1), TypeError, r"\breturn_model\b"),
    (dict(on_epoch=3), TypeError, r"\bon_epoch\b"),
    (dict(model="smallcnn"), TypeError, r"\bmodel\b"),
    (dict(protocol=3), TypeError, r"\bprotocol\b"),
    (dict(protocol="slow"), ValueError, r"unknown protocol"),
    (dict(train_set="digits"), TypeError, r"\btrain_set\b"),
    (dict(test_set=None), TypeError, r"\btest_set\b"),
]


@pytest.mark.parametrize("kwargs,error,match", TRAIN_BAD, ids=[str(k) for k, _, _ in TRAIN_BAD])
def test_train_bad_argument(kwargs, error, match):
    ds = _small()
    args = dict(train_set=ds, test_set=ds, protocol=SMOKE, device="cpu", quiet=True) | kwargs
    with pytest.raises(error, match=match):
        train(**args)


FROM_FLOAT_BAD = [
    (dict(images=torch.full((1, 1, 2, 2), NAN)), ValueError, r"\bimages\b.*NaN"),
    (dict(images=torch.full((1, 1, 2, 2), float("inf"))), ValueError, r"\bimages\b.*infinite"),
    (dict(images=np.full((1, 1, 2, 2), NAN, np.float32)), ValueError, r"\bimages\b.*NaN"),
    (dict(images=[[[[0.5]]]]), TypeError, r"\bimages\b"),
    (dict(images=torch.full((1, 1, 2, 2), 1.5)), ValueError, r"\[0, 1\]"),
    (dict(rounding="up"), ValueError, r"\brounding\b"),
]


@pytest.mark.parametrize("kwargs,error,match", FROM_FLOAT_BAD,
                         ids=["nan", "inf", "numpy-nan", "list", "above-1", "rounding"])
def test_from_float_bad_argument(kwargs, error, match):
    args = dict(images=torch.full((1, 1, 2, 2), 0.5), labels=torch.tensor([0]), classes=["a"]) | kwargs
    with pytest.raises(error, match=match):
        ImageSet.from_float(**args)


SUBSET_BAD = [
    ("take_per_class", dict(n_per_class=2.5), TypeError, "n_per_class"),
    ("take_per_class", dict(n_per_class=0), ValueError, "n_per_class"),
    ("take_per_class", dict(n_per_class=2, seed=0.5), TypeError, r"\bseed\b"),
    ("split", dict(fraction=NAN), ValueError, r"\bfraction\b"),
    ("split", dict(fraction="0.5"), TypeError, r"\bfraction\b"),
    ("subset", dict(indices=[0.5, 1.5]), TypeError, r"indices must be integers"),
    ("subset", dict(indices=[True, False]), ValueError, r"boolean mask needs one entry per image"),
]


@pytest.mark.parametrize("method,kwargs,error,match", SUBSET_BAD, ids=[f"{m}{k}" for m, k, _, _ in SUBSET_BAD])
def test_selection_bad_argument(method, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(_small(), method)(**kwargs)


def test_subset_takes_a_boolean_mask():
    ds = _small(num_classes=2, n=2)
    mask = torch.tensor([True, False, True, False])
    assert torch.equal(ds.subset(mask).images, ds.images[mask])


def test_dataspec_names_n_per_class():
    from uel_helpers.experiments import DataSpec

    with pytest.raises(TypeError, match="n_per_class"):
        DataSpec("digits", n_per_class=2.5).load()
    with pytest.raises(ValueError, match="n_per_class"):
        DataSpec("digits", n_per_class=0).load()
