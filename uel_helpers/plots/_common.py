"""What the figure modules share: images for imshow, one image on an axis, δ made visible, PNG bytes."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def to_display(images: torch.Tensor) -> np.ndarray:
    """uint8 or [0,1] float images (N, C, H, W) -> float arrays (N, H, W, C) or (N, H, W) for imshow."""
    x = images.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.permute(0, 2, 3, 1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def figure_to_png(fig: Figure, dpi: int = 100, close: bool = True) -> bytes:
    """Render a figure to PNG bytes (for ipywidgets.Image and files); closes it by default."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return buf.getvalue()


def _amplified(delta: torch.Tensor, amplify: float | None) -> tuple[torch.Tensor, float]:
    """Map δ to a displayable image around mid-gray 0.5: auto (max |δ| -> 0.5) or times `amplify`."""
    if amplify is None:
        peak = float(delta.abs().max()) if delta.numel() else 0.0
        factor = 0.5 / peak if peak > 0 else 1.0
    else:
        if isinstance(amplify, bool) or not isinstance(amplify, (int, float)) or not np.isfinite(amplify) \
                or amplify <= 0:
            raise ValueError(f"amplify must be a positive number (e.g. 16) or None for automatic, got {amplify!r}")
        factor = float(amplify)
    return (0.5 + factor * delta).clamp(0.0, 1.0), factor


def _show(ax, image: np.ndarray, channels: int) -> None:
    ax.imshow(image, cmap="gray" if channels == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
