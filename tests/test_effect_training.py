"""Effect test for the trainer: the quick judge really learns clean data in the shared effect setting.

The honest-judge issue asks clean >= 85% at `quick` (500 Fashion-MNIST images per class as RGB, 2,000 test
images): a judge that stops far below what clean data allows cannot show what a poison costs. The run is the
effect tests' cached clean baseline, so this costs nothing extra in CI.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import DATA, JUDGE, evaluate_cached

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]


def test_quick_judge_learns_clean_data():
    result = evaluate_cached("none", key="clean")
    final, epochs = result.final[0], len(result.test_acc[0])
    print(f"quick judge on {DATA.label}: final {final:.4f}, peak {result.peak[0]:.4f}, {epochs} epochs, "
          f"training accuracy {result.train_acc[0][-1]:.4f}")
    assert final >= 0.85
    assert result.train_loss[0][-1] < result.train_loss[0][0]
    assert epochs <= JUDGE.epochs
