"""Effect test: sharpening + DCT low-pass (RSK+FF) brings accuracy back on CUDA-poisoned data.

The shared effect setting (tests/effect_setting.py: 500 Fashion-MNIST images per class as RGB, the `quick`
judge, 2,000 test images). Kim & Sandoval-Segura (Table 1, CIFAR-10, ResNet-18): CUDA 23.25% -> RSK+FF 78.53%
(clean 94.34%). "Well above CUDA alone" is fixed here, before measuring, as at least 15 points above it.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import final_acc

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]
MIN_GAIN = 0.15  # RSK+FF must end at least 15 points above CUDA alone


# Does NOT reproduce in this setting (first run, CI clean clone, 2026-11-22): clean 83.2%, CUDA 35.35%,
# CUDA + RSK+FF 18.8%: the defense made it worse. Not yet explained; candidates: on 28x28 images the 30% low-pass
# keeps a 7x7 block of a 26x26 image, and the judge is tested on unfiltered images after 4 epochs on heavily
# filtered ones. Strict: the day it passes, this marker must go. `make test-slow` runs it (not CI's budget).
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="RSK+FF lowered accuracy on CUDA (35.35% -> 18.8%) at the quick setting; "
                   "see notebook 04 and the module docstring")
def test_rsk_ff_lifts_cuda():
    clean = final_acc("none", key="clean")
    poisoned = final_acc("cuda")
    defended = final_acc("cuda", "rsk+ff")
    print(f"cuda: clean {clean:.4f}, poisoned {poisoned:.4f}, + rsk+ff {defended:.4f}")
    assert clean - poisoned > 0.2, f"CUDA did not bite ({poisoned:.3f} vs clean {clean:.3f}): nothing to recover"
    assert defended >= poisoned + MIN_GAIN
