"""Issue 16, items 12-16: a walk over the public API with bad values. Every call must fail at once with a clear
TypeError/ValueError whose message names the argument (not a crash deep inside torch, not a silent guess)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uel_helpers import (
    ImageSet,
    build_model,
    get_protocol,
    load_dataset,
    pick_device,
    seed_everything,
    synthetic_dataset,
    train,
)
from uel_helpers.defenses import apply_defense
from uel_helpers.experiments import DataSpec, run_experiment, run_matrix
from uel_helpers.poisons import make_poison

DS = synthetic_dataset(n_per_class=2, num_classes=3, channels=3, size=8, seed=0)
SMOKE = get_protocol("smoke")
NAN_IMAGE = torch.full((1, 1, 4, 4), 0.5)
NAN_IMAGE[0, 0, 1, 1] = math.nan

def _run(attack="none", **kwargs):
    return run_experiment(attack, dataset=(DS, DS), protocol="smoke", **kwargs)


# (call, expected exception, text the message must contain: the argument's name)
CASES = {
    "get_protocol lr=nan": (lambda: get_protocol("smoke", lr=math.nan), ValueError, "lr"),
    "get_protocol lr=inf": (lambda: get_protocol("smoke", lr=math.inf), ValueError, "lr"),
    "get_protocol weight_decay=nan": (lambda: get_protocol("smoke", weight_decay=math.nan), ValueError,
                                      "weight_decay"),
    "get_protocol epochs=2.5": (lambda: get_protocol("smoke", epochs=2.5), TypeError, "epochs"),
    "get_protocol batch_size=16.5": (lambda: get_protocol("smoke", batch_size=16.5), TypeError, "batch_size"),
    "make_poison seed=1.5": (lambda: make_poison("ar", DS, seed=1.5, cache=False), TypeError, "seed"),
    "make_poison seed=-1": (lambda: make_poison("regions", DS, seed=-1, cache=False), ValueError, "seed"),
    "make_poison eps=nan": (lambda: make_poison("ar", DS, eps=math.nan, cache=False), ValueError, "eps"),
    "make_poison eps='8/255'": (lambda: make_poison("random-noise-samplewise", DS, eps="8/255", cache=False),
                                TypeError, "eps"),
    "make_poison eps=True": (lambda: make_poison("random-noise-samplewise", DS, eps=True, cache=False), TypeError,
                             "eps"),
    "make_poison cache='yes'": (lambda: make_poison("random-noise-samplewise", DS, cache="yes"), TypeError, "cache"),
    "make_poison device='gpu'": (lambda: make_poison("ar", DS, device="gpu", cache=False), ValueError, "device"),
    "apply_defense quality=0": (lambda: apply_defense("jpeg", DS, SMOKE, quality=0), ValueError, "quality"),
    "apply_defense quality=10.5": (lambda: apply_defense("jpeg", DS, SMOKE, quality=10.5), TypeError, "quality"),
    "apply_defense protocol='smoke'": (lambda: apply_defense("grayscale", DS, "smoke"), TypeError, "Protocol"),
    "run_experiment seeds=0": (lambda: _run(seeds=0), ValueError, "seeds"),
    "run_experiment seeds=[1.5]": (lambda: _run(seeds=[1.5]), TypeError, "seeds[0]"),
    "run_experiment poison_seed=1.5": (lambda: _run("ar", poison_seed=1.5), TypeError, "poison_seed"),
    "run_experiment cache='no'": (lambda: _run(cache="no"), TypeError, "cache"),
    "run_experiment device='tpu'": (lambda: _run(device="tpu"), ValueError, "device"),
    "run_experiment attack_params=[]": (lambda: _run("ar", attack_params=[]), TypeError, "attack_params"),
    "run_matrix attacks='ar'": (lambda: run_matrix("ar", ["none"], dataset=(DS, DS)), TypeError, "attacks"),
    "run_matrix seeds=0": (lambda: run_matrix(["ar"], ["none"], dataset=(DS, DS), seeds=0), ValueError, "seeds"),
    "DataSpec n_per_class=2.5": (lambda: DataSpec("digits", n_per_class=2.5), TypeError, "n_per_class"),
    "DataSpec pad_to=0": (lambda: DataSpec("digits", pad_to=0), ValueError, "pad_to"),
    "DataSpec as_rgb='no'": (lambda: DataSpec("digits", as_rgb="no"), TypeError, "as_rgb"),
    "DataSpec subset_seed=-1": (lambda: DataSpec("digits", subset_seed=-1), ValueError, "subset_seed"),
    "build_model num_classes=0": (lambda: build_model("resnet18", num_classes=0, in_channels=3), ValueError,
                                  "num_classes"),
    "seed_everything(1.5)": (lambda: seed_everything(1.5), TypeError, "seed"),
    "pick_device('gpu')": (lambda: pick_device("gpu"), ValueError, "device"),
    "synthetic_dataset n_per_class=2.5": (lambda: synthetic_dataset(n_per_class=2.5), TypeError, "n_per_class"),
    "synthetic_dataset seed=1.5": (lambda: synthetic_dataset(seed=1.5), TypeError, "seed"),
    "load_dataset size=16.5": (lambda: load_dataset("digits", size=16.5), TypeError, "size"),
    "load_dataset split='val'": (lambda: load_dataset("digits", "val"), ValueError, "split"),
    "ImageSet.from_float NaN pixel": (lambda: ImageSet.from_float(NAN_IMAGE, torch.zeros(1, dtype=torch.long),
                                                                  ["a"]), ValueError, "NaN"),
    "train empty training set": (lambda: train(DS.subset(torch.zeros(0, dtype=torch.long)), DS, SMOKE),
                                 ValueError, "empty"),
    "train empty test set": (lambda: train(DS, DS.subset(torch.zeros(0, dtype=torch.long)), SMOKE), ValueError,
                             "empty"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_gets_a_clear_error_naming_the_argument(case):
    call, error, named = CASES[case]
    with pytest.raises(error) as info:
        call()
    assert named in str(info.value), f"{case}: the message does not name {named!r}: {info.value}"


def test_numpy_scalars_are_numbers_everywhere():
    """numpy scalars pass where Python numbers pass (item 13): eps, seeds, counts."""
    p = make_poison("random-noise-samplewise", DS, eps=np.float32(8 / 255), seed=np.int64(3), cache=False)
    assert p.seed == 3 and p.params["eps"] == pytest.approx(8 / 255)
    assert DataSpec("digits", n_per_class=np.int64(5)).n_per_class == 5
