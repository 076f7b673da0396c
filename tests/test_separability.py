"""Tests for the linear separability test of perturbations (uel_helpers/separability.py): tiny data, CPU."""

from __future__ import annotations

import pytest
import torch

from uel_helpers.data import ImageSet
from uel_helpers.separability import linear_separability, linear_separability_of, minmax_scale, perturbations


def _pair(n: int, shape: tuple[int, int, int], num_classes: int, classwise: bool, seed: int = 0):
    """(poisoned, clean): clean uint8 images in 64..191, poisoned = clean + an integer δ in [-32, 32].

    Class-wise: one δ_c per class, labels balanced; otherwise: one δ_i per image and labels drawn at random,
    independent of δ. No clipping is needed, so the stored δ is exactly the constructed one.
    """
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(64, 192, (n, *shape), generator=g, dtype=torch.int16)
    if classwise:
        labels = torch.arange(n) % num_classes
        delta = torch.randint(-32, 33, (num_classes, *shape), generator=g, dtype=torch.int16)[labels]
    else:
        labels = torch.randint(0, num_classes, (n,), generator=g)
        delta = torch.randint(-32, 33, (n, *shape), generator=g, dtype=torch.int16)
    classes = [f"c{k}" for k in range(num_classes)]
    clean_set = ImageSet(clean.to(torch.uint8), labels, classes, name="clean")
    return ImageSet((clean + delta).to(torch.uint8), labels, classes, name="clean+noise"), clean_set


def test_perturbations_are_the_difference_in_pixel_units():
    poisoned, clean = _pair(12, (3, 4, 4), 3, classwise=True)
    delta = perturbations(poisoned, clean)
    assert delta.dtype == torch.float32 and delta.shape == (12, 3, 4, 4)
    assert torch.allclose(delta * 255, poisoned.images.float() - clean.images.float(), atol=1e-4)
    scaled = minmax_scale(delta)
    assert float(scaled.min()) == 0.0 and float(scaled.max()) == 1.0  # one global min and max


def test_classwise_perturbations_are_linearly_separable():
    """K distinct class-wise δ_c (random points in D = 48 dimensions) are separable: training accuracy 1.0."""
    poisoned, clean = _pair(200, (3, 4, 4), 4, classwise=True)
    res = linear_separability(poisoned, clean, steps=20, device="cpu")
    assert res.accuracy == 1.0
    assert len(res.curve) == len(res.losses) == 20 and res.curve[-1] == res.accuracy
    # the reference's argument swap (clean - poisoned = -δ) changes nothing after min-max scaling
    assert linear_separability(clean, poisoned, steps=20, device="cpu").accuracy == 1.0


def test_random_noise_with_random_labels_is_not_separable():
    """Sample-wise noise, labels independent of it, n = 1,000 points in D = 16 dimensions, 2 classes.

    A linear classifier can shatter at most D + 1 points, and by Cover's counting theorem random labels on
    n >> 2(D + 1) points are almost never separable: the best training accuracy is about 1/2 + O(sqrt(D / n))
    (~0.56 here). Criterion: below 0.75, far from 1.0.
    """
    poisoned, clean = _pair(1000, (1, 4, 4), 2, classwise=False)
    res = linear_separability(poisoned, clean, steps=50, device="cpu")
    assert res.accuracy < 0.75, res.accuracy


_POISONED, _CLEAN = _pair(12, (1, 4, 4), 3, classwise=True)
_OTHER_SHAPE, _ = _pair(12, (1, 5, 5), 3, classwise=True)

# (call, expected exception, message pattern); one case, one failure
MISMATCHED_SETS = {
    "fewer poisoned images": (lambda: perturbations(_POISONED.subset(range(10)), _CLEAN), ValueError,
                              "same number of images of the same shape"),
    "other image shape": (lambda: linear_separability(_OTHER_SHAPE, _CLEAN), ValueError,
                          "same number of images of the same shape"),
    "shuffled labels": (lambda: perturbations(ImageSet(_POISONED.images, _POISONED.labels.roll(1), _POISONED.classes),
                                              _CLEAN), ValueError, "labels differ"),
    "an extra class": (lambda: perturbations(ImageSet(_POISONED.images, _POISONED.labels,
                                                      [*_POISONED.classes, "extra"]), _CLEAN), ValueError, "classes"),
    "poisoned is a tensor": (lambda: perturbations(_POISONED.images, _CLEAN), TypeError,
                             "poisoned must be an ImageSet"),
    "no perturbation": (lambda: linear_separability(_CLEAN, _CLEAN), ValueError, "constant"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(MISMATCHED_SETS.values()), ids=list(MISMATCHED_SETS))
def test_mismatched_sets_are_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


_DELTA, _LABELS = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])

BAD_TENSOR_ARGUMENTS = {
    "steps=0": (lambda: linear_separability_of(_DELTA, _LABELS, steps=0), ValueError, "steps must be"),
    "lr=-1": (lambda: linear_separability_of(_DELTA, _LABELS, lr=-1.0), ValueError, r"lr must lie in \(0, inf\)"),
    "one label short": (lambda: linear_separability_of(_DELTA, _LABELS[:5]), ValueError, "one label per perturbation"),
    "num_classes=1": (lambda: linear_separability_of(_DELTA, _LABELS, num_classes=1), ValueError, "num_classes >= 2"),
    "NaN delta": (lambda: linear_separability_of(torch.full((6, 4), float("nan")), _LABELS), ValueError, "NaN"),
    "numpy delta": (lambda: linear_separability_of(_DELTA.numpy(), _LABELS), TypeError, "expects tensors"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_TENSOR_ARGUMENTS.values()),
                         ids=list(BAD_TENSOR_ARGUMENTS))
def test_bad_arguments_of_the_tensor_form(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_tensor_form_runs_on_good_arguments():
    res = linear_separability_of(_DELTA, _LABELS, steps=3, device="cpu")
    assert len(res.curve) == 3 and 0 <= res.accuracy <= 1
