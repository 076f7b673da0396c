"""AutoProtoNet (notebook 07): decoded prototypes, reconstructions and the refinement path."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import _show, to_display


def _float_images(images, what: str, ndim: int) -> torch.Tensor:
    """uint8 (0..255) or float images with `ndim` dims -> float in [0, 1] for display (decoder outputs, which are
    >= 0 but unbounded above, are clamped here, for display only)."""
    if not isinstance(images, torch.Tensor) or images.ndim != ndim:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what}: expected a tensor with {ndim} dims, got {got}")
    x = images.detach().cpu()
    return (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).clamp(0, 1)


def render_prototypes(support, decoded, classes: Sequence[str], optimised=None, title: str = "") -> Figure:
    """One row per class of a few-shot episode: its support images, the decoded prototype D(c_k) and, when given,
    the image found by optimisation (Adam + TV) for the same prototype (arXiv:2204.00929 §3, the prototype figure).

    support: (way, shot, C, H, W) uint8 or float in [0, 1]; decoded, optimised: (way, C, H, W) float (clamped to
    [0, 1] for display). Raises ValueError when the shapes disagree or `classes` has the wrong length."""
    s = _float_images(support, "support", 5)
    d = _float_images(decoded, "decoded", 4)
    o = None if optimised is None else _float_images(optimised, "optimised", 4)
    way, shot, c = s.shape[:3]
    if d.shape != (way, *s.shape[2:]) or (o is not None and o.shape != d.shape):
        raise ValueError(f"render_prototypes: support {tuple(s.shape)}, decoded {tuple(d.shape)} and optimised "
                         f"{None if o is None else tuple(o.shape)} must describe the same way x (C, H, W)")
    if len(classes) != way:
        raise ValueError(f"render_prototypes: {way} classes in the episode, {len(classes)} class names")
    cols = shot + 1 + (o is not None)
    fig, axes = plt.subplots(way, cols, figsize=(1.1 * cols + 0.8, 1.1 * way + 0.5), squeeze=False)
    for k in range(way):
        for j in range(shot):
            _show(axes[k, j], to_display(s[k, j][None])[0], c)
        _show(axes[k, shot], to_display(d[k][None])[0], c)
        if o is not None:
            _show(axes[k, shot + 1], to_display(o[k][None])[0], c)
        axes[k, 0].set_ylabel(str(classes[k]), fontsize=8, rotation=0, ha="right", va="center")
    axes[0, 0].set_title("support", fontsize=8, loc="left")
    axes[0, shot].set_title("decoded\nprototype", fontsize=8)
    if o is not None:
        axes[0, shot + 1].set_title("Adam + TV", fontsize=8)
    fig.suptitle(title or "support images and decoded class prototypes", fontsize=9)
    fig.tight_layout()
    return fig


def render_reconstructions(originals, reconstructions, title: str = "") -> Figure:
    """Two rows: images (N, C, H, W) and their reconstructions D(E(x)) (float, clamped to [0, 1] for display), with
    the per-image MSE on the reconstructions' titles. Raises ValueError when the shapes differ."""
    x = _float_images(originals, "originals", 4)
    r_raw = reconstructions.detach().cpu().float() if isinstance(reconstructions, torch.Tensor) else reconstructions
    r = _float_images(r_raw, "reconstructions", 4)
    if x.shape != r.shape:
        raise ValueError(f"render_reconstructions: originals {tuple(x.shape)} and reconstructions "
                         f"{tuple(r.shape)} differ")
    n, c = x.shape[:2]
    mse = ((r_raw - x) ** 2).mean((1, 2, 3))
    fig, axes = plt.subplots(2, n, figsize=(1.05 * n + 0.6, 2.6), squeeze=False)
    for i in range(n):
        _show(axes[0, i], to_display(x[i][None])[0], c)
        _show(axes[1, i], to_display(r[i][None])[0], c)
        axes[1, i].set_title(f"{float(mse[i]):.4f}", fontsize=7)
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("D(E(x))", fontsize=8)
    fig.suptitle(title or "reconstructions (MSE per image)", fontsize=9)
    fig.tight_layout()
    return fig


def render_prototype_path(support, decoded_prototype, decoded_path, alphas, accuracy, exemplar, decoded_exemplar,
                          chosen: int | None = None, class_name: str = "", title: str = "") -> Figure:
    """The refinement view (arXiv:2204.00929 §4, the case study): the class's support image(s), its decoded prototype,
    the exemplar x_new and its decoding; the decoded path p(alpha) = c + alpha (e - c); and the held-out query accuracy
    at each alpha (diagnostic: it uses the queries), the chosen alpha marked.

    support (shot, C, H, W); decoded_prototype, exemplar, decoded_exemplar (C, H, W); decoded_path (A, C, H, W);
    alphas, accuracy (A,) with accuracy in [0, 1]; chosen: an index into alphas or None.
    Raises ValueError for lengths that disagree or `chosen` out of range."""
    s = _float_images(support, "support", 4)
    path = _float_images(decoded_path, "decoded_path", 4)
    a, acc = np.asarray(alphas, dtype=float), np.asarray(accuracy, dtype=float)
    if not (len(a) == len(acc) == len(path)):
        raise ValueError(f"render_prototype_path: {len(a)} alphas, {len(acc)} accuracies, {len(path)} decoded images")
    if chosen is not None and not 0 <= int(chosen) < len(a):
        raise ValueError(f"chosen: expected an index in 0..{len(a) - 1}, got {chosen}")
    singles = [("support" if i == 0 else "", s[i]) for i in range(len(s))]
    singles += [("decoded\nprototype", _float_images(decoded_prototype, "decoded_prototype", 3)),
                ("exemplar\nx_new", _float_images(exemplar, "exemplar", 3)),
                ("decoded\nx_new", _float_images(decoded_exemplar, "decoded_exemplar", 3))]
    c = s.shape[1]
    cols = max(len(path), len(singles))
    fig = plt.figure(figsize=(max(7.0, 0.95 * cols + 0.6), 5.2))
    grid = fig.add_gridspec(3, cols, height_ratios=[1, 1, 1.5], hspace=0.55)
    for j, (label, img) in enumerate(singles):
        ax = fig.add_subplot(grid[0, j])
        _show(ax, to_display(img[None])[0], c)
        ax.set_title(label, fontsize=7)
    for j in range(len(path)):
        ax = fig.add_subplot(grid[1, j])
        _show(ax, to_display(path[j][None])[0], c)
        ax.set_title(f"α={a[j]:.2g}\n{100 * acc[j]:.0f}%", fontsize=7, fontweight="bold" if j == chosen else None,
                     color="tab:red" if j == chosen else "black")
        if j == chosen:
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(2)
    ax = fig.add_subplot(grid[2, :])
    ax.plot(a, 100 * acc, marker="o", ms=3)
    if chosen is not None:
        ax.plot([a[chosen]], [100 * acc[chosen]], "o", color="tab:red", ms=7, label=f"chosen α = {a[chosen]:.2g}")
        ax.legend(fontsize=7, loc="lower right")
    ax.set(xlabel="α (0 = old prototype, 1 = exemplar embedding)", ylabel="held-out query accuracy (%)",
           ylim=(0, 102))
    ax.grid(alpha=0.3)
    fig.suptitle(title or f"refining the prototype of {class_name or 'the class'} along the α path", fontsize=9)
    return fig
