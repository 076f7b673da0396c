"""Notebook 04 (CUDA, sharpening, the DCT low-pass): kernels, frequency responses, DCT spectra; the demo figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._common import _show, to_display
from .dvae import _display_row


def kernel_grid(kernels: Mapping[str, np.ndarray | torch.Tensor], title: str = "") -> Figure:
    """3x3 (or k x k) kernels as annotated heatmaps, one panel per name (e.g. CUDA's class kernels, SSK)."""
    if not kernels:
        raise ValueError("kernel_grid needs at least one kernel, e.g. {'class 0': k}")
    arrays = {name: np.asarray(torch.as_tensor(k, dtype=torch.float64)) for name, k in kernels.items()}
    bad = {name: a.shape for name, a in arrays.items() if a.ndim != 2}
    if bad:
        raise ValueError(f"kernel_grid expects 2-D kernels (one channel), got shapes {bad}")
    n = len(arrays)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.1 * rows + 0.3), squeeze=False)
    top = max(float(np.abs(a).max()) for a in arrays.values()) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, a) in zip(axes.flat, arrays.items(), strict=False):
        ax.imshow(a, cmap="RdBu_r", vmin=-top, vmax=top)
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(f"{name}\nsum {a.sum():.2f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def frequency_responses(kernels: Mapping[str, np.ndarray | torch.Tensor], size: int = 32, title: str = "") -> Figure:
    """|H(f)| of small 2-D kernels: the magnitude of their 2-D DFT on a size x size grid, centred (DC in the middle).

    A blur is bright in the middle and dark at the edges (it removes high frequencies); a sharpening kernel is
    the opposite. A product of two responses is the response of the two kernels applied one after the other.
    """
    if not kernels:
        raise ValueError("frequency_responses needs at least one kernel")
    if isinstance(size, bool) or not isinstance(size, int) or size < 3:
        raise ValueError(f"frequency_responses: size must be an int >= 3, got {size!r}")
    mags = {}
    for name, k in kernels.items():
        a = np.asarray(torch.as_tensor(k, dtype=torch.float64))
        if a.ndim != 2 or max(a.shape) > size:
            raise ValueError(f"frequency_responses: kernel {name!r} must be 2-D and at most {size} wide, got {a.shape}")
        mags[name] = np.fft.fftshift(np.abs(np.fft.fft2(a, s=(size, size))))
    top = max(float(m.max()) for m in mags.values())
    n = len(mags)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    im = None
    for ax, (name, m) in zip(axes.flat, mags.items(), strict=False):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=top)
        ax.set_title(f"{name}\nDC gain {m[size // 2, size // 2]:.2f}", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="|H(f)|")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def dct_spectra(images: Mapping[str, torch.Tensor], title: str = "") -> Figure:
    """Each named image (C, H, W, floats in [0,1]) above the log-magnitude of its orthonormal 2-D DCT (channel mean).

    Low frequencies are at the top-left of a DCT spectrum; a low-pass filter keeps only a top-left block.
    """
    from ..defenses.sharpen import dct2  # plots sit above defenses in the data flow

    if not images:
        raise ValueError("dct_spectra needs at least one image")
    fig, axes = plt.subplots(2, len(images), figsize=(2.4 * len(images), 5.0), squeeze=False)
    for col, (name, x) in enumerate(images.items()):
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"dct_spectra: {name!r} must be one image tensor (C, H, W), got "
                             f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
        x = x.detach().float().cpu()
        _show(axes[0, col], to_display(x[None])[0], x.shape[0])
        axes[0, col].set_title(f"{name}\n{x.shape[1]}x{x.shape[2]}", fontsize=8)
        spec = np.log10(dct2(x.double()).abs().mean(0).numpy() + 1e-4)
        axes[1, col].imshow(spec, cmap="magma", vmin=-4, vmax=max(1.0, float(spec.max())), interpolation="nearest")
        axes[1, col].set_xticks([])
        axes[1, col].set_yticks([])
    axes[1, 0].set_ylabel("log10 |DCT|", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def demo_figure(rows: Mapping[str, torch.Tensor], curves: Mapping[str, Sequence[float]],
                finals: Mapping[str, float], signed: Sequence[str] = (), title: str = "") -> Figure:
    """The demo's one-look figure: example images, per-epoch test accuracy of every run, the final numbers.

    rows: name -> (N, C, H, W) images (uint8, or float in [0,1]); a row named in `signed` is a perturbation,
    drawn around mid-gray and amplified (the factor is in its label). curves: run name -> clean test accuracy
    per epoch (fractions in [0,1]). finals: run name -> the number to print (fraction in [0,1]).
    Returns a Figure with three labelled panels: "examples", "test accuracy per epoch", "final accuracy".
    """
    if not rows or not curves:
        raise ValueError("demo_figure needs at least one image row and one accuracy curve")
    shapes = {tuple(t.shape) for t in rows.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ValueError(f"demo_figure: every image row must hold the same (N, C, H, W) images, got {shapes}")
    n, c = next(iter(shapes))[:2]
    fig = plt.figure(figsize=(max(11.0, 1.0 * n + 6.5), max(4.2, 1.0 * len(rows) + 1.4)))
    grid = fig.add_gridspec(len(rows), n + 6, wspace=0.15, hspace=0.15)
    for r, (name, t) in enumerate(rows.items()):
        imgs, label = _display_row(name, t, signed)
        for col in range(n):
            ax = fig.add_subplot(grid[r, col])
            _show(ax, imgs[col], c)
            if col == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col == 0:
                ax.set_title("examples", loc="left", fontsize=9)
    ax_acc = fig.add_subplot(grid[:, n + 1:n + 4])
    for name, acc in curves.items():
        epochs = np.arange(1, len(acc) + 1)
        ax_acc.plot(epochs, 100 * np.asarray(acc), marker="o", ms=2.5, label=name)
    ax_acc.set(xlabel="epoch", ylabel="clean test accuracy (%)", ylim=(0, 100), title="test accuracy per epoch")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    ax_tab = fig.add_subplot(grid[:, n + 4:])
    ax_tab.axis("off")
    ax_tab.set_title("final accuracy", fontsize=10)
    lines = [f"{name}: {100 * acc:.1f}%" for name, acc in finals.items()]
    ax_tab.text(0.02, 0.95, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace",
                transform=ax_tab.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.98, top=0.86 if title else 0.92, bottom=0.12)
    return fig
