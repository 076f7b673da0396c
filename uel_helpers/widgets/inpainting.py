"""The inpainting explorer (notebook 09): the inpainting optimiser's saved iterates, per image, mask position, mask
side and segmentation model (Sandoval-Segura, "Adversarially robust segmentation models learn perceptually-aligned
gradients", arXiv:2204.01099; the optimiser follows Santurkar et al., arXiv:1906.09453 §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._display import FIGURE_DPI, View, _ipywidgets, idle, number

if TYPE_CHECKING:
    import ipywidgets


def inpainting_explorer(views, dpi: float = FIGURE_DPI) -> ipywidgets.VBox:
    """Browse precomputed inpainting iterates: image (1-based), mask position, mask side, model and the optimiser's
    step (the saved iterates; the slider starts at the last). Each change redraws `segmentation.render_view`, the
    pure function a notebook calls for its static figure: corrupted | the fill after that step | original | target
    labels, with the PSNR inside the mask. Nothing is computed here: `views` comes from
    `segmentation.inpainting_views(models, scenes, ...)`. Raises TypeError for anything else. Returns a VBox with
    `.controls` and `.redraw()`.
    """
    from ..segmentation import InpaintingViews, render_view

    if not isinstance(views, InpaintingViews):
        raise TypeError("inpainting_explorer needs the InpaintingViews of segmentation.inpainting_views(models, "
                        f"scenes, ...), got {type(views).__name__}")
    w = _ipywidgets()
    n = len(views.originals)
    view = View(w, "inpainting", dpi)
    image = w.IntSlider(value=1, min=1, max=n, description="image", continuous_update=False)
    position = w.Dropdown(options=list(views.positions), value=views.positions[0], description="mask at")
    side = w.Dropdown(options=[(f"{s} px", s) for s in views.sides], value=views.sides[0], description="mask side")
    model = w.Dropdown(options=list(views.models), value=views.models[0], description="model")
    last = len(views.steps) - 1
    step = w.SelectionSlider(options=[(str(t), i) for i, t in enumerate(views.steps)], value=last,
                             description="step", continuous_update=False)

    def draw() -> None:
        for control in (image, position, side, model, step):
            control.disabled = idle(control)
        key = (image.value, position.value, side.value, model.value, step.value)
        if not view.show_cached(key):
            view.show(render_view(views, image.value - 1, position.value, side.value, model.value, step.value), key)
        view.info.value = (f"<b>{model.value}</b>: {number(image.value, n, image.value - 1)}, mask {position.value}, "
                           f"{side.value} px; step {views.steps[step.value]} of {views.steps[last]}")

    redraw = view.redraws(draw)
    for control in (image, position, side, model, step):
        control.observe(redraw, names="value")
    box = view.box([[image, position, side], [model, step]],
                   {"image": image, "position": position, "side": side, "model": model, "step": step}, redraw)
    redraw()
    return box
