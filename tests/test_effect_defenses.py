"""Effect tests: ISS's squeezing defenses recover accuracy lost to a poison (the shared effect setting).

ISS (README, CIFAR-10) and APBench both report JPEG-10 bringing AR back (85.15% / 84.75% from ~12%)
and grayscale bringing error-minimising noise back (93.01% / 92.03% from ~21%). Here each defense must
recover at least half of the accuracy the poison took (clean − poisoned), in the same direction.
Adversarial training is not run here: at 11 forward-backward passes per step it would cost minutes per
run in CI; `uel matrix` measures it (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import final_acc

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]
MIN_RECOVERED = 0.5  # fraction of the lost accuracy the defense must give back

EM_NOTE = ("measured 2026-11-30, seed 0: EM sample-wise costs this judge only 15.85 points (89.80% -> 73.95%), "
           "under the 20 points this test needs before a recovery means anything; grayscale gives back 91% of it "
           "(88.40%)")
CASES = [  # (attack, its parameters, defense): the pairs where ISS and APBench report a large recovery
    # AR costs this judge 21 points with seed 0, just above the 20 this test needs first (3-seed mean 28 ± 7): one
    # seed on another torch build can fall under it, so it runs in `make test-slow`, not CI.
    pytest.param("ar", {}, "jpeg", marks=pytest.mark.slow),
    # EM's surrogate + two judges do not fit CI's budget: `make test-slow`
    pytest.param("em-samplewise", {"profile": "quick"}, "grayscale",
                 marks=[pytest.mark.xfail(strict=True, reason=EM_NOTE), pytest.mark.slow]),
]


@pytest.mark.parametrize("attack,params,defense", CASES)
def test_defense_recovers_accuracy(attack, params, defense):
    clean = final_acc("none", key="clean")
    poisoned = final_acc(attack, **params)
    defended = final_acc(attack, defense, **params)
    recovered = (defended - poisoned) / max(clean - poisoned, 1e-9)
    print(f"{attack}: clean {clean:.4f}, poisoned {poisoned:.4f}, + {defense} {defended:.4f} "
          f"({100 * recovered:.0f}% of the loss recovered)")
    assert clean - poisoned > 0.2, f"{attack} did not bite ({poisoned:.3f} vs clean {clean:.3f}): nothing to recover"
    assert recovered >= MIN_RECOVERED
