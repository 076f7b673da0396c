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


# History: with the old whitened 4-epoch judge RSK+FF made CUDA worse (35.35% -> 18.8%): the judge's patch
# whitening amplified the high frequencies the low-pass removes. The quick judge has no whitening now (the
# honest-judge issue), so CUDA alone and CUDA + RSK+FF are judged by the same network, the paper's way.
@pytest.mark.slow  # a strict xfail costs a judge trained to fit (~2 min): `make test-slow`, not CI
@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-11-30, seed 0, quick judge trained to fit: clean 89.80%, CUDA 37.25%, CUDA + RSK+FF 39.15% "
    "(+1.9 points, the criterion asks +15). The same judge on 200 images per class gave +16.3 (41.65 -> 57.90): at "
    "this scale the gain is not stable; the paper's effect (23.25 -> 78.53 on CIFAR-10) does not reproduce here"))
def test_rsk_ff_lifts_cuda():
    clean = final_acc("none", key="clean")
    poisoned = final_acc("cuda")
    defended = final_acc("cuda", "rsk+ff")
    print(f"cuda: clean {clean:.4f}, poisoned {poisoned:.4f}, + rsk+ff {defended:.4f}")
    assert clean - poisoned > 0.2, f"CUDA did not bite ({poisoned:.3f} vs clean {clean:.3f}): nothing to recover"
    assert defended >= poisoned + MIN_GAIN
