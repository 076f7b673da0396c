"""The linear separability test of perturbations (Yu et al., "Availability Attacks Create Shortcuts", KDD 2022),
as run by Sandoval-Segura et al. (NeurIPS 2023, arXiv 2305.19254, §4.3;
`psandovalsegura/learn-from-unlearnable:test_linear_separability.py@605dea2`).

How well can a linear classifier tell the classes apart from the perturbations alone?

1. δ_i = poisoned_i - clean_i in [0,1] pixel units, not normalised: for stored (PNG-like) poisons this is the
   clipped, quantised perturbation the victim really sees.
2. Global min-max scaling: (δ - min δ) / (max δ - min δ), one min and one max over the whole N x C x H x W tensor.
3. Flatten -> Linear(D, K) with a bias; cross-entropy with the true labels.
4. Full batch, `LBFGS(lr=0.5)` with PyTorch's defaults (max_iter 20 per step), 500 steps.
5. The score is the final *training* accuracy; the curve is the training accuracy after every step.

The reference swaps its two arguments (`PoisonWithCleanDataset(baseset, pd)`) and so computes clean - poisoned
= -δ. That is harmless: after the min-max scaling -δ becomes 1 - scaled(δ), an affine map that a linear layer
with a bias absorbs exactly, so the best achievable accuracy is the same. This module uses δ as defined above.

The paper's point (abstract claim 2): linear separability of the perturbations is not necessary for a poison to
be unlearnable. Per-poison scores were not available to us; do not quote numbers from here as the paper's.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checks import check_count, check_rate, check_seed
from .data import ImageSet, decode_images
from .device import pick_device


@dataclass
class SeparabilityResult:
    """The final training accuracy of the linear model on the scaled δ, and its per-step curve."""

    accuracy: float
    curve: list[float] = field(default_factory=list)   # training accuracy after each LBFGS step
    losses: list[float] = field(default_factory=list)  # the loss returned by each LBFGS step


def perturbations(poisoned: ImageSet, clean: ImageSet) -> torch.Tensor:
    """δ = poisoned - clean (float32, N x C x H x W, [0,1] units) of two aligned ImageSets.

    They must have the same length, image shape, classes and labels, image for image; anything else is a
    ValueError (a shuffled or subsampled pair would give meaningless differences).
    """
    for what, ds in (("poisoned", poisoned), ("clean", clean)):
        if not isinstance(ds, ImageSet):
            raise TypeError(f"perturbations: {what} must be an ImageSet, got {type(ds).__name__}")
    if len(poisoned) != len(clean) or poisoned.shape != clean.shape:
        raise ValueError(f"perturbations: poisoned ({len(poisoned)} x {poisoned.shape}) and clean ({len(clean)} x "
                         f"{clean.shape}) sets must have the same number of images of the same shape")
    if poisoned.num_classes != clean.num_classes:
        raise ValueError(f"perturbations: poisoned has {poisoned.num_classes} classes, clean {clean.num_classes}")
    if not torch.equal(poisoned.labels, clean.labels):
        raise ValueError("perturbations: the labels differ; the poisoned and clean sets must be aligned image for "
                         "image (the poison's own clean training set, in the same order)")
    if len(clean) == 0:
        raise ValueError("perturbations: the sets are empty")
    return decode_images(poisoned.images, poisoned.meta) - decode_images(clean.images, clean.meta)


def minmax_scale(delta: torch.Tensor) -> torch.Tensor:
    """(δ - min) / (max - min) with one min and max over the whole tensor; a constant δ is a ValueError."""
    lo, hi = delta.min(), delta.max()
    if not bool(hi > lo):
        raise ValueError(f"the perturbations are constant ({float(lo):.4g} everywhere: poisoned == clean?); "
                         "there is nothing to separate")
    return (delta - lo) / (hi - lo)


def linear_separability_of(
    delta: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int | None = None,
    *,
    steps: int = 500,
    lr: float = 0.5,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = True,
) -> SeparabilityResult:
    """The test on given perturbations δ (N x ...) and integer labels (N,): min-max scale, fit Linear(D, K) by LBFGS.

    num_classes: K (default: max label + 1). Full batch on `device`, float32; the linear layer's initialisation
    (PyTorch's default) is drawn from a generator seeded with `seed`.
    """
    who = "linear_separability_of"
    if not isinstance(delta, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("linear_separability_of expects tensors: delta (N, ...) float and labels (N,) int")
    if not delta.dtype.is_floating_point or delta.ndim < 2:
        raise ValueError(f"delta must be a float tensor (N, ...) with N >= 1, got {delta.dtype} {tuple(delta.shape)}")
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool or len(labels) != len(delta):
        raise ValueError(f"labels must be a 1-D integer tensor with one label per perturbation ({len(delta)}), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if len(delta) == 0:
        raise ValueError("linear_separability_of: no perturbations given")
    if not torch.isfinite(delta).all():
        raise ValueError("linear_separability_of: delta contains NaN or Inf values")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2 or int(labels.min()) < 0 or \
            int(labels.max()) >= k:
        raise ValueError(f"need num_classes >= 2 and labels in [0, num_classes), got num_classes={num_classes!r}, "
                         f"labels in [{int(labels.min())}, {int(labels.max())}]")
    steps = check_count(steps, "steps", who)  # the reference uses 500
    lr = check_rate(lr, "lr", who, lo=0.0, lo_open=True)  # the reference uses 0.5
    seed = check_seed(seed, "seed", who)
    dev = pick_device(device)
    x = minmax_scale(delta.detach().float()).reshape(len(delta), -1).to(dev)
    y = labels.to(device=dev, dtype=torch.int64)
    d = x.shape[1]
    model = nn.Linear(d, int(k))
    gen = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / math.sqrt(d)  # nn.Linear's default initialisation, seeded
    with torch.no_grad():
        model.weight.copy_(torch.empty(int(k), d).uniform_(-bound, bound, generator=gen))
        model.bias.copy_(torch.empty(int(k)).uniform_(-bound, bound, generator=gen))
    model = model.to(dev)
    opt = torch.optim.LBFGS(model.parameters(), lr=float(lr))

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    result = SeparabilityResult(float("nan"))
    for _ in tqdm(range(int(steps)), desc="linear separability", disable=quiet or None, leave=False):
        result.losses.append(float(opt.step(closure).detach()))
        with torch.no_grad():
            result.curve.append(float((model(x).argmax(1) == y).float().mean()))
    result.accuracy = result.curve[-1]
    return result


def linear_separability(
    poisoned: ImageSet,
    clean: ImageSet,
    *,
    steps: int = 500,
    lr: float = 0.5,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = True,
) -> SeparabilityResult:
    """Linear separability of the perturbations poisoned - clean (arXiv 2305.19254 §4.3): final train accuracy + curve.

    `poisoned` and `clean` must be aligned (see `perturbations`); the labels are the sets' true labels.
    """
    delta = perturbations(poisoned, clean)
    return linear_separability_of(delta, clean.labels, clean.num_classes, steps=steps, lr=lr, seed=seed,
                                  device=device, quiet=quiet)


__all__ = ["SeparabilityResult", "linear_separability", "linear_separability_of", "minmax_scale", "perturbations"]
