"""Few-shot accuracy over test episodes, as mean ± 95% confidence interval.

The protocol of AutoProtoNet's upstream test script (Sandoval-Segura & Lawson, arXiv:2204.00929;
psandovalsegura/AdversarialQuerying@9992e0e: `test.py`, `test_models.sh`): 5-way 5-shot, 15 queries per class,
1,000 episodes, mean ± 1.96·std/√n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageSet, decode_images
from ..device import autocast, pick_device
from ..progress import progress
from .episodes import EpisodeSampler, _check_set
from .model import AutoProtoNet, class_prototypes, protonet_logits
from .trained import TrainedProtoNet, _model_of


@dataclass
class EpisodeAccuracy:
    """Accuracy over test episodes: per-episode accuracies (n,) in [0, 1], their mean and the 95% CI half-width
    1.96 * std / sqrt(n) (as upstream `test.py`; sample std, ddof = 1)."""

    accs: np.ndarray
    way: int
    shot: int
    query: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.accs))

    @property
    def ci95(self) -> float:
        n = len(self.accs)
        return float(1.96 * np.std(self.accs, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    def __str__(self) -> str:
        return (f"{100 * self.mean:.2f} ± {100 * self.ci95:.2f}% ({len(self.accs)} episodes, {self.way}-way "
                f"{self.shot}-shot, {self.query} queries per class)")


@torch.no_grad()
def evaluate_episodes(model: AutoProtoNet | TrainedProtoNet, test_set: ImageSet, way: int = 5, shot: int = 5,
                      query: int = 15, episodes: int = 1000, seed: int = 0, device: str | torch.device | None = "auto",
                      batch: int = 10, quiet: bool = True) -> EpisodeAccuracy:
    """Few-shot accuracy on `episodes` random episodes of `test_set`'s classes (upstream `test.py`: 5-way 5-shot
    15-query, 1,000 episodes), the model in eval mode (BatchNorm running statistics). The same seed gives the same
    episodes for every model. Raises ValueError for more ways than classes, shot + query above the smallest class or an
    empty test_set; TypeError when test_set is not an ImageSet. An episode whose logits are NaN or infinite (a diverged
    model) gets accuracy NaN, so the mean is NaN rather than an argmax-of-NaN number."""
    m = _model_of(model)
    _check_set(test_set, "evaluate_episodes: test_set")
    dev = pick_device(device)
    sampler = EpisodeSampler(test_set.labels, way, shot, query, device=dev, seed=seed + 1_000_003)
    was_training = m.training
    m.eval().to(dev)
    images = test_set.images.to(dev)
    accs = []
    for start in progress(range(0, episodes, batch), desc="test episodes", quiet=quiet):
        ep = sampler.sample(min(batch, episodes - start))
        b = ep.support.shape[0]
        with autocast(dev):
            xs = decode_images(images[ep.support.reshape(-1)], test_set.meta)
            xq = decode_images(images[ep.query.reshape(-1)], test_set.meta)
            es = m.embed(xs).float().reshape(b, way * shot, -1)
            eq = m.embed(xq).float().reshape(b, way * query, -1)
        s_lab = torch.arange(way, device=dev).repeat_interleave(shot).expand(b, -1)
        q_lab = torch.arange(way, device=dev).repeat_interleave(query).expand(b, -1)
        logits = protonet_logits(eq, class_prototypes(es, s_lab, way), m.scale.float())
        acc = (logits.argmax(-1) == q_lab).float().mean(1)
        # argmax of NaN logits still names a class: such an episode's accuracy is undefined, not a number
        accs.append(torch.where(torch.isfinite(logits).all(-1).all(-1), acc, torch.full_like(acc, math.nan)).cpu())
    m.train(was_training)
    return EpisodeAccuracy(torch.cat(accs).numpy().astype(np.float64), way, shot, query)
