"""OPS: the One-Pixel Shortcut (ICLR 2023, arXiv 2205.12141): one pixel per class, set to a colour corner.

For each class, the search picks the pixel position and the colour v ∈ {0,1}^C (8 RGB corners, 2 for
grayscale) that lie furthest from, and most consistently away from, that class's natural pixel
values; every image of the class then gets that one pixel painted v. A network learns the pixel.
Settings follow APBench's `pixel_search` with sparsity 1 (`lafeat/apbench:attack/ops_poisons.py@9a6fb91`):

    for class i = 0..K−1, in order:
        X ← the class's images in [0, 1];  for every position p = (r, c) and colour v:
            D ← |v − X[:, :, r, c]|  (all n_i·C entries);   score[p, v] ← mean(D) / std(D)
        pairs (p, v) chosen by earlier classes are excluded;  (p*, v*) ← argmax score
        every class-i image: pixel p* ← v*

Package choices (stated):

- Any number of classes (APBench handles only 10: `range(10)`); every class with images gets a
  distinct (position, colour) pair; more classes than pairs (H·W·2^C) is an error. Classes without
  images get no pair.
- Exact arithmetic: with D in units of 1/255, the sums T1 = Σ 255·D and T2 = Σ (255·D)² are integers, and
  mean/std = T1 / √(m·T2 − T1²) with m = n_i·C (std with ddof 0; the ratio's argmax is the same for
  ddof 1, a constant factor per class). Vectorised: per-position channel sums once, then all positions ×
  colours of a class at once.
- Degenerate scores, where APBench would divide by zero: std = 0 and mean > 0 (the pixel never varies
  and differs from v in every image: a perfect shortcut) scores +inf; D ≡ 0 (the pixel already is v in
  every image, nothing to learn) scores 0. Already-chosen pairs score −inf, so they can never be chosen
  again even when every score is 0 (APBench gives them 0).
- Ties are broken at random with `seed` (APBench's argmax takes the first pair). On natural colour
  images ties practically never happen, but on data with a constant background (Fashion-MNIST's black
  border) hundreds of pairs score +inf, and first-pair ties put every class in the top-left corner,
  within the judge's ±2-pixel crop of each other: measured on Fashion-MNIST-as-RGB (1,000/class,
  quick judge), first-pair ties left the judge at 86.9% against 87.4% clean. Colours are ordered as
  `itertools.product((0, 1), repeat=C)`.
- The chosen pixel is exactly 0 or 255 and every other byte is copied, so truncation (the reference's
  storage rule, `np.uint8(clip(x, 0, 1)·255)`) and rounding give the same bytes; the Poison records "truncate".
- The perturbation is not an additive budget attack, but it has an exact additive form: the Poison's
  perturbation is the sample-wise effective δ (N, C, H, W) float32, δ = v* − x at the chosen pixel and 0
  elsewhere (sparse; for plots, the linear-separability test and the orthogonal projection). It is the size
  of the float dataset.
  `info` has the class-wise table: `pixels` [(row, col)], `colours` [(0/1, …)], `scores`.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ..checks import check_seed
from ..data import ImageSet
from .base import Poison, check_uint8_imageset, poison_from_images
from .registry import register

_ATTACK = "ops"


def colour_corners(channels: int) -> np.ndarray:
    """The 2^C colours {0,1}^C as an int64 (2^C, C) array, in itertools.product order."""
    return np.array(list(itertools.product((0, 1), repeat=channels)), dtype=np.int64)


def _class_sums(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: image count, Σu and Σu² over its images (u the uint8 value), int64 (K, C·H·W).

    Exact integer sums; int32 squares (≤ 65025) summed over chunks of ≤ 1024 images cannot overflow.
    """
    flat = images.reshape(len(images), -1)
    s1 = torch.zeros(num_classes, flat.shape[1], dtype=torch.int64)
    s2 = torch.zeros_like(s1)
    counts = torch.bincount(labels, minlength=num_classes)
    for k in range(num_classes):
        idx = (labels == k).nonzero().squeeze(1)
        for start in range(0, len(idx), chunk):
            x = flat[idx[start:start + chunk]].to(torch.int32)
            s1[k] += x.sum(0, dtype=torch.int64)
            s2[k] += (x * x).sum(0, dtype=torch.int64)
    return counts.numpy(), s1.numpy(), s2.numpy()


