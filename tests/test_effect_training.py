"""Effect test for the trainer: the quick protocol really learns Fashion-MNIST (the issue asks >= 90%).

Marked `slow` (about 3.5 minutes on 2 CPU cores: 60,000 images x 4 epochs), so `make test` and CI skip it
to stay within CI's 20-minute budget; `make test-slow` runs it. The effect tests' clean baseline
(tests/effect_setting.py, 5,000 images) checks in CI that the same protocol learns.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from uel_helpers import load_dataset, train


@pytest.mark.effect
@pytest.mark.slow
@needs_fashion
def test_quick_protocol_reaches_90_percent_on_fashion_mnist():
    train_set, test_set = load_dataset("fashion-mnist"), load_dataset("fashion-mnist", "test")
    hist = train(train_set, test_set, "quick", seed=0, device="cpu", quiet=True)
    print(f"quick protocol on Fashion-MNIST: final {hist.final_acc:.4f}, peak {hist.peak_acc:.4f}, "
          f"{hist.wall_time:.0f}s")
    assert hist.final_acc >= 0.90
    assert hist.train_loss[-1] < hist.train_loss[0]
