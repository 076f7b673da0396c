"""Notebook 03 (D-VAE, rate-constrained VAEs): rows of images and signed perturbations, the rate-cap sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import _amplified, _show, to_display


def _display_row(name: str, images: torch.Tensor, signed: Sequence[str]) -> tuple[np.ndarray, str]:
    """One row of images for imshow and its label; a row named in `signed` is a perturbation, amplified around
    mid-gray with its factor in the label."""
    if name not in signed:
        return to_display(images), name
    shown, factor = _amplified(images.detach().float().cpu(), None)
    return to_display(shown), f"{name}\n×{factor:.3g}, gray = 0"


def signed_rows(rows: Mapping[str, torch.Tensor], signed: Sequence[str] = (),
                column_titles: Sequence[str] | None = None, title: str = "", cell: float | None = None) -> Figure:
    """Rows of the same images (N, C, H, W), one row per name; rows named in `signed` are perturbations.

    Image rows are uint8 or float in [0,1] and drawn as they are. A signed row is drawn around mid-gray (0 =
    no change), amplified so that its largest |value| reaches 0 or 1; the factor is in the row's label, so two
    rows with different factors are never mistaken for the same scale. `cell`: inches per image (default ~1.1;
    the D-VAE explorer uses less, to fit a laptop screen); column titles of two lines get their own room.
    """
    if not rows:
        raise ValueError("signed_rows needs at least one row, e.g. {'input': x}")
    shapes = {name: tuple(t.shape) for name, t in rows.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 4:
        raise ValueError(f"signed_rows: every row must hold the same (N, C, H, W) images, got {shapes}")
    unknown = set(signed) - set(rows)
    if unknown:
        raise ValueError(f"signed_rows: signed rows {sorted(unknown)} are not among the rows {list(rows)}")
    n, c = next(iter(shapes.values()))[:2]
    if column_titles is not None and len(column_titles) != n:
        raise ValueError(f"signed_rows: {len(column_titles)} column titles for {n} images")
    width, height = (1.05, 1.1) if cell is None else (cell, cell)
    lines = max((str(t).count("\n") + 1 for t in column_titles), default=1) if column_titles is not None else 0
    fig, axes = plt.subplots(len(rows), n, figsize=(n * width + 1.2, len(rows) * height + 0.4 + 0.12 * lines),
                             squeeze=False)
    for r, (name, t) in enumerate(rows.items()):
        imgs, label = _display_row(name, t, signed)
        for col in range(n):
            _show(axes[r, col], imgs[col], c)
            if r == 0 and column_titles is not None:
                axes[r, col].set_title(column_titles[col], fontsize=8 if lines < 2 else 7)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cap_sweep(caps: Sequence[float], psnr_db: Sequence[float], transfer: Sequence[float], accuracy: Sequence[float],
              clean_accuracy: float | None = None, poisoned_accuracy: float | None = None, title: str = "") -> Figure:
    """Three panels against the KL cap (log scale): PSNR of the clean content, perturbation transfer, judge accuracy.

    accuracy values are fractions (0..1), drawn in %; the clean and poisoned (no defense) accuracies are drawn as
    dashed reference lines when given.
    """
    caps = [float(c) for c in caps]
    series = {"PSNR(x̂, clean x) (dB)": psnr_db, "perturbation transfer": transfer, "accuracy": accuracy}
    bad = {k: len(v) for k, v in series.items() if len(v) != len(caps)}
    if not caps or bad:
        raise ValueError(f"cap_sweep needs one value per cap ({len(caps)} caps), got lengths {bad or 'no caps'}")
    if min(caps) <= 0:
        raise ValueError(f"cap_sweep: caps must be > 0 (drawn on a log axis), got {caps}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(caps, psnr_db, "o-")
    axes[0].set(ylabel="PSNR (dB)", title="(a) clean content kept")
    axes[1].plot(caps, transfer, "o-", color="C3")
    axes[1].axhline(1.0, color="gray", ls=":", lw=1)
    axes[1].axhline(0.0, color="gray", ls=":", lw=1)
    axes[1].set(ylabel="Σ⟨x̂(x+δ) − x̂(x), δ⟩ / Σ‖δ‖²", title="(b) perturbation passed through (1 = all)")
    axes[2].plot(caps, [100 * a for a in accuracy], "o-", color="C2", label="VAE reconstructions")
    if clean_accuracy is not None:
        axes[2].axhline(100 * clean_accuracy, color="k", ls="--", lw=1, label="clean training set")
    if poisoned_accuracy is not None:
        axes[2].axhline(100 * poisoned_accuracy, color="C3", ls="--", lw=1, label="poisoned, no defense")
    axes[2].set(ylabel="clean test accuracy (%)", title="(c) judge trained on the reconstructions", ylim=(0, 100))
    axes[2].legend(fontsize=7, loc="lower right")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("KL cap C (nats per latent position)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
