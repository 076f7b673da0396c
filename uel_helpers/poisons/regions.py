"""Regions-k: class-wise, piecewise-constant ±ε colour blocks on a √k×√k grid (hala64/udp `region_poison`).

THIRD-PARTY DEFINITION. The Sandoval-Segura group lists `regions-4` and `regions-16` among its poisons
(`psandovalsegura/learn-from-unlearnable:constants.py@605dea2`, `DATA_SETUPS`), but the script that made them
is in none of its public repositories (`learn-from-unlearnable`, `unlearnable`, `autoregressive-poisoning`,
`adversarial_poisons`). This module follows the only implementation found,
`hala64/udp:generate_poisoned_dataset/class_wise.py@a693e3c` (`region_poison`;
"Detection and Defense of Unlearnable Examples", AAAI-24), with k ∈ {4, 16, 64}:

    g = √k;  R ← ε · sign(N(0, 1)) of shape (K, g, g, C)   (torch generator seeded with `seed`)
    every pixel of region (a, b) of a class-y image gets + R[y, a, b, :];  clip to [0, 1]

Whether the group's regions-k match this exactly is unverified; say so where it is used.

Package choices (stated): any perfect square k with √k ≤ min(H, W) is accepted (4, 16, 64 are the
published ones). When the image side is not a multiple of √k (e.g. 28 / 8), the grid uses near-equal
bands by integer division: band a covers rows [⌊a·H/g⌋, ⌊(a+1)·H/g⌋) (28 pixels in 8 bands → 3, 4, 3,
4, 3, 4, 3, 4); for 32×32 this is udp's 32/g-pixel squares. Stored with the package rule (round half
up, `floor(255·x + 0.5)`); `rounding="truncate"` is available.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_choice, check_count, check_seed
from ..data import ImageSet
from .base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from .registry import register

_ATTACK = "regions"
_DEFINITION = "region_poison of hala64/udp:generate_poisoned_dataset/class_wise.py@a693e3c"


def band_edges(size: int, bands: int) -> list[int]:
    """Edges of `bands` near-equal bands over `size` pixels: [⌊a·size/bands⌋ for a = 0..bands].

    Band a is [edges[a], edges[a+1]); sizes differ by at most one pixel and are exact when `bands`
    divides `size`. Shared with LSP's block grid.
    """
    if bands < 1 or bands > size:
        raise ValueError(f"cannot split {size} pixels into {bands} bands (need 1 <= bands <= {size})")
    return [(a * size) // bands for a in range(bands + 1)]


def band_index(size: int, bands: int) -> torch.Tensor:
    """For each of `size` pixels, the index of its band (int64, length `size`), see `band_edges`."""
    edges = band_edges(size, bands)
    lengths = torch.tensor([edges[a + 1] - edges[a] for a in range(bands)])
    return torch.repeat_interleave(torch.arange(bands), lengths)


def expand_grid(blocks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Upsample (..., gh, gw) block values to (..., height, width): each block fills its band × band region."""
    gh, gw = blocks.shape[-2:]
    if height % gh == 0 and width % gw == 0:  # equal squares: a broadcast view, one copy (fast path)
        sh, sw = height // gh, width // gw
        lead = blocks.shape[:-2]
        return blocks[..., :, None, :, None].expand(*lead, gh, sh, gw, sw).reshape(*lead, height, width)
    cols = blocks.index_select(-1, band_index(width, gw))
    return cols.index_select(-2, band_index(height, gh))


def _check_k(k: int, height: int, width: int) -> int:
    """The grid side √k for a number of regions k: a perfect square whose √k×√k grid fits the images."""
    k = check_count(k, "k", _ATTACK)
    g = math.isqrt(k)
    if g * g != k:
        raise ValueError(f"{_ATTACK}: k must be a perfect square (4, 16 or 64) so the grid is √k×√k; got {k}")
    if g > min(height, width):
        raise ValueError(f"{_ATTACK}: a {g}x{g} grid (k={k}) does not fit {height}x{width} images")
    return g


def region_noise(num_classes: int, channels: int, height: int, width: int, k: int, eps: float,
                 seed: int) -> torch.Tensor:
    """The class-wise regions-k δ, float32 (K, C, H, W) with entries ±eps (udp's `region_poison`)."""
    g = _check_k(k, height, width)
    gen = torch.Generator().manual_seed(int(seed))
    r = eps * torch.randn(num_classes, g, g, channels, generator=gen).sign()  # udp's (K, g, g, 3) layout
    return expand_grid(r.permute(0, 3, 1, 2), height, width).contiguous()


@register(_ATTACK, "regions-k: class-wise ±eps blocks on a √k×√k grid (hala64/udp region_poison definition)",
          "Linf 8/255")
def regions(
    train_set: ImageSet, *, k: int = 4, eps: float = 8 / 255, seed: int = 0, rounding: str = "round"
) -> Poison:
    """Add the class's ±eps block pattern (k regions, one sign per class, region and channel) to every image.

    k: number of regions, a perfect square (published: 4, 16, 64); eps: the L∞ budget in [0, 1] units.
    Returns a Poison with the class-wise perturbation (K, C, H, W). Third-party definition: see the module.
    """
    check_uint8_imageset(train_set, _ATTACK)
    eps = check_eps(eps, "linf", _ATTACK)
    seed = check_seed(seed, "seed", _ATTACK)
    rounding = check_choice(rounding, "rounding", ("round", "truncate"), _ATTACK)
    c, h, w = train_set.shape
    delta = region_noise(train_set.num_classes, c, h, w, k, eps, int(seed))
    params = {"k": int(k), "eps": eps, "rounding": rounding}
    return poison_from_delta(_ATTACK, train_set, delta, params, int(seed), rounding=rounding,
                             info={"definition": f"{_DEFINITION} (third-party)"}, classwise=True)
