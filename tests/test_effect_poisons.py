"""Effect tests: the attacks really lower the judge's clean test accuracy (Fashion-MNIST, quick protocol).

Setting (the one notebooks 01-02 use at `quick`): 500 Fashion-MNIST training images per class shown as
RGB (the grey channel repeated, `DataSpec(as_rgb=True)`), the `quick` judge (4 epochs), evaluated on
2,000 clean test images (200 per class). Every measured number goes to `results/effect_results.json`.

Why RGB, and why a control. The attacks were designed for colour images; on 1-channel Fashion-MNIST at
this short schedule most of them barely bite (measured, 500/class: CUDA 32.8%, regions 73.6%, LSP 82.2%
against 83.5% clean). On the RGB view they all bite, but part of that is the judge: its patch-whitening
layer is fitted on the (poisoned) training images and amplifies directions where clean Fashion-MNIST has
no variance (colour), which is where the perturbations are. Sample-wise random noise, which carries no
class information, therefore also costs this judge points (60.0% vs 83.2% clean in the first run; with
whitening off it costs nothing, 83.1% vs 83.0%). So each attack must land both far below clean training
and far below that control: the part of the effect that is the poison's class structure.

Thresholds come from the first honest run (see the poison-generation issue's note): the weakest attack
that passes was AR L-inf at 40.5% (clean 83.2%, control 60.0%). OPS does not bite this judge (79.8%):
its one pixel sits near the border and the judge's ±2-pixel crop moves or drops it; with augmentation
off it bites (tested below).
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
MIN_DROP = 0.30  # each attack: at least 30 points below clean training ...
MIN_BELOW_CONTROL = 0.10  # ... and at least 10 points below the sample-wise noise control
pytestmark = pytest.mark.usefixtures("use_effect_cache")


@pytest.fixture
def clean_acc() -> float:
    return final_acc("none", key="clean")


@pytest.fixture
def control_acc() -> float:
    return final_acc(CONTROL)


# Run by `make test-slow`, not in CI's 20-minute budget: TAP's and class-wise EM's surrogate training cost minutes,
# and AR L-inf repeats AR (L2) with another norm. Measured results: the poison-generation issue's note.
SLOW = {"tap", "em-classwise", "ar-linf"}


@pytest.mark.effect
@needs_fashion
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ATTACKS])
def test_poison_lowers_clean_accuracy(name, clean_acc, control_acc):
    acc = final_acc(name, **ATTACKS[name])
    print(f"{name}: {acc:.4f} (clean {clean_acc:.4f}, sample-wise noise control {control_acc:.4f})")
    assert acc <= clean_acc - MIN_DROP, f"{name}: judge reached {acc:.3f}, clean training {clean_acc:.3f}"
    assert acc <= control_acc - MIN_BELOW_CONTROL, f"{name}: {acc:.3f}, no better than the control {control_acc:.3f}"


@pytest.mark.effect
@needs_fashion
def test_samplewise_noise_control_is_not_a_poison(clean_acc, control_acc):
    """The control has no class structure: it must not meet the poison criterion (see the docstring)."""
    assert control_acc > clean_acc - MIN_DROP


@pytest.mark.effect
@needs_fashion
def test_ops_bites_without_augmentation(clean_acc):
    """OPS's one pixel survives only when the judge does not crop or flip (APBench: cutout also beats it)."""
    # With crop and flip OPS does not bite this judge (79.8% in the first run; notebook 01 shows it).
    no_aug = final_acc("ops", protocol=JUDGE.with_(crop_padding=0, flip=False), key="ops (no crop, no flip)")
    print(f"ops without crop and flip: {no_aug:.4f} (clean with them {clean_acc:.4f})")
    assert no_aug <= clean_acc - MIN_DROP
