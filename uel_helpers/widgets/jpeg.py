"""The JPEG explorer (notebook 08): one protected image at a time, its JPEG at a chosen quality, what JPEG changed next
to the protection itself, and the edits of the clean, protected and compressed image (Sandoval-Segura, Geiping &
Goldstein, "JPEG Compressed Images Can Bypass Protections Against AI Editing", arXiv:2304.02234)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._display import FIGURE_DPI, View, _ipywidgets, idle, number

if TYPE_CHECKING:
    import ipywidgets

JPEG_QUALITIES = (100, 95, 90, 85, 80, 75, 70, 65, 60, 50, 40, 30, 20, 10)  # the quality slider, high to low


def jpeg_explorer(encoder, editor, protections, qualities=JPEG_QUALITIES, proxy: bool = True,
                  dpi: float = FIGURE_DPI) -> ipywidgets.VBox:
    """Browse protected images through JPEG: protection (when several), image (1-based), JPEG quality. Each change
    computes `editing.jpeg_view(encoder, editor, protection, index, quality)` (one JPEG round trip, one encoder and
    one editor pass on three images; kept, so going back is instant) and draws it with `editing.render_jpeg_view`,
    the pure function a notebook calls for its static figure.

    encoder: float images -> latents (e.g. `proxy.encode_mean`); editor: images -> edited images (e.g.
    `ProxyEditor(proxy)`); protections: one `editing.Protection` or a dict name -> Protection (the same clean
    images); qualities: the slider's JPEG qualities (1..100); proxy: tag the figure as the small proxy VAE's.
    Raises TypeError/ValueError for no protections or qualities outside 1..100. Returns a VBox with `.controls` and
    `.redraw()`.
    """
    from ..editing import Protection, jpeg_view, render_jpeg_view
    from ..editing.inputs import check_quality

    if isinstance(protections, Protection):
        protections = {protections.label: protections}
    if not isinstance(protections, Mapping) or not protections \
            or not all(isinstance(p, Protection) for p in protections.values()):
        raise TypeError("jpeg_explorer needs an editing.Protection or a non-empty dict name -> Protection (e.g. "
                        "{'PhotoGuard': encoder_attack(...), 'noise': noise_control(...)})")
    qualities = [check_quality(q, "jpeg_explorer", "qualities") for q in qualities]  # ints in 1..100, never rounded
    if not qualities:
        raise ValueError("jpeg_explorer: qualities must hold at least one JPEG quality in 1..100, got none")
    w = _ipywidgets()
    names = list(protections)
    n = min(int(p.images.shape[0]) for p in protections.values())
    view = View(w, "jpeg", dpi)
    which = w.Dropdown(options=names, value=names[0], description="protection")
    image = w.IntSlider(value=1, min=1, max=n, description="image", continuous_update=False)
    quality = w.SelectionSlider(options=qualities, value=qualities[len(qualities) // 2], description="JPEG Q",
                                continuous_update=False)
    ratios: dict = {}

    def draw() -> None:
        for control in (which, image, quality):
            control.disabled = idle(control)
        key = (which.value, image.value, quality.value)
        if not view.show_cached(key):
            jv = jpeg_view(encoder, editor, protections[which.value], image.value - 1, quality.value)
            ratios[key] = jv.ratio
            view.show(render_jpeg_view(jv, proxy=proxy), key)
        view.info.value = (f"<b>{which.value}</b>: {number(image.value, n, image.value - 1)}, JPEG Q={quality.value}; "
                           f"latent-shift ratio {ratios[key]:.3f} (1 = protection kept, 0 = removed)")

    redraw = view.redraws(draw)
    for control in (which, image, quality):
        control.observe(redraw, names="value")
    box = view.box([[which, image], [quality]], {"protection": which, "image": image, "quality": quality}, redraw)
    redraw()
    return box
