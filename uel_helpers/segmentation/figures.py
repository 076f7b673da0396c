"""Figures of notebook 09 as pure functions returning matplotlib figures: scenes with their label maps, robustness
bars, input-gradient maps, inpainting grids, and the explorer's view of one saved iterate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .data import IGNORE


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: PASCAL VOC's label colour map (bit-interleaved class index), class 0 black."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for k in range(n):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[k] = (r, g, b)
    return cmap


def colour_labels(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Label maps (..., H, W) as RGB (..., H, W, 3) uint8; ignored pixels (255) white."""
    lab = labels.long().numpy()
    out = palette(num_classes)[np.clip(lab, 0, num_classes - 1)]
    out[lab == IGNORE] = 255
    return out


def _rgb(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).numpy()


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _mask_box(ax, mask: torch.Tensor, colour: str = "yellow") -> None:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys):
        y0, x0 = int(ys.min()), int(xs.min())
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1, fill=False,
                               edgecolor=colour, linewidth=1.2))


def _legend(fig: Figure, classes: Sequence[str]) -> None:
    cols = palette(len(classes)) / 255
    fig.legend(handles=[Patch(color=cols[k], label=name) for k, name in enumerate(classes)], loc="lower center",
               ncol=min(len(classes), 6), fontsize=8, frameon=False)


def render_scenes(scenes, n: int = 8, title: str = "") -> Figure:
    """The first `n` scenes (top) and their label maps (bottom), with the class colours."""
    n = min(n, len(scenes))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.3), squeeze=False)
    maps = colour_labels(scenes.labels[:n], scenes.num_classes)
    for i in range(n):
        axes[0, i].imshow(_rgb(scenes.images[i].float() / 255), interpolation="nearest")
        axes[1, i].imshow(maps[i], interpolation="nearest")
        axes[0, i].set_title(f"#{i + 1}", fontsize=8)
        _off(axes[0, i])
        _off(axes[1, i])
    _legend(fig, scenes.classes)
    fig.suptitle(title or f"{scenes.name}: images and label maps")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def render_robustness(table: Mapping[str, Mapping], metric: str = "miou", title: str = "") -> Figure:
    """Grouped bars: `metric` (miou, macc or allacc, in %) per attack for every model of `robustness_table`."""
    models = list(table)
    attacks = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(attacks), 3.2))
    width = 0.8 / len(models)
    for j, name in enumerate(models):
        vals = [100 * getattr(table[name][a], metric) for a in attacks]
        bars = ax.bar(np.arange(len(attacks)) + (j - (len(models) - 1) / 2) * width, vals, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(np.arange(len(attacks)), attacks)
    ax.set_ylabel({"miou": "mIoU (%)", "macc": "mean class accuracy (%)", "allacc": "pixel accuracy (%)"}[metric])
    ax.set_title(title or "robustness: eps = 0.03 (L-inf, [0, 1] pixels)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gradient_image(g: torch.Tensor) -> np.ndarray:
    """A signed gradient (C, H, W) for display: scaled by 3 standard deviations per image, 0 -> grey."""
    return _rgb(0.5 + 0.5 * (g / (3 * g.std().clamp_min(1e-12))).clamp(-1, 1))


def render_gradients(images: torch.Tensor, grads: Mapping[str, torch.Tensor], title: str = "") -> Figure:
    """Columns: images; rows: the image, then each model's input gradient (signed, scaled per image)."""
    n = images.shape[0]
    fig, axes = plt.subplots(1 + len(grads), n, figsize=(1.3 * n, 1.35 * (1 + len(grads))), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(_rgb(images[i]), interpolation="nearest")
        for r, (name, g) in enumerate(grads.items(), 1):
            axes[r, i].imshow(gradient_image(g[i]), interpolation="nearest")
            if i == 0:
                axes[r, i].set_ylabel(name, fontsize=8)
        if i == 0:
            axes[0, i].set_ylabel("image", fontsize=8)
        for r in range(1 + len(grads)):
            _off(axes[r, i])
    fig.suptitle(title or "input gradients of the per-pixel loss")
    fig.tight_layout()
    return fig


def render_inpainting(originals: torch.Tensor, corrupted: torch.Tensor, fills: Mapping[str, torch.Tensor],
                      mask: torch.Tensor, title: str = "", scores: Mapping[str, Sequence[float]] | None = None
                      ) -> Figure:
    """Rows: images; columns: corrupted | original | each model's fill (mask outlined). `scores`: optional
    per-model per-image numbers (e.g. PSNR) printed under the fills."""
    n = originals.shape[0]
    cols = ["corrupted", "original", *fills]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.45 * len(cols), 1.45 * n + 0.4), squeeze=False)
    for i in range(n):
        shown = [corrupted[i], originals[i], *(f[i] for f in fills.values())]
        for j, img in enumerate(shown):
            ax = axes[i, j]
            ax.imshow(_rgb(img), interpolation="nearest")
            _mask_box(ax, mask[i])
            _off(ax)
            if i == 0:
                ax.set_title(cols[j], fontsize=8)
            if scores is not None and j >= 2:
                ax.set_xlabel(f"{scores[cols[j]][i]:.1f}", fontsize=7)
    fig.suptitle(title or "inpainting by optimisation (identical optimiser and budget)")
    fig.tight_layout()
    return fig


def render_inpainting_view(original: torch.Tensor, corrupted: torch.Tensor, iterate: torch.Tensor,
                           mask: torch.Tensor, target: torch.Tensor, num_classes: int, step: int, model: str,
                           psnr_db: float | None = None) -> Figure:
    """One explorer view: corrupted | the fill after `step` steps | original | target label map."""
    fig, axes = plt.subplots(1, 4, figsize=(7.2, 2.2))
    panels = [(_rgb(corrupted), "corrupted"), (_rgb(iterate), f"{model}, step {step}"), (_rgb(original), "original"),
              (colour_labels(target[None], num_classes)[0], "target labels")]
    for ax, (img, name) in zip(axes, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        _mask_box(ax, mask)
        _off(ax)
    if psnr_db is not None:
        axes[1].set_xlabel(f"PSNR in the mask {psnr_db:.1f} dB", fontsize=8)
    fig.tight_layout()
    return fig
