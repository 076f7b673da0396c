"""Effect tests: the attacks really lower the judge's clean test accuracy (Fashion-MNIST, quick judge).

Setting (tests/effect_setting.py): 500 Fashion-MNIST training images per class shown as RGB (the grey
channel repeated), the `quick` judge (a quarter-width ResNet-10 trained to fit: constant lr until 99%
training accuracy on the given set, then 8 annealing epochs, at most 24; no whitening), evaluated on 2,000
clean test images. Every measured number goes to `results/effect_results.json`.

The judge is proven first: the control (sample-wise random noise at the same budget, no class structure)
must stay within 3 points of clean training, else the setting measures the judge and not the poisons
(the previous, whitened 4-epoch judge failed this: control 60.0% against 83.2% clean).

Criterion, fixed on 2026-11-30 before any poison was judged by this judge, from the published direction
(CIFAR-10 ResNet-18: poisons take 94% to 6-21%, i.e. they remove most of what the victim learns above
chance): a poison must remove at least a third of the judge's accuracy above chance,
acc <= min(clean, control) - (clean - 1/K) / 3. A poison that does not is reported as not reproducing,
with its number, not given a looser threshold.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import JUDGE, final_acc

ATTACKS = {  # name: parameters
    "ar": {},
    "ar-linf": {},
    "em-samplewise": {"profile": "quick"},
    "em-classwise": {"profile": "quick"},
    "tap": {"profile": "quick"},
    "cuda": {},
    "random-noise-classwise": {},
    "regions": {},
    "lsp": {},
}
CONTROL = "random-noise-samplewise"
CONTROL_TOLERANCE = 0.03  # the control must stay within 3 points of clean (the honest-judge issue)
MIN_FRACTION_REMOVED = 1 / 3  # of the clean judge's accuracy above chance (module docstring)
pytestmark = pytest.mark.usefixtures("use_effect_cache")


@pytest.fixture
def clean_acc() -> float:
    return final_acc("none", key="clean")


@pytest.fixture
def control_acc() -> float:
    return final_acc(CONTROL)


# Run by `make test-slow`, not in CI's 30-minute budget: every judge now trains to fit (~2 minutes each), and
# TAP's and class-wise EM's surrogates cost minutes more. CI keeps the control.
# AR is slow too: its effect sits at the criterion's edge (seed 0 68.75%; 3-seed mean 61.35 ± 6.81 in
# benchmarks/RESULTS.md), so one seed on another torch build could land either side of a strict xfail.
# CUDA too since 2026-12-01 (194 s in CI; the CI run measured 37.7 min with it): CI keeps the judge's validity
# check, the control against clean (test_control_stays_near_clean).
SLOW = {"tap", "em-classwise", "ar-linf", "random-noise-classwise", "regions", "lsp", "em-samplewise", "ar", "cuda"}
# Measured on 2026-11-30 with this judge, seed 0 (clean 89.80%, control 89.90%, bar 63.20%): the effect does not
# reproduce at this scale. Kept as strict xfails with the numbers, so a change that makes them pass is noticed.
DOES_NOT_REPRODUCE = {
    "ar": "AR L2 (released CIFAR-10 processes, grey-as-RGB): 68.75%, 21 points below clean, short of the 26.6 "
          "the criterion asks; the judge fits it slowly (96.0% training accuracy at its 24-epoch cap, CUDA 99.1%)",
    "em-samplewise": "EM sample-wise (quick surrogate: a whitened FastNet): 73.95%, 16 points below clean; noise "
                     "crafted to minimise the error of a whitened FastNet transfers only partly to a ResNet",
    "ar-linf": "AR L-inf 8/255 (released CIFAR-10 processes, grey-as-RGB): 76.70%, 13 points below clean; weaker "
               "than AR L2 here, as the L2 version is at this scale",
    "random-noise-classwise": "class-wise random noise 8/255: 70.95%, 19 points below clean, short of the 26.6 the "
                              "criterion asks (a shortcut the judge takes only in part at this scale)",
}


def _param(name: str):
    marks = [pytest.mark.slow] if name in SLOW else []
    if name in DOES_NOT_REPRODUCE:
        marks.append(pytest.mark.xfail(strict=True, reason=DOES_NOT_REPRODUCE[name]))
    return pytest.param(name, marks=marks)


def required_drop(clean_acc: float, num_classes: int = 10) -> float:
    """Points (as a fraction) a poison must take below min(clean, control): a third of clean above chance."""
    return MIN_FRACTION_REMOVED * (clean_acc - 1 / num_classes)


@pytest.mark.effect
@needs_fashion
def test_control_stays_near_clean(clean_acc, control_acc):
    """The judge is valid only if noise without class structure, at the same budget, costs (almost) nothing."""
    print(f"clean {clean_acc:.4f}, sample-wise noise control {control_acc:.4f}")
    assert abs(control_acc - clean_acc) <= CONTROL_TOLERANCE


@pytest.mark.effect
@needs_fashion
@pytest.mark.parametrize("name", [_param(n) for n in ATTACKS])
def test_poison_lowers_clean_accuracy(name, clean_acc, control_acc):
    acc = final_acc(name, **ATTACKS[name])
    bar = min(clean_acc, control_acc) - required_drop(clean_acc)
    print(f"{name}: {acc:.4f} (clean {clean_acc:.4f}, control {control_acc:.4f}, needs <= {bar:.4f})")
    assert acc <= bar, f"{name}: judge reached {acc:.3f}; clean {clean_acc:.3f}, control {control_acc:.3f}"


@pytest.mark.effect
@pytest.mark.slow
@needs_fashion
def test_ops_bites_without_augmentation(clean_acc):
    """OPS's one pixel survives only when the judge does not crop or flip (APBench: cutout also beats it)."""
    no_aug = final_acc("ops", protocol=JUDGE.with_(crop_padding=0, flip=False), key="ops (no crop, no flip)")
    print(f"ops without crop and flip: {no_aug:.4f} (clean with them {clean_acc:.4f})")
    assert no_aug <= clean_acc - required_drop(clean_acc)
