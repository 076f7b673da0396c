"""Poisons (notebook 01): clean, poisoned and the amplified effective perturbation, with its spectrum."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..data import ImageSet
from ._common import _amplified, _show, to_display

if TYPE_CHECKING:
    from ..poisons.base import Poison


def _effective_delta(clean: ImageSet, poison: Poison, indices: np.ndarray, check: bool) -> torch.Tensor:
    """poisoned − clean of the chosen images, float in [0,1] units (what a victim trains on)."""
    if check:
        poison.check_matches(clean)
    elif clean.shape != poison.poisoned.shape or len(clean) != len(poison.poisoned):
        raise ValueError(f"poison {poison.attack!r} has {len(poison.poisoned)} images of shape "
                         f"{poison.poisoned.shape}, the clean set {len(clean)} of shape {clean.shape}")
    idx = torch.as_tensor(indices, dtype=torch.int64)
    return (poison.poisoned.images[idx].float() - clean.images[idx].float()) / 255.0


def render_poison_grid(clean: ImageSet, poison: Poison, n: int = 8, amplify: float | None = None,
                       seed: int = 0, check: bool = True) -> Figure:
    """Three rows for `n` random images: clean, poisoned, and the effective perturbation amplified.

    The perturbation row shows poisoned − clean (uint8, so clipping and rounding are included) around
    mid-gray 0.5 = no change; `amplify=None` scales so that the largest |δ| among the shown images
    reaches 0 or 1, a number multiplies δ by it. `check=False` skips the fingerprint check (widgets).
    """
    if n < 1 or len(clean) < 1:
        raise ValueError(f"render_poison_grid needs n >= 1 and a non-empty dataset, got n={n}, {len(clean)} images")
    pick = np.sort(np.random.default_rng(seed).choice(len(clean), size=min(n, len(clean)), replace=False))
    delta = _effective_delta(clean, poison, pick, check)
    shown, factor = _amplified(delta, amplify)
    rows = [to_display(clean.images[torch.as_tensor(pick)]), to_display(poison.poisoned.images[torch.as_tensor(pick)]),
            to_display(shown)]
    labels = ["clean", f"poisoned\n({poison.attack})", f"δ ×{factor:.3g}\n(gray = 0)"]
    fig, axes = plt.subplots(3, len(pick), figsize=(len(pick) * 1.0 + 0.6, 3 * 1.05 + 0.5), squeeze=False)
    for r in range(3):
        for col in range(len(pick)):
            _show(axes[r, col], rows[r][col], clean.channels)
        axes[r, 0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=8)
    for col, i in enumerate(pick):
        axes[0, col].set_title(clean.classes[int(clean.labels[i])], fontsize=8)
    linf = float(delta.abs().max()) * 255
    fig.suptitle(f"{poison.attack}: effective perturbation of the shown images, L∞ = {linf:.1f}/255", fontsize=10)
    fig.tight_layout()
    return fig


def render_perturbation(clean: ImageSet, poison: Poison, index: int, amplify: float | None = None,
                        show_fft: bool = True, check: bool = True) -> Figure:
    """One training image: clean, poisoned, amplified perturbation (mid-gray = 0) and its Fourier spectrum.

    The spectrum is log10 |FFT2(δ)| per channel, averaged over channels and centred (fftshift): noise
    spread over high frequencies (EM, TAP) looks flat, smooth or patterned noise (AR, regions) does not.
    Three panels with `show_fft=False`. `check=False` skips the fingerprint check (widgets).
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < len(clean):
        raise ValueError(f"index must be an int in [0, {len(clean)}), got {index!r}")
    index = int(index)
    delta = _effective_delta(clean, poison, np.array([index]), check)
    shown, factor = _amplified(delta, amplify)
    c = clean.channels
    panels = 4 if show_fft else 3
    fig, axes = plt.subplots(1, panels, figsize=(2.3 * panels, 2.7), squeeze=False)
    axes = axes[0]
    _show(axes[0], to_display(clean.images[index:index + 1])[0], c)
    axes[0].set_title(f"clean: {clean.classes[int(clean.labels[index])]}", fontsize=9)
    _show(axes[1], to_display(poison.poisoned.images[index:index + 1])[0], c)
    axes[1].set_title(f"poisoned ({poison.attack})", fontsize=9)
    _show(axes[2], to_display(shown)[0], c)
    axes[2].set_title(f"δ ×{factor:.3g} (gray = 0)", fontsize=9)
    if show_fft:
        d = delta[0].double().numpy()
        mag = np.abs(np.fft.fft2(d, axes=(-2, -1))).mean(axis=0)
        spec = np.log10(np.fft.fftshift(mag) + 1e-6)
        axes[3].imshow(spec, cmap="magma", vmin=min(float(spec.min()), float(spec.max()) - 1e-3),
                       interpolation="nearest")
        axes[3].set_xticks([])
        axes[3].set_yticks([])
        axes[3].set_title("log10 |FFT(δ)|, centred", fontsize=9)
    d = delta[0]
    fig.suptitle(f"dataset index {index}: L∞ = {float(d.abs().max()) * 255:.1f}/255, L2 = {float(d.norm()):.3f}, "
                 f"{int((d != 0).any(0).sum())} pixels changed", fontsize=9)
    fig.tight_layout()
    return fig
