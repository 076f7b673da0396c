"""Effect tests for AutoProtoNet (Sandoval-Segura & Lawson, arXiv:2204.00929) on the offline proxy.

Setting (fixed before measuring): Fashion-MNIST zero-padded to 32 px (1 channel; CIFAR-FS's 2x2 embedding map);
base classes T-shirt/top, Trouser, Pullover, Sandal, Bag (training split), novel classes Dress, Coat, Shirt, Sneaker,
Ankle boot (test split); the `quick` settings (5-way 5-shot 15-query training, 6 epochs x 40 steps x 2 episodes, SGD
Nesterov 0.1, LR x 0.06 from epoch 5, crop 4 + flip + jitter 0.4); ProtoNet = the same with lambda_r = 0; seed 0 for
both (same encoder initialisation, episodes and augmentations).

Criteria (fixed before measuring):
1. parity (the paper's claim): on the same 300 novel 5-way 5-shot 15-query episodes, |AutoProtoNet - ProtoNet| <= 3
   accuracy points, and both >= 40% (twice chance, 20%);
2. the decoder shows the class: over 50 novel 5-way 5-shot episodes, the decoded prototype of a class is closer (MSE)
   to that class's mean test image than to every other novel class's mean image in >= 80% of the 250 (episode,
   class) pairs;
3. refinement: over 20 constructed 5-way 1-shot novel tasks (seeds 0..19) whose bad class (position 0) has its one
   support image occluded (centre 5/8 square blacked out), with 15 held-out queries per class, moving the bad
   prototype to alpha = 0.7 (the paper's choice) towards a spare clean image of the class raises the mean held-out
   accuracy by >= 3 points over alpha = 0.

Measured (2026-11-30, 2 shared CPU cores, load ~4.5, OMP_NUM_THREADS=1, 7.6 min for the module):
1. AutoProtoNet 73.76 +- 0.53%, ProtoNet 71.71 +- 0.54% (300 episodes): +2.05 points, parity met;
2. 138/250 = 55.2% (chance 20%): NOT met. The decoded prototypes show the coarse category, not the class: Coat
   prototypes land nearest the Shirt mean (50/50), Ankle boot nearest Sneaker (44/50); reconstruction MSE on novel
   images 0.067 after 240 training steps. Kept as a strict xfail with these numbers (criterion unchanged);
3. alpha = 0: 57.60%, alpha = 0.7: 62.60% over 20 tasks: +5.00 points, met.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import needs_fashion
from uel_helpers.data import load_dataset, pad
from uel_helpers.protonet import (
    FASHION_BASE,
    FASHION_NOVEL,
    EpisodeSampler,
    decode_prototypes,
    evaluate_episodes,
    few_shot_split,
    make_refinement_task,
    protonet_settings,
    refinement_path,
    train_protonet,
)

# In `make test-slow`: the proxy's ProtoNet + AutoProtoNet trainings take ~5.5 min on 2 cores (measured in CI,
# 2026-12-01: setup 248 s + 92 s), beyond CI's 30-minute budget with the rest
pytestmark = [pytest.mark.effect, pytest.mark.slow, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]

PARITY_POINTS, CHANCE_FLOOR, DECODE_FRAC, REFINE_POINTS, ALPHA = 3.0, 0.40, 0.80, 3.0, 0.7


@pytest.fixture(scope="module")
def proxy():
    base = pad(few_shot_split(load_dataset("fashion-mnist", "train"), FASHION_BASE), 32)
    novel = pad(few_shot_split(load_dataset("fashion-mnist", "test"), FASHION_NOVEL), 32)
    return base, novel


@pytest.fixture(scope="module")
def models(proxy, effect_cache):
    base, _ = proxy
    s = protonet_settings("quick")
    auto = train_protonet(base, s, seed=0, device="cpu", quiet=True, cache_root=effect_cache)
    plain = train_protonet(base, s.with_(lambda_r=0.0), seed=0, device="cpu", quiet=True, cache_root=effect_cache)
    return auto, plain


def test_autoprotonet_matches_protonet_accuracy(proxy, models):
    _, novel = proxy
    auto, plain = models
    n = protonet_settings("quick").test_episodes
    acc_auto = evaluate_episodes(auto, novel, 5, 5, 15, n, seed=0, device="cpu")
    acc_plain = evaluate_episodes(plain, novel, 5, 5, 15, n, seed=0, device="cpu")
    print(f"AutoProtoNet {acc_auto}; ProtoNet {acc_plain}; train acc per epoch "
          f"{[round(a, 3) for a in auto.history.train_acc]} / {[round(a, 3) for a in plain.history.train_acc]}")
    assert abs(acc_auto.mean - acc_plain.mean) * 100 <= PARITY_POINTS
    assert acc_auto.mean >= CHANCE_FLOOR and acc_plain.mean >= CHANCE_FLOOR


@pytest.mark.xfail(strict=True, reason="measured 138/250 = 55.2% < 80% at quick: the decoder shows the coarse "
                   "category (tops / footwear), not the novel class (see the module docstring)")
def test_decoded_prototypes_show_their_class(proxy, models):
    _, novel = proxy
    auto, _ = models
    means = torch.stack([novel.to_float()[novel.labels == k].mean(0) for k in range(novel.num_classes)])
    sampler = EpisodeSampler(novel.labels, 5, 5, 1, seed=0)
    hits = total = 0
    for _ in range(50):
        ep = sampler.sample(1)
        sup = novel.images[ep.support[0].reshape(-1)]
        _, decoded = decode_prototypes(auto, sup, torch.arange(5).repeat_interleave(5), 5)
        mse = ((decoded.clamp(0, 1)[:, None] - means[None]) ** 2).mean((2, 3, 4))  # (way, classes)
        hits += int((mse.argmin(1) == ep.classes[0]).sum())
        total += 5
    print(f"decoded prototype nearest to its own class mean: {hits}/{total} = {hits / total:.3f}")
    assert hits / total >= DECODE_FRAC


def test_refinement_raises_held_out_accuracy(proxy, models):
    _, novel = proxy
    auto, _ = models
    before, after = [], []
    for seed in range(20):
        task = make_refinement_task(novel, way=5, shot=1, query=15, bad_class=0, corruption="occlude", seed=seed)
        path = refinement_path(auto, task, alphas=(0.0, ALPHA))
        before.append(path.accuracy[0])
        after.append(path.accuracy[1])
    gain = 100 * (np.mean(after) - np.mean(before))
    print(f"held-out accuracy over 20 tasks: alpha=0 {100 * np.mean(before):.2f}%, alpha={ALPHA} "
          f"{100 * np.mean(after):.2f}% (gain {gain:+.2f} points)")
    assert gain >= REFINE_POINTS
