"""The sharpening explorer (notebook 04): one image through RSK/SSK sharpening and the DCT low-pass, with their
DCT spectra."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data import ImageSet
from ..plots import dct_spectra
from ._display import FIGURE_DPI, View, _ipywidgets, idle, number

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

def sharpen_panels(image: torch.Tensor, mode: str = "rsk", center: float = 2.5, percent: float = 30.0,
                   seed: int = 0) -> dict:
    """One image (C, H, W, [0,1]) through sharpening (`mode` "rsk"/"ssk") and the DCT low-pass: the three stages."""
    from ..defenses.sharpen import dct_lowpass, sharpen_filter

    if not isinstance(image, torch.Tensor) or image.ndim != 3 or not image.dtype.is_floating_point:
        raise ValueError("sharpen_panels: image must be one float tensor (C, H, W) in [0, 1]")
    gen = torch.Generator().manual_seed(seed)
    sharp = sharpen_filter(image[None], mode, center, None, generator=gen)[0]
    return {"input": image, f"{mode.upper()} (c={center:g})": sharp,
            f"+ DCT low-pass {percent:g}%": dct_lowpass(sharp[None], percent)[0]}


def render_sharpen_view(ds: ImageSet, index: int = 0, mode: str = "rsk", center: float = 2.5, percent: float = 30.0,
                        seed: int = 0) -> Figure:
    """The sharpening explorer's view as a static figure: image `index` (0-based dataset index) through `mode`
    sharpening (RSK drawn with `seed`; SSK ignores it) and the DCT low-pass, with the DCT spectra."""
    if not isinstance(ds, ImageSet) or len(ds) == 0:
        raise ValueError("render_sharpen_view needs a non-empty ImageSet (e.g. a CUDA-poisoned training set)")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(ds):
        raise ValueError(f"render_sharpen_view: index must be a dataset index in [0, {len(ds)}), got {index!r}")
    index = int(index)
    panels = sharpen_panels(ds.images[index].float() / 255, mode, center, percent, seed)
    kernel = f"RSK seed {seed}" if mode == "rsk" else mode.upper()
    return dct_spectra(panels, title=f"{number(index + 1, len(ds), index)}, "
                                     f"{ds.classes[int(ds.labels[index])]}: {kernel}")


def sharpen_explorer(ds: ImageSet, dpi: float = FIGURE_DPI) -> ipywidgets.VBox:
    """Browse one training image through RSK/SSK sharpening and the DCT low-pass, with their DCT spectra.

    Controls: image (1-based), sharpening kernel (random RSK, redrawn with the seed, or static SSK), centre c, the
    DCT percentage kept per side, and the RSK seed (disabled under SSK, which has none). Nothing is trained: this
    shows what the defense does to an image. Its first view is `render_sharpen_view(ds)`.
    """
    w = _ipywidgets()
    if not isinstance(ds, ImageSet) or len(ds) == 0:
        raise ValueError("sharpen_explorer needs a non-empty ImageSet (e.g. a CUDA-poisoned training set)")
    view = View(w, "sharpen", dpi)
    image = w.IntSlider(value=1, min=1, max=len(ds), description="image", continuous_update=False)
    mode = w.Dropdown(options=[("RSK (random)", "rsk"), ("SSK (static)", "ssk")], value="rsk", description="kernel")
    seed = w.IntSlider(value=0, min=0, max=99, description="RSK seed", continuous_update=False)
    center = w.FloatSlider(value=2.5, min=1.1, max=5.0, step=0.1, description="centre c", continuous_update=False)
    percent = w.FloatSlider(value=30.0, min=5.0, max=100.0, step=5.0, description="DCT kept %",
                            continuous_update=False)

    def draw() -> None:
        seed.disabled = mode.value != "rsk"
        image.disabled = idle(image)
        index = image.value - 1
        key = (index, mode.value, round(center.value, 6), round(percent.value, 6),
               seed.value if mode.value == "rsk" else None)
        if not view.show_cached(key):
            view.show(render_sharpen_view(ds, index, mode.value, center.value, percent.value, seed.value), key)
        view.info.value = (f"<b>{mode.value.upper()}</b> c = {center.value:.1f}, DCT block kept: {percent.value:.0f}% "
                           f"per side; {number(image.value, len(ds), index)}")

    redraw = view.redraws(draw)
    for control in (image, mode, seed, center, percent):
        control.observe(redraw, names="value")
    box = view.box([[image, mode, seed], [center, percent]],
                   {"image": image, "kernel": mode, "seed": seed, "center": center, "percent": percent}, redraw)
    redraw()
    return box
