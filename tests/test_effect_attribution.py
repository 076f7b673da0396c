"""Effect test for data attribution with SSL features (arXiv 2311.03386): removing a test image's top-k training
images by ESVM or l2knn in the SSL backbone's feature space flips its prediction more often than removing k random
training
images of its class (the paper's claim: a prediction is most affected by visually similar training images).

Setting (fixed before measuring): Fashion-MNIST, 200 training images per class (seed 0); the `quick` SSL backbone
(MoCo v2, quarter-width ResNet-10, 20 epochs, on the training images without labels); 10 test points drawn (seed 0)
from 60 random test images among those all 3 full-data models classify correctly; k = 51 (the paper's 1280 of 5,000
per class, the same fraction of 200); label conditioning on; retraining `cf-quick` (tiny CNN, 12 epochs), 3 models
per vote, flip <=> at most 1 of 3 correct. Only the full-k check is run (no bisection): the fraction flipped within k.

Criterion (the paper's direction, margin stated before measuring): each of ESVM and l2knn flips at least 2 more of the
10 test points than random same-class removal of the same size.

Measured 2026-11-30 (2 busy CPU cores, 27 min with 93 retrainings; torch 2.14.1): flipped within k = 51 of 10 test
points: ESVM 2, l2knn 1, random 0. The direction of the paper holds (attributed removal flips, random removal never
does) but l2knn misses the margin, so the criterion is not met: a strict xfail with these numbers, in `make
test-slow` (too long for CI). Few points flip at all: removing a quarter of a class (51 of its 200 images) rarely
changes what the tiny retrained CNN predicts for an image the full-data models get right.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from uel_helpers import load_dataset
from uel_helpers.attribution import (
    Counterfactual,
    attribute,
    correctly_classified,
    extract_features,
    random_attribution,
    ssl_config_for_profile,
    train_ssl,
)

pytestmark = [pytest.mark.effect, pytest.mark.slow, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]

N_PER_CLASS, POOL, POINTS, K, MODELS, MARGIN = 200, 60, 10, 51, 3, 2


@pytest.mark.xfail(strict=True, reason="measured ESVM 2, l2knn 1, random 0 of 10 flipped: l2knn misses the margin of 2 "
                                      "(see the module docstring)")
def test_ssl_attribution_flips_more_than_random_removal():
    train_set = load_dataset("fashion-mnist", "train").take_per_class(N_PER_CLASS, seed=0)
    test_all = load_dataset("fashion-mnist", "test")
    pool = test_all.take_per_class(POOL // 10, seed=0)
    backbone = train_ssl(train_set, ssl_config_for_profile("quick"), seed=0, device="cpu", quiet=True)
    f_train = extract_features(backbone.encoder, train_set, device="cpu")
    f_pool = extract_features(backbone.encoder, pool, device="cpu")
    cf = Counterfactual(train_set, pool, "cf-quick", n_models=MODELS, device="cpu")
    points = correctly_classified(cf, POINTS, seed=0)
    atts = {m: attribute(f_train, train_set.labels, f_pool, pool.labels, m, k=K, test_indices=points, n_jobs=2)
            for m in ("esvm", "l2knn")}
    atts["random"] = random_attribution(train_set.labels, pool.labels, K, test_indices=points, seed=0)
    flipped = {}
    for name, att in atts.items():
        flipped[name] = [cf.flipped(p, att.indices[row].tolist()) for row, p in enumerate(points)]
    counts = {name: sum(v) for name, v in flipped.items()}
    print(f"SSL kNN accuracy per epoch: {[round(a, 3) for a in backbone.history.knn_acc]}")
    print(f"flipped within k={K} of {POINTS} test points: {counts} ({cf.retrainings} retrainings run)")
    assert counts["esvm"] >= counts["random"] + MARGIN
    assert counts["l2knn"] >= counts["random"] + MARGIN
