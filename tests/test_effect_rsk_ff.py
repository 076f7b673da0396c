"""Effect test: sharpening + DCT low-pass (RSK+FF) brings accuracy back on CUDA-poisoned data.

The shared effect setting (tests/effect_setting.py: 500 Fashion-MNIST images per class as RGB, the `quick`
judge, 2,000 test images). Kim & Sandoval-Segura (Table 1, CIFAR-10, ResNet-18): CUDA 23.25% -> RSK+FF 78.53%
(clean 94.34%). "Well above CUDA alone" is fixed here, before measuring, as at least 15 points above it.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import JUDGE, final_acc

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]
MIN_GAIN = 0.15  # RSK+FF must end at least 15 points above CUDA alone


# First run (2026-11-22) with the judge's whitening layer on: CUDA 35.35%, CUDA + RSK+FF 18.8%, i.e. no effect.
# The cause was the judge, not the defense: FastNet's patch whitening, fitted on training images, amplifies the
# high frequencies that the low-pass removes from every training batch, so unfiltered test images fall where the
# network never trained (clean data + RSK+FF: 25.9% with whitening, 72.7% without). The low-pass
# defenses now train without whitening (uel_helpers.defenses.sharpen), as the paper's ResNet-18, and CUDA alone is
# judged the same way here so that the gain is the defense's, not the judge change's.
def test_rsk_ff_lifts_cuda():
    judge = JUDGE.with_(whiten=False)
    clean = final_acc("none", protocol=judge, key="clean (no whitening)")
    poisoned = final_acc("cuda", protocol=judge, key="cuda (no whitening)")
    defended = final_acc("cuda", "rsk+ff", key="cuda + rsk+ff (no whitening)")
    print(f"cuda, judge without whitening: clean {clean:.4f}, poisoned {poisoned:.4f}, + rsk+ff {defended:.4f}")
    assert clean - poisoned > 0.2, f"CUDA did not bite ({poisoned:.3f} vs clean {clean:.3f}): nothing to recover"
    assert defended >= poisoned + MIN_GAIN
