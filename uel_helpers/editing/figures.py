"""The figures of notebook 08, as pure render functions (matplotlib figures; the explorer draws `render_jpeg_view`).

Every figure made with the proxy VAE says "proxy" in its title (`proxy=True`); the Stable Diffusion figures pass
`proxy=False`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .attack import Protection
from .inputs import as_unit, check_quality
from .jpeg import jpeg_images
from .metrics import Sweep, latents

__all__ = ["JPEGView", "jpeg_view", "render_edit_grid", "render_jpeg_sweep", "render_jpeg_view"]

CELL_INCHES = 1.45  # one image of a grid


def _show(ax, img: torch.Tensor, title: str = "") -> None:
    """One (C, H, W) float image in [0, 1] (gray or RGB) on `ax`, without ticks."""
    arr = img.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray" if arr.shape[-1] == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _tag(title: str, proxy: bool) -> str:
    return f"PROXY (small VAE, not Stable Diffusion): {title}" if proxy else title


def render_edit_grid(inputs: Mapping[str, torch.Tensor], edits: Mapping[str, torch.Tensor],
                     notes: Mapping[str, str] | None = None, indices: Sequence[int] = (0,), title: str = "",
                     proxy: bool = True):
    """Columns = versions of the same images (e.g. clean | protected | protected + JPEG Q), two rows per image: the
    input and its edit.

    inputs, edits: name -> uint8 or float [0, 1] images (N, C, H, W), the same names and shapes; notes: name -> a
    line under the column title (e.g. the latent-shift ratio); indices: which images (0-based) to show.
    Returns a matplotlib Figure. Raises ValueError when inputs and edits do not have the same names.
    """
    import matplotlib.pyplot as plt

    if list(inputs) != list(edits):
        raise ValueError(f"render_edit_grid: inputs {list(inputs)} and edits {list(edits)} must have the same names")
    x = {k: as_unit(v, f"inputs[{k!r}]", "render_edit_grid") for k, v in inputs.items()}
    e = {k: as_unit(v, f"edits[{k!r}]", "render_edit_grid") for k, v in edits.items()}
    notes = notes or {}
    cols, rows = len(x), 2 * len(indices)
    fig, axes = plt.subplots(rows, cols, figsize=(CELL_INCHES * cols, CELL_INCHES * rows + 0.6), squeeze=False)
    for r, i in enumerate(indices):
        for c, name in enumerate(x):
            head = name + (f"\n{notes[name]}" if name in notes else "") if r == 0 else ""
            _show(axes[2 * r, c], x[name][i], head)
            _show(axes[2 * r + 1, c], e[name][i])
        axes[2 * r, 0].set_ylabel(f"image {i + 1}\ninput", fontsize=8)
        axes[2 * r + 1, 0].set_ylabel("edit", fontsize=8)
    fig.suptitle(_tag(title or "inputs (top) and their edits (bottom)", proxy), fontsize=9)
    fig.tight_layout()
    return fig


def render_jpeg_sweep(sweep: Sweep, rows: Sequence[str] | None = None,
                      metrics: Sequence[str] = ("ratio", "edit_ssim"), title: str = "", proxy: bool = True):
    """One panel per metric against the JPEG quality (PNG = no JPEG at the left, then Q from high to low), one line
    per row of the sweep (mean over images). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    labels = {"ratio": "latent-shift ratio\n‖E(jpeg(x')) − E(x)‖ / ‖E(x') − E(x)‖",
              "latent_shift": "‖E(jpeg(x')) − E(x)‖", "edit_ssim": "SSIM(edit(jpeg(x')), edit(x))",
              "edit_psnr": "PSNR(edit(jpeg(x')), edit(x)) (dB)", "jpeg_linf": "‖jpeg(x') − x'‖∞",
              "jpeg_l2": "‖jpeg(x') − x'‖₂", "psnr_clean": "PSNR(jpeg(x'), x) (dB)"}
    rows = list(sweep.rows if rows is None else rows)
    ticks = ["PNG" if q is None else str(q) for q in sweep.qualities]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.3), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for r in rows:
            ys = [sweep.mean(m, r, q) for q in sweep.qualities]
            ax.plot(range(len(ticks)), ys, marker="o", ms=3, label=r, ls="--" if "noise" in r or r == "clean" else "-")
        ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
        ax.set_xlabel("JPEG quality (PIL)")
        ax.set_ylabel(labels.get(m, m), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(_tag(title or "what JPEG leaves of the protection", proxy), fontsize=9)
    fig.tight_layout()
    return fig


@dataclass
class JPEGView:
    """One image of the explorer: protected, its JPEG at `quality`, and the edits of clean, protected and compressed
    (float (C, H, W) in [0, 1]); ratio = ‖E(jpeg) − E(clean)‖ / ‖E(protected) − E(clean)‖."""

    clean: torch.Tensor
    protected: torch.Tensor
    compressed: torch.Tensor
    edit_clean: torch.Tensor
    edit_protected: torch.Tensor
    edit_compressed: torch.Tensor
    ratio: float
    quality: int
    eps: float
    index: int
    label: str


def jpeg_view(encoder, editor, protection: Protection, index: int, quality: int) -> JPEGView:
    """Compute the explorer's view of image `index` (0-based) of `protection` at JPEG `quality` (1..100).

    encoder: float images -> latents (e.g. `proxy.encode_mean`); editor: images -> edited float images (e.g.
    `ProxyEditor`). Raises ValueError for an index outside the protection or a quality outside 1..100."""
    quality = check_quality(quality, "jpeg_view")
    n = protection.images.shape[0]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise ValueError(f"jpeg_view: index must be an image index in [0, {n}), got {index!r}")
    i = int(index)
    clean, prot = protection.clean[i:i + 1], protection.images[i:i + 1]
    comp = jpeg_images(prot, quality)
    trio = torch.cat([clean, prot, comp])
    z = latents(encoder, trio)
    den = float((z[1] - z[0]).norm())
    ratio = float((z[2] - z[0]).norm()) / den if den > 0 else float("nan")
    ed = editor(trio, indices=[i] * 3) if _takes_indices(editor) else editor(trio)
    f = trio.float() / 255
    return JPEGView(f[0], f[1], f[2], ed[0], ed[1], ed[2], ratio, quality, protection.eps, i, protection.label)


def _takes_indices(editor) -> bool:
    import inspect

    try:
        return "indices" in inspect.signature(editor).parameters
    except (TypeError, ValueError):
        return False


def render_jpeg_view(view: JPEGView, proxy: bool = True):
    """The explorer's figure: top, protected | JPEG(Q) | (JPEG − protected) and (protected − clean), amplified so that
    ±ε spans black to white; bottom, the edits of clean | protected | JPEG(Q). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    amp = 1.0 / (2 * view.eps)
    fig, axes = plt.subplots(2, 4, figsize=(4 * CELL_INCHES + 0.4, 2 * CELL_INCHES + 0.9))
    _show(axes[0, 0], view.protected, "protected (PNG)")
    _show(axes[0, 1], view.compressed, f"JPEG Q={view.quality}")
    _show(axes[0, 2], (0.5 + amp * (view.compressed - view.protected)).clamp(0, 1), f"JPEG − protected\n×{amp:.3g}")
    _show(axes[0, 3], (0.5 + amp * (view.protected - view.clean)).clamp(0, 1), f"protected − clean\n×{amp:.3g}")
    _show(axes[1, 0], view.edit_clean, "edit of clean")
    _show(axes[1, 1], view.edit_protected, "edit of protected")
    _show(axes[1, 2], view.edit_compressed, f"edit of JPEG Q={view.quality}")
    axes[1, 3].axis("off")
    axes[1, 3].text(0.0, 0.5, f"latent-shift ratio\n{view.ratio:.3f}\n(1 = protection kept,\n0 = removed)",
                    fontsize=8, va="center")
    fig.suptitle(_tag(f"{view.label}, image {view.index + 1}, JPEG Q={view.quality}", proxy), fontsize=8)
    fig.tight_layout()
    return fig

