"""LSP: linearly separable perturbations (Yu et al., "Availability Attacks Create Shortcuts", KDD 2022).

Synthetic Gaussian clusters, one per class, are drawn in a low-dimensional space, blown up to
piecewise-constant image patches and added to the training images: the noise alone is linearly
separable by class, so it is a shortcut a network learns instead of the images. Settings follow
APBench (`lafeat/apbench:attack/lsp_poisons.py@9a6fb91`; the authors' `dayu11/Availability-Attacks-Create-Shortcuts`
was not followed):

1. A grid of patches: patch p = 8 for 32×32 images, so a 4×4 grid; features d = grid² · C (48 for CIFAR).
2. scikit-learn `make_classification(n_samples, n_features=d, n_informative=d, n_redundant=0,
   n_repeated=0, n_classes=K, class_sep=10, flip_y=0, n_clusters_per_class=1)`.
3. Each sample is reshaped to (grid, grid, C) (APBench's channels-last order) and each value fills its
   p×p block.
4. Each sample is scaled to L2 norm (6/255)·√(C·H·W) over all C·H·W entries (≈ 1.304 for CIFAR).
5. Class c's training images, in dataset order, take the first n_c synthetic samples with label c;
   x̃ = clip(x + s), stored with truncation `floor(255·x̃)`, APBench's rule (`clip(x·255, 0, 255).astype(uint8)`)
   and therefore this attack's default `rounding="truncate"`, unlike the package-wide "round".

Deviations and package choices (stated):

- SEEDED: `random_state=seed`. APBench passes no random_state, so every run there gives another poison.
- Any image size: with `patch=None` the grid is always 4×4 and the patch is H // 4 (8 for 32×32,
  7 for 28×28 Fashion-MNIST); when a side is not a multiple of 4 the blocks are near-equal bands by
  integer division (as in `regions.band_edges`). An explicit `patch` must divide H and W (APBench uses
  32 for 224×224, a 7×7 grid; the 4×4 default would give 56).
- n_samples = K · max_c n_c, which is APBench's N for a class-balanced set (CIFAR) and guarantees
  enough samples of every class for an unbalanced one.
- The norm is computed in float64 on the block values weighted by block area (exact after upsampling)
  and the perturbation stored as float32: ‖δ_i‖₂ = eps up to float32 rounding, before clipping.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.datasets import make_classification

from ..checks import check_choice, check_count, check_rate, check_seed
from ..data import ImageSet
from .base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from .regions import band_edges, expand_grid
from .registry import register

_ATTACK = "lsp"


def lsp_grid(height: int, width: int, patch: int | None = None) -> tuple[int, int]:
    """The (rows, cols) of the patch grid: 4×4 when `patch` is None, else (H / patch, W / patch)."""
    if patch is None:
        if min(height, width) < 4:
            raise ValueError(f"{_ATTACK}: images of {height}x{width} are too small for a 4x4 patch grid")
        return 4, 4
    patch = check_count(patch, "patch", _ATTACK)
    if height % patch or width % patch:
        raise ValueError(f"{_ATTACK}: patch {patch} does not divide {height}x{width} images; "
                         "use patch=None for a 4x4 grid of near-equal blocks")
    return height // patch, width // patch


def lsp_blocks(
    labels: torch.Tensor, num_classes: int, shape: tuple[int, int, int], *, eps: float, seed: int,
    patch: int | None = None, class_sep: float = 10.0,
) -> torch.Tensor:
    """The sample-wise LSP δ as its patch grid: float32 blocks (N, C, gh, gw), each image's upsampled δ with L2
    norm `eps` (APBench's `lsp_poisons.py`, steps 1–5 of the module docstring). `expand_grid(blocks, H, W)`
    gives the dense δ; keeping the grid costs gh·gw/(H·W) of it (1/64 for CIFAR's 4×4 grid)."""
    c, h, w = shape
    gh, gw = lsp_grid(h, w, patch)
    d = gh * gw * c
    labels_np = labels.numpy()
    counts = np.bincount(labels_np, minlength=num_classes)
    n_samples = num_classes * int(counts.max())
    x, y = make_classification(
        n_samples=n_samples, n_features=d, n_informative=d, n_redundant=0, n_repeated=0,
        n_classes=num_classes, n_clusters_per_class=1, class_sep=class_sep, flip_y=0.0, random_state=seed,
    )
    feats = np.empty((len(labels_np), d), dtype=np.float64)
    for k in range(num_classes):
        dst = np.flatnonzero(labels_np == k)  # class k's images in dataset order
        feats[dst] = x[np.flatnonzero(y == k)[: len(dst)]]  # take the first n_k samples of label k
    blocks = feats.reshape(-1, gh, gw, c).transpose(0, 3, 1, 2)  # APBench's (grid, grid, C) order → (C, gh, gw)
    rows, cols = np.diff(band_edges(h, gh)), np.diff(band_edges(w, gw))
    area = np.outer(rows, cols)  # pixels per block
    norms = np.sqrt((blocks ** 2 * area).sum(axis=(1, 2, 3)))  # the L2 norm of the upsampled image
    scale = np.divide(eps, norms, out=np.zeros_like(norms), where=norms > 0)
    return torch.from_numpy(blocks * scale[:, None, None, None]).float()


@register(_ATTACK, "LSP: linearly separable class-clustered patch noise (Yu et al., KDD 2022; APBench settings)",
          "L2 (6/255)*sqrt(CHW) per image (1.304 for CIFAR)", recompute_delta=True)
def lsp(
    train_set: ImageSet,
    *,
    seed: int = 0,
    eps: float | None = None,
    patch: int | None = None,
    class_sep: float = 10.0,
    rounding: str = "truncate",
) -> Poison:
    """Poison `train_set` with LSP (Yu et al., KDD 2022; APBench settings, seeded).

    eps: the per-image L2 norm over all C·H·W values in [0, 1] units; None gives APBench's
    (6/255)·√(C·H·W) (≈ 1.304 for 3×32×32, ≈ 0.659 for 1×28×28; the value used is in `params["eps"]`).
    patch: block side (None: a 4×4 grid). class_sep: make_classification's cluster separation.
    rounding: "truncate" (reference, default) or "round".
    Returns a Poison with the sample-wise perturbation (N, C, H, W), built from the patch grid on first access
    (poisoning itself works in chunks: memory of the order of the uint8 data).
    """
    check_uint8_imageset(train_set, _ATTACK)
    if len(train_set) == 0:
        raise ValueError(f"{_ATTACK}: the training set is empty")
    seed = check_seed(seed, "seed", _ATTACK, bits=32)  # scikit-learn's random_state
    rounding = check_choice(rounding, "rounding", ("truncate", "round"), _ATTACK)
    class_sep = check_rate(class_sep, "class_sep", _ATTACK, lo=0.0, lo_open=True)
    shape = train_set.shape
    if eps is None:
        eps = 6 / 255 * math.sqrt(math.prod(shape))
    eps = check_eps(eps, "l2", _ATTACK, shape)
    blocks = lsp_blocks(train_set.labels, train_set.num_classes, shape, eps=eps, seed=int(seed), patch=patch,
                       class_sep=float(class_sep))

    def rows(start: int, stop: int) -> torch.Tensor:  # the dense δ of images start..stop-1, built per chunk
        return expand_grid(blocks[start:stop], shape[1], shape[2])

    grid = lsp_grid(shape[1], shape[2], patch)
    params = {"eps": eps, "patch": patch, "class_sep": float(class_sep), "rounding": rounding}
    info = {"grid": list(grid), "n_features": grid[0] * grid[1] * shape[0], "seeded": True}
    return poison_from_delta(_ATTACK, train_set, rows, params, int(seed), rounding=rounding, info=info,
                             classwise=False)
