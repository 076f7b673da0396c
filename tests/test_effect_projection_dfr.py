"""Effect tests for "What can we learn from unlearnable datasets?": the projection attack and DFR.

The shared effect setting (tests/effect_setting.py). Criteria fixed before measuring:
- the orthogonal projection raises clean accuracy by at least 10 points on at least one class-wise poison
  (the paper: > 87% on CIFAR-10 OPS). Its logistic regression uses batch 128 here: on 5,000 images that is
  40 x 20 = 800 SGD steps, close to the reference's 980 on CIFAR-10 (batch 1,024 would give only 100 steps;
  `uel_helpers.defenses.projection` explains why too few steps leave W near its random start);
- DFR (the last layer retrained on 500 clean images, 10% of the training set as in the paper, BN statistics
  re-estimated as the reference does) lifts a poisoned judge's accuracy by at least 10 points.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import DATA, JUDGE, final_acc
from uel_helpers.data import load_dataset, to_rgb
from uel_helpers.dfr import reweight_last_layer
from uel_helpers.poisons import make_poison
from uel_helpers.training import train

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]
MIN_GAIN = 0.10
CLASSWISE = ["random-noise-classwise", "regions", "lsp"]


@pytest.mark.slow  # six judges trained to fit (~12 min on 2 cores): over CI's budget; `make test-slow` runs it
def test_projection_lifts_a_classwise_poison():
    gains = {}
    for attack in CLASSWISE:
        poisoned = final_acc(attack)
        projected = final_acc(attack, "projection", defense_params={"batch_size": 128})
        gains[attack] = projected - poisoned
        print(f"{attack}: poisoned {poisoned:.4f}, + projection {projected:.4f} ({100 * gains[attack]:+.1f} points)")
    assert max(gains.values()) >= MIN_GAIN, f"projection gains {gains}"


@pytest.mark.slow  # an EM judge trained to fit + 15 LBFGS epochs: over CI's budget; `make test-slow` runs it
@pytest.mark.xfail(strict=True, reason="measured 2026-11-30 with the honest judge: EM sample-wise judge 73.95% -> "
                                      "81.10% after DFR (+7.2 points, the criterion asks +10; clean 89.80%, control "
                                      "89.90%). The poison costs only 16 points under this judge, so less is left "
                                      "to recover; the earlier whitened judge gave EM 10.0%")
def test_dfr_lifts_a_poisoned_judge():
    train_set, test_set = DATA.load()
    test_set = test_set.take_per_class(JUDGE.max_test // test_set.num_classes, seed=0)
    poisoned = make_poison("em-samplewise", train_set, seed=0, quiet=True, profile="quick").poisoned
    _, model = train(poisoned, test_set, JUDGE, seed=0, device="cpu", quiet=True, return_model=True)
    # 500 clean images the poisoned set does not contain: take_per_class draws one permutation per class, so
    # 550 per class with the same seed are the effect set's 500 plus 50 more; keep those 50 (by content).
    more = load_dataset("fashion-mnist", "train").take_per_class(DATA.n_per_class + 50, seed=DATA.subset_seed)
    seen = {bytes(img.numpy()) for img in train_set.images[:, :1]}  # grey channel (the set is grey-as-RGB)
    extra = [i for i in range(len(more)) if bytes(more.images[i].numpy()) not in seen]
    clean_subset = to_rgb(more.subset(extra))
    assert 450 <= len(clean_subset) <= 500, len(clean_subset)
    res = reweight_last_layer(model, clean_subset, test_set, JUDGE, bn_mode="train", device="cpu")
    print(f"em-samplewise judge: before DFR {res.acc_before:.4f}, after DFR {res.acc_after:.4f}")
    assert res.acc_after >= res.acc_before + MIN_GAIN
