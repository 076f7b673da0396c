"""Few-shot data: base / novel class splits and N-way K-shot Q-query episodes drawn on the device.

The episodes of the upstream training and test scripts of AutoProtoNet (Sandoval-Segura & Lawson, arXiv:2204.00929;
psandovalsegura/AdversarialQuerying@9992e0e: `train_autoprotonet.py` and `test.py`, which draw them with Gidaris &
Komodakis' `FewShotDataloader`), drawn here by our own sampler (its docstring says why).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageSet, check_imageset
from ..device import make_generator

# Offline proxy of CIFAR-FS's disjoint base / novel classes. Fashion-MNIST: each novel class has a visual relative
# among the base classes (Dress ~ T-shirt/top, Coat and Shirt ~ Pullover, Sneaker and Ankle boot ~ Sandal), so the
# base classes teach the features (tops, footwear) but no novel class is seen in training; the novel 5-way task keeps
# the hard Coat/Shirt and Sneaker/Ankle boot pairs, so it does not saturate. Digits: 0-4 base, 5-9 novel.
FASHION_BASE = ("T-shirt/top", "Trouser", "Pullover", "Sandal", "Bag")
FASHION_NOVEL = ("Dress", "Coat", "Shirt", "Sneaker", "Ankle boot")
DIGITS_BASE = ("0", "1", "2", "3", "4")
DIGITS_NOVEL = ("5", "6", "7", "8", "9")


def few_shot_split(ds: ImageSet, classes: Sequence[str]) -> ImageSet:
    """The images of `ds` whose class name is in `classes`, relabelled 0..len(classes)-1 in the given order.

    Raises ValueError naming the missing classes (and the available ones) when a name is not a class of `ds`.
    """
    names = list(classes)
    missing = [c for c in names if c not in ds.classes]
    if missing or not names:
        raise ValueError(f"few_shot_split: classes {missing or names} are not classes of {ds.name!r}; "
                         f"available: {list(ds.classes)}")
    old = torch.tensor([ds.classes.index(c) for c in names])
    keep = torch.isin(ds.labels, old)
    remap = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    remap[old] = torch.arange(len(names))
    return ImageSet(ds.images[keep].clone(), remap[ds.labels[keep]], tuple(names), name=ds.name, meta=dict(ds.meta))


def _check_set(ds: ImageSet, what: str) -> None:
    """TypeError unless `ds` is an ImageSet, ValueError when it is empty. `what` is "caller: argument".

    No class check between a training set and a validation/test set here: few-shot splits have disjoint classes
    by design (CIFAR-FS: 64 / 16 / 20 classes), and every episode relabels its ways 0..way-1."""
    who, _, name = what.rpartition(": ")
    check_imageset(ds, name, who)


@dataclass
class Episodes:
    """A batch of B episodes as indices into the image tensor: support (B, way, shot), query (B, way, query) int64,
    classes (B, way) the dataset labels. The episode label of an image is its class position j in 0..way-1."""

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor

    @property
    def way(self) -> int:
        return int(self.classes.shape[1])


class EpisodeSampler:
    """N-way K-shot Q-query episodes over the classes of a split, drawn on the device, B at a time.

    Ours rather than easyfsl's `TaskSampler` (sicara/easy-few-shot-learning, easyfsl 1.5.0): that one yields one
    episode at a time as a Python list of indices drawn with the global `random` module (no generator, so seeding a
    run means seeding the process), and its labels are remapped in `episodic_collate_fn` from per-item (image,
    label) tuples, i.e. through a DataLoader that gathers images one by one; easyfsl is also not a dependency here.
    This sampler keeps one padded (classes x images) index table on the device and draws B episodes with one
    `argsort` of random keys from its own seeded generator: no per-episode Python, no image decoding per item.

    labels: int64 (N,) dataset labels; classes: the labels episodes may use (default: all present).
    Raises ValueError when way > number of classes or shot + query > images of the smallest class.
    """

    def __init__(self, labels: torch.Tensor, way: int, shot: int, query: int, classes: Sequence[int] | None = None,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        for name, v in (("way", way), ("shot", shot), ("query", query)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"EpisodeSampler: {name} must be an int >= 1, got {v!r}")
        labels = torch.as_tensor(labels).cpu().to(torch.int64)
        present = torch.unique(labels).tolist()
        classes = present if classes is None else [int(c) for c in classes]
        absent = [c for c in classes if c not in present]
        if absent:
            raise ValueError(f"EpisodeSampler: classes {absent} have no images (labels present: {present})")
        if way > len(classes):
            raise ValueError(f"EpisodeSampler: way={way} needs at least {way} classes, the split has {len(classes)}; "
                             f"use way <= {len(classes)}")
        per_class = [torch.nonzero(labels == c).flatten() for c in classes]
        counts = [len(p) for p in per_class]
        smallest = int(np.argmin(counts))
        if shot + query > counts[smallest]:
            raise ValueError(f"EpisodeSampler: shot + query = {shot + query} images per class, but class "
                             f"{classes[smallest]} has only {counts[smallest]}; lower shot or query")
        self.device = torch.device(device)
        self.way, self.shot, self.query = int(way), int(shot), int(query)
        self.classes = torch.tensor(classes, dtype=torch.int64, device=self.device)
        table = torch.full((len(classes), max(counts)), -1, dtype=torch.int64)
        for i, p in enumerate(per_class):
            table[i, :len(p)] = p
        self.table = table.to(self.device)
        self.valid = self.table >= 0
        self.generator = make_generator(seed, self.device)

    def sample(self, batch: int = 1) -> Episodes:
        """Draw `batch` episodes: ways uniformly without replacement, then shot + query distinct images per way."""
        g, k, m = self.generator, self.table.shape[0], self.table.shape[1]
        pos = torch.rand(batch, k, generator=g, device=self.device).argsort(1)[:, :self.way]       # (B, way)
        keys = torch.rand(batch, self.way, m, generator=g, device=self.device)
        keys = keys.masked_fill(~self.valid[pos], 2.0)                                              # padding last
        pick = keys.argsort(-1)[..., :self.shot + self.query]                                       # (B, way, S+Q)
        idx = torch.gather(self.table[pos], 2, pick)
        return Episodes(idx[..., :self.shot], idx[..., self.shot:], self.classes[pos])

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