def pixel_search(images: torch.Tensor, labels: torch.Tensor, num_classes: int, seed: int | None = 0) -> dict:
    """OPS's class-wise search (APBench's `pixel_search`, sparsity 1) on uint8 images (N, C, H, W).

    Exactly tied best pairs are drawn at random with `seed`; `seed=None` takes the first in (row, col,
    colour) order, as APBench's argmax does.

    Returns {"pixels": int64 (K, 2) (row, col), "colours": int64 (K, C) in {0, 1}, "scores": float64 (K,)};
    rows of classes without images are −1 / NaN.
    """
    n, c, h, w = images.shape
    positions = h * w
    colours = colour_corners(c)  # (V, C)
    nv = len(colours)
    counts, s1, s2 = _class_sums(images, labels, num_classes)
    if int((counts > 0).sum()) > positions * nv:
        raise ValueError(f"{_ATTACK}: {int((counts > 0).sum())} classes need distinct (pixel, colour) pairs "
                         f"but {h}x{w} images with {c} channel(s) have only {positions * nv}")
    pixels = np.full((num_classes, 2), -1, dtype=np.int64)
    chosen = np.full((num_classes, c), -1, dtype=np.int64)
    scores = np.full(num_classes, np.nan)
    used = np.zeros((positions, nv), dtype=bool)
    rng = None if seed is None else np.random.default_rng(seed)
    for k in range(num_classes):
        nk = int(counts[k])
        if nk == 0:
            continue
        u1 = s1[k].reshape(c, positions)  # Σ u        per channel and position
        u2 = s2[k].reshape(c, positions)  # Σ u²
        # 255·D = u where v_c = 0, 255 − u where v_c = 1; sums over the class's images and channels:
        t1 = u1.sum(0) + colours @ (nk * 255 - 2 * u1)  # (V, P) Σ 255·D
        t2 = u2.sum(0) + colours @ (nk * 65025 - 510 * u1)  # (V, P) Σ (255·D)²
        m = nk * c
        q = m * t2 - t1 * t1  # m²·255²·var(D) ≥ 0, exact
        t1f, qf = t1.astype(np.float64), q.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(q > 0, t1f / np.sqrt(qf), np.where(t1 > 0, np.inf, 0.0))
        score = score.T.copy()  # (P, V): position-major, so argmax ties go to (row, col, colour) order
        score[used] = -np.inf
        best = np.flatnonzero(score.ravel() == score.max())
        j = int(best[0] if rng is None else rng.choice(best))
        p, v = divmod(j, nv)
        used[p, v] = True
        pixels[k] = divmod(p, w)
        chosen[k] = colours[v]
        scores[k] = score[p, v]
    return {"pixels": pixels, "colours": chosen, "scores": scores}


@register(_ATTACK, "OPS: one class-wise pixel set to a colour corner (ICLR 2023; APBench pixel_search)",
          "L0 1 pixel per image (value unbounded)")
def ops(train_set: ImageSet, *, seed: int = 0) -> Poison:
    """Poison `train_set` with the One-Pixel Shortcut (arXiv 2205.12141; APBench's `pixel_search`): one pixel
    per image, class-wise.

    `seed` breaks exact ties between equally good pairs (see the module docstring). OPS replaces a pixel (it
    is not additive), so the Poison stores what the attack is, not a dense δ: `info` holds each class's pixel
    (row, col), colour (in {0, 1}^C) and score; `perturbation` is None and `classwise` True. The effective δ
    of any images is `poison.effective_perturbation(clean)`. Memory: one copy of the uint8 images.
    """
    check_uint8_imageset(train_set, _ATTACK)
    seed = check_seed(seed, "seed", _ATTACK, bits=32)  # numpy's default_rng breaks ties
    found = pixel_search(train_set.images, train_set.labels, train_set.num_classes, seed=int(seed))
    labels = train_set.labels
    pix = torch.from_numpy(found["pixels"])[labels]  # (N, 2); every image's class has a pair
    values = torch.from_numpy(found["colours"] * 255).to(torch.uint8)[labels]  # (N, C)
    rows, cols, idx = pix[:, 0], pix[:, 1], torch.arange(len(train_set))
    images = train_set.images.clone()  # the only dataset-sized allocation: OPS is a table, not a dense δ
    images[idx, :, rows, cols] = values
    nonempty = [k for k in range(train_set.num_classes) if found["pixels"][k, 0] >= 0]
    info = {
        "pixels": [found["pixels"][k].tolist() if k in nonempty else None for k in range(train_set.num_classes)],
        "colours": [found["colours"][k].tolist() if k in nonempty else None for k in range(train_set.num_classes)],
        "scores": [float(found["scores"][k]) if k in nonempty else None for k in range(train_set.num_classes)],
    }
    return poison_from_images(_ATTACK, train_set, images, {}, int(seed), perturbation=None, rounding="truncate",
                              info=info, classwise=True)
