"""Uniform random noise in the L∞ ball: the class-wise baseline that already works, and its sample-wise control.

- `random-noise-classwise` is the Sandoval-Segura group's `cwrandom`
  (`psandovalsegura/unlearnable:perturbation.py@9e384e6` with `--attack_type random --perturb_type classwise`,
  `PerturbationTool.random_noise`): one δ_k ~ U(−ε, ε)^{C×H×W} per class k, no optimisation,
  x̃ = clip(x + δ_y). Because the same noise sits on every image of a class, a network can learn the noise
  instead of the images.
- `random-noise-samplewise` draws an independent δ_i ~ U(−ε, ε) per image. It carries no class
  shortcut and is the control that shows it is the *class-wise* structure that makes noise unlearnable.

ε = 8/255 (L∞) by default. The noise comes from a torch CPU generator seeded with `seed` (as
`torch.manual_seed(seed)` before the draw does in `hala64/udp:generate_poisoned_dataset/class_wise.py@a693e3c`),
so the poison is the same on every device. Stored with the package rule (round half up, `floor(255·x + 0.5)`);
the group's PNG conversion is not known (unverified), `rounding="truncate"` is available.
"""

from __future__ import annotations

import torch

from ..checks import check_choice, check_seed
from ..data import ImageSet
from .base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from .registry import register


def uniform_noise(shape: tuple[int, ...], eps: float, seed: int) -> torch.Tensor:
    """float32 noise U(−eps, eps) of `shape` from a CPU torch generator seeded with `seed`."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.empty(shape, dtype=torch.float32).uniform_(-eps, eps, generator=gen)


def _random_noise(train_set: ImageSet, attack: str, classwise: bool, eps: float, seed: int,
                  rounding: str) -> Poison:
    check_uint8_imageset(train_set, attack)
    eps = check_eps(eps, "linf", attack)
    seed = check_seed(seed, "seed", attack)
    rounding = check_choice(rounding, "rounding", ("round", "truncate"), attack)
    rows = train_set.num_classes if classwise else len(train_set)
    delta = uniform_noise((rows, *train_set.shape), eps, seed)
    return poison_from_delta(attack, train_set, delta, {"eps": eps, "rounding": rounding}, seed, rounding=rounding,
                             classwise=classwise)


@register("random-noise-classwise",
          "class-wise uniform noise U(-eps, eps), the group's cwrandom (psandovalsegura/unlearnable@9e384e6)",
          "Linf 8/255")
def random_noise_classwise(
    train_set: ImageSet, *, eps: float = 8 / 255, seed: int = 0, rounding: str = "round"
) -> Poison:
    """One δ_k ~ U(−eps, eps) per class, added to every image of class k (`cwrandom`, see the module).

    Returns a Poison with the class-wise perturbation (K, C, H, W).
    """
    return _random_noise(train_set, "random-noise-classwise", True, eps, seed, rounding)


@register("random-noise-samplewise", "sample-wise uniform noise U(-eps, eps): the no-shortcut control",
          "Linf 8/255", recompute_delta=True)
def random_noise_samplewise(
    train_set: ImageSet, *, eps: float = 8 / 255, seed: int = 0, rounding: str = "round"
) -> Poison:
    """An independent δ_i ~ U(−eps, eps) per image; the control for the class-wise version.

    Returns a Poison with the sample-wise perturbation (N, C, H, W).
    """
    return _random_noise(train_set, "random-noise-samplewise", False, eps, seed, rounding)
