"""Counterfactual evaluation of an attribution: removal support and mislabel support
(Singla et al. 2023, arXiv 2311.03386; vasusingla/simple-data-attribution@d2016b4 `counterfactual_search.py`).

Removal support of a test image: the smallest m such that retraining without its top-m attributed training images
flips the prediction, found by bisection over the top-k list; a flip means that at most half of n freshly trained
models classify the test image correctly (`avg_correct <= 0.5`); -1 when even removing all k does not flip it.
Mislabel support: the same search, relabelling the top-m images to the flip class (the second most likely class by
the mean probability of the n models trained on the full set, skipping the true class) instead of removing them.
Every retraining is cached by (removed or relabelled set, flip class, seed, protocol, data): a resumed or repeated
search does not train again.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..cache import cached, tensor_fingerprint
from ..checks import check_count
from ..data import ImageSet, check_imageset, check_same_classes
from ..progress import progress
from ..training import Protocol, get_protocol, train
from .scores import Attribution

SUPPORT_KINDS = ("removal", "mislabel")


def binary_search_support(flipped: Callable[[int], bool], k: int, budget: int) -> int:
    """The reference's search (`counterfactual_search.py`): -1 if `flipped(k)` is False, else bisection over m in
    (0, k] with `budget` steps, returning the smallest m seen to flip (exact when budget >= ceil(log2 k) and
    `flipped` is
    monotone; else within k / 2**budget)."""
    if k < 1 or budget < 0:
        raise ValueError(f"binary_search_support: need k >= 1 and budget >= 0, got k={k}, budget={budget}")
    if not flipped(k):
        return -1
    low, high, best = 0, k, k
    for _ in range(budget):
        mid = (low + high) // 2
        if mid == low:  # converged: low does not flip, high = low + 1 does
            break
        if flipped(mid):
            high = mid
            best = min(best, mid)
        else:
            low = mid
    return best


def _set_key(indices: Sequence[int]) -> str:
    arr = np.asarray(sorted(int(i) for i in indices), dtype=np.int64)
    return hashlib.sha256(arr.tobytes()).hexdigest()[:20]


@dataclass
class SupportResult:
    method: str
    kind: str
    test_index: int
    k: int
    support: int              # smallest m found to flip, -1 if removing/relabelling all k does not
    flip_class: int | None    # mislabel support only
    retrainings: int          # trainings actually run (cache misses)
    seconds: float
    budget: int = 0           # bisection steps; 0 = the full-k check only (support is then k or -1)

    @property
    def flipped(self) -> bool:
        return self.support >= 0


@dataclass
class Counterfactual:
    """Retrain-and-vote evaluator on `train_set` for the test images `test_set` (a few images, e.g. 5-100).

    protocol: the retraining recipe (`resnet9-cf` at paper, `cf-quick` on a CPU). n_models: models per vote (paper 5;
    flip <=> at most half correct). seeds 0..n_models-1. Retrainings cached under `cache_root` (default UEL_CACHE).
    Raises TypeError when a set is not an ImageSet; ValueError for an empty set, sets with different image shapes or
    classes (names and order: the votes compare test labels with the retrained models' classes), or a bad n_models.
    """

    train_set: ImageSet
    test_set: ImageSet
    protocol: Protocol | str = "cf-quick"
    n_models: int = 3
    device: str | torch.device | None = "auto"
    cache: bool = True
    cache_root: str | None = None
    quiet: bool = True
    retrainings: int = field(default=0, init=False)   # trainings run so far (cache misses)

    def __post_init__(self) -> None:
        if not isinstance(self.train_set, ImageSet) or not isinstance(self.test_set, ImageSet):
            raise TypeError("Counterfactual: train_set and test_set must be ImageSets")
        check_imageset(self.train_set, "train_set", "Counterfactual")
        check_imageset(self.test_set, "test_set", "Counterfactual")
        if self.train_set.shape != self.test_set.shape:
            raise ValueError(f"Counterfactual: train images are {self.train_set.shape} but test images are "
                             f"{self.test_set.shape}; they must match")
        check_same_classes(self.train_set, self.test_set, "Counterfactual")
        self.n_models = check_count(self.n_models, "n_models", "Counterfactual")
        self.protocol = get_protocol(self.protocol)
        if self.protocol.max_train is not None and len(self.train_set) > self.protocol.max_train:
            raise ValueError(f"protocol {self.protocol.name!r} subsamples training sets to {self.protocol.max_train} "
                             f"images, which would hide the removals; pass a train_set of at most that many images "
                             f"(now {len(self.train_set)}) or a protocol without max_train")
        self._fp = (tensor_fingerprint(self.train_set.images), tensor_fingerprint(self.train_set.labels),
                    tensor_fingerprint(self.test_set.images))
        self._memo: dict[tuple, torch.Tensor] = {}

    def _check_test_pos(self, test_pos: int) -> int:
        """An index into this Counterfactual's test images: an integer (`checks.check_count`) below their number."""
        test_pos = check_count(test_pos, "test_pos", "Counterfactual", lo=0)
        if test_pos >= len(self.test_set):
            raise ValueError(f"test_pos: expected an index into the {len(self.test_set)} test images of this "
                             f"Counterfactual (0..{len(self.test_set) - 1}), got {test_pos!r}")
        return test_pos

    def probabilities(self, changed: Sequence[int] = (), relabel_to: int | None = None, seed: int = 0
                      ) -> torch.Tensor:
        """Softmax outputs (len(test_set), classes) of one model trained with `changed` training images removed
        (relabel_to None) or relabelled to `relabel_to`. Cached."""
        changed = sorted({int(i) for i in changed})
        if changed and (changed[0] < 0 or changed[-1] >= len(self.train_set)):
            raise ValueError(f"changed: training indices must lie in 0..{len(self.train_set) - 1}")
        key = (_set_key(changed), relabel_to, seed)
        if key in self._memo:
            return self._memo[key]
        config = {"kind": "cf-retrain", "protocol": self.protocol.to_dict(), "data": self._fp, "changed": key[0],
                  "n_changed": len(changed), "relabel_to": relabel_to, "seed": seed, "format": 1}

        def build() -> torch.Tensor:
            self.retrainings += 1
            if relabel_to is None:
                keep = np.setdiff1d(np.arange(len(self.train_set)), np.asarray(changed, dtype=np.int64))
                data = self.train_set.subset(keep)
            else:
                labels = self.train_set.labels.clone()
                labels[torch.as_tensor(changed, dtype=torch.int64)] = int(relabel_to)
                data = ImageSet(self.train_set.images, labels, self.train_set.classes, self.train_set.name,
                                dict(self.train_set.meta))
            _, model = train(data, self.test_set, self.protocol, seed=seed, device=self.device, quiet=True,
                             return_model=True)
            return _softmax(model, self.test_set)

        probs = cached("cf-retrain", config, build, lambda p, path: torch.save(p, path),
                       lambda path: torch.load(path, weights_only=True), suffix=".pt", enabled=self.cache,
                       root=self.cache_root)
        self._memo[key] = probs
        return probs

    def vote(self, test_pos: int, changed: Sequence[int] = (), relabel_to: int | None = None) -> float:
        """Fraction of the n models that classify test image `test_pos` correctly (`counterfactual_search.py`)."""
        t = self._check_test_pos(test_pos)
        y = int(self.test_set.labels[t])
        return sum(int(self.probabilities(changed, relabel_to, s)[t].argmax()) == y
                   for s in range(self.n_models)) / self.n_models

    def flipped(self, test_pos: int, changed: Sequence[int] = (), relabel_to: int | None = None) -> bool:
        return self.vote(test_pos, changed, relabel_to) <= 0.5

    def flip_class(self, test_pos: int) -> int:
        """The mislabel target: the second most likely class by mean probability of the full-data models, or the
        most likely one when the second is the true class (`counterfactual_search.py --flip-class`; we use mean
        probabilities)."""
        t = self._check_test_pos(test_pos)
        mean = torch.stack([self.probabilities((), None, s)[t] for s in range(self.n_models)]).mean(0)
        order = torch.argsort(mean, descending=True, stable=True).tolist()
        y = int(self.test_set.labels[t])
        return order[0] if order[1] == y else order[1]

    def support(self, ranked: Sequence[int], test_pos: int, kind: str = "removal", budget: int = 7,
                method: str = "?") -> SupportResult:
        """Removal or mislabel support of test image `test_pos` for the attributed list `ranked` (k = len)."""
        if kind not in SUPPORT_KINDS:
            raise ValueError(f"kind: expected one of {SUPPORT_KINDS}, got {kind!r}")
        ranked = [int(i) for i in ranked]
        if not ranked:
            raise ValueError("ranked: the attributed list is empty")
        t = self._check_test_pos(test_pos)
        t0, before = time.perf_counter(), self.retrainings
        target = self.flip_class(t) if kind == "mislabel" else None
        m = binary_search_support(lambda m: self.flipped(t, ranked[:m], target), len(ranked), budget)
        return SupportResult(method, kind, t, len(ranked), m, target, self.retrainings - before,
                             time.perf_counter() - t0, budget)


def correctly_classified(cf: Counterfactual, n: int, seed: int = 0) -> list[int]:
    """`n` random positions of `cf.test_set` that every full-data model classifies correctly (a point the models
    already get wrong has nothing to flip); ValueError when fewer exist. Our choice: the reference draws test points
    at random (its README)."""
    ok = [p for p in range(len(cf.test_set)) if cf.vote(p) == 1.0]
    if len(ok) < n:
        raise ValueError(f"n={n}: only {len(ok)} of the {len(cf.test_set)} candidate test images are classified "
                         f"correctly by all {cf.n_models} full-data models; pass a larger test pool or a smaller n")
    rng = np.random.default_rng(seed)
    return sorted(int(p) for p in rng.choice(ok, size=n, replace=False))


def _softmax(model: torch.nn.Module, data: ImageSet) -> torch.Tensor:
    dev = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        logits = model(data.images.to(dev).float().div(255.0))
    return torch.softmax(logits.float(), 1).cpu()


def evaluate_support(cf: Counterfactual, attributions: Mapping[str, Attribution], test_positions: Sequence[int],
                     kind: str = "removal", budget: int = 7, k: int | None = None, quiet: bool = False
                     ) -> list[SupportResult]:
    """Support of every method for every test image. The attributions' `test_indices` are positions in
    `cf.test_set` (compute them on the same test images); each must cover every position in `test_positions`, else
    ValueError. k: use the first k of each list (default: all)."""
    jobs = [(name, p) for name in attributions for p in test_positions]
    bar = progress(total=len(jobs), desc=f"{kind} support", unit="point", quiet=quiet, leave=True)
    out = []
    for name, p in jobs:
        ranked = attributions[name].top(p, k)
        out.append(cf.support(ranked, p, kind, budget, method=name))
        bar.update(1)
        bar.set_postfix(method=name, support=out[-1].support, retrained=cf.retrainings)
    bar.close()
    return out


def support_table(results: Sequence[SupportResult]) -> list[dict]:
    """Per (method, kind): test points, fraction flipped within k, median support of the flipped (None with budget 0:
    only the full-k check ran, so the support is not resolved), bisection budget, retrainings, seconds."""
    rows = []
    for method, kind in dict.fromkeys((r.method, r.kind) for r in results):
        rs = [r for r in results if r.method == method and r.kind == kind]
        flipped = [r.support for r in rs if r.flipped]
        rows.append({"method": method, "kind": kind, "points": len(rs), "k": rs[0].k,
                     "flipped": len(flipped), "flipped_frac": len(flipped) / len(rs),
                     "budget": max(r.budget for r in rs),
                     "median_support": statistics.median(flipped) if flipped and rs[0].budget > 0 else None,
                     "retrainings": sum(r.retrainings for r in rs), "seconds": sum(r.seconds for r in rs)})
    return rows
