"""Overview figures: image grids and rows, learning curves, bar tables, accuracy heat maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..data import ImageSet
from ..training import History
from ._common import to_display


def image_grid(ds: ImageSet, per_class: int = 8, seed: int = 0, title: str | None = None) -> Figure:
    """A grid with one row per class and `per_class` random examples of it."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    k = ds.num_classes
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 0.9 + 0.4), squeeze=False)
    for row in range(k):
        idx = np.flatnonzero(labels == row)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        imgs = to_display(ds.images[np.asarray(pick, dtype=np.int64)]) if len(pick) else []
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(imgs):
                ax.imshow(imgs[col], cmap="gray" if ds.channels == 1 else None, vmin=0, vmax=1,
                          interpolation="nearest")
        axes[row, 0].set_ylabel(ds.classes[row], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or f"{ds.name}: {len(ds)} images, {ds.shape[0]}x{ds.shape[1]}x{ds.shape[2]}", fontsize=10)
    fig.tight_layout()
    return fig


def image_rows(sets: Mapping[str, ImageSet], n: int = 8, seed: int = 0, title: str | None = None) -> Figure:
    """The same `n` images (random indices, shared) from several versions of one dataset, one row per version.

    For before/after comparisons: original vs resized, clean vs poisoned vs purified. The sets must have
    the same length (they are versions of the same images); sizes and channel counts may differ.
    """
    if not sets:
        raise ValueError("image_rows needs at least one ImageSet, e.g. {'clean': ds}")
    lengths = {name: len(ds) for name, ds in sets.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"image_rows compares versions of the same images; lengths differ: {lengths}")
    size = next(iter(lengths.values()))
    if n < 1 or size < 1:
        raise ValueError(f"image_rows needs n >= 1 and non-empty sets, got n={n}, {size} images")
    pick = np.sort(np.random.default_rng(seed).choice(size, size=min(n, size), replace=False))
    figsize = (len(pick) * 1.0, len(sets) * 1.1 + 0.4)
    fig, axes = plt.subplots(len(sets), len(pick), figsize=figsize, squeeze=False)
    for row, (name, ds) in enumerate(sets.items()):
        imgs = to_display(ds.images[torch.as_tensor(pick)])
        for col in range(len(pick)):
            ax = axes[row, col]
            ax.imshow(imgs[col], cmap="gray" if ds.channels == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(ds.classes[int(ds.labels[pick[col]])], fontsize=8)
        c, h, w = ds.shape
        axes[row, 0].set_ylabel(f"{name}\n{c}x{h}x{w}", rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(histories: Mapping[str, History] | History, title: str = "", show_peak: bool = True) -> Figure:
    """Clean test accuracy and training loss per epoch, one line per run; the peak is marked."""
    if isinstance(histories, History):
        histories = {"run": histories}
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, h in histories.items():
        epochs = np.arange(1, h.epochs + 1)
        (line,) = ax_acc.plot(epochs, 100 * np.asarray(h.test_acc), marker="o", ms=3,
                              label=f"{label} (final {100 * h.final_acc:.1f}%, peak {100 * h.peak_acc:.1f}%)")
        if show_peak and h.epochs:
            ax_acc.plot([h.peak_epoch], [100 * h.peak_acc], marker="*", ms=12, color=line.get_color())
        ax_loss.plot(epochs, h.train_loss, marker="o", ms=3, color=line.get_color(), label=label)
    ax_acc.set(xlabel="epoch", ylabel="clean test accuracy (%)", ylim=(0, 100), title="test accuracy (* = peak)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_loss.set_yscale("log")
    ax_acc.legend(fontsize=8, loc="lower right")
    ax_acc.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_table(values: Mapping[str, float], ylabel: str = "clean test accuracy (%)", title: str = "",
              reference: Mapping[str, float] | None = None) -> Figure:
    """Bars of measured values (in %), with optional published values beside them."""
    names: Sequence[str] = list(values)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names)), 3.4))
    width = 0.4 if reference else 0.7
    ax.bar(x - (width / 2 if reference else 0), [values[n] for n in names], width, label="measured here")
    if reference:
        ax.bar(x + width / 2, [reference.get(n, np.nan) for n in names], width, label="paper", alpha=0.7)
        ax.legend(fontsize=8)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set(ylabel=ylabel, ylim=(0, 100), title=title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def accuracy_heatmap(values: Mapping[tuple[str, str], float], title: str = "",
                     clean: float | None = None) -> Figure:
    """Attack (rows) × defense (columns) heatmap of clean test accuracy in %, each cell annotated.

    `values` maps (attack, defense) to a percentage (NaN = not run); `clean`, if given, is drawn as the
    colour scale's top so that "recovered" reads the same in every figure.
    """
    rows = list(dict.fromkeys(a for a, _ in values))
    cols = list(dict.fromkeys(d for _, d in values))
    grid = np.full((len(rows), len(cols)), np.nan)
    for (a, d), v in values.items():
        grid[rows.index(a), cols.index(d)] = v
    fig, ax = plt.subplots(figsize=(1.3 + 1.15 * len(cols), 0.9 + 0.45 * len(rows)))
    top = clean if clean is not None else (np.nanmax(grid) if np.isfinite(grid).any() else 100.0)
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=max(top, 1e-6), aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = "-" if np.isnan(grid[i, j]) else f"{grid[i, j]:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="clean test accuracy (%)")
    fig.tight_layout()
    return fig
