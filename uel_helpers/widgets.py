"""ipywidgets explorers: thin layers over the pure render functions in `uel_helpers.plots`.

Core widgets only (Dropdown, IntSlider, FloatLogSlider, Checkbox, HTML, Image, HBox/VBox), with the API
common to ipywidgets 7.7 (Colab) and 8.x; figures are rendered to PNG bytes into an `Image` widget, which
works in Jupyter, Colab and headless runs. Notebooks call the render function once for a static figure,
then open the explorer (DESIGN.md, Widgets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .data import ImageSet
from .plots import figure_to_png, render_perturbation
from .poisons.base import Poison

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["perturbation_explorer"]


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - ipywidgets is a dependency
        raise ImportError(
            "the explorers need ipywidgets: pip install 'ipywidgets>=7.6,<9' (on Colab it is preinstalled; "
            "do not install ipywidgets 8 there, it breaks Colab's widgets)"
        ) from err
    return ipywidgets


def _check_poisons(clean: ImageSet, poisons: Poison | Mapping[str, Poison], who: str) -> dict[str, Poison]:
    """A dict name -> Poison, every poison checked against `clean` (clear ValueError on a mismatch)."""
    if isinstance(poisons, Poison):
        poisons = {poisons.attack: poisons}
    if not isinstance(poisons, Mapping) or not poisons:
        raise ValueError(f"{who} needs a non-empty dict name -> Poison, e.g. {{'ar': make_poison('ar', train)}}")
    if not isinstance(clean, ImageSet):
        raise TypeError(f"{who} needs the clean ImageSet the poisons were made from, got {type(clean).__name__}")
    out = {}
    for name, poison in poisons.items():
        if not isinstance(poison, Poison):
            raise TypeError(f"{who}: {name!r} is a {type(poison).__name__}, not a Poison")
        try:
            poison.check_matches(clean)
        except ValueError as err:
            raise ValueError(f"{who}: poison {name!r} does not match this clean set: {err}") from err
        out[str(name)] = poison
    return out


def perturbation_explorer(clean: ImageSet, poisons: Poison | Mapping[str, Poison], dpi: int = 80
                          ) -> ipywidgets.VBox:
    """Browse the effective perturbations of several poisons, one training image at a time.

    Controls: attack, class, image within the class, amplification (automatic or a factor) and the
    Fourier panel. Each change redraws `plots.render_perturbation(clean, poison, index, ...)` into an
    `ipywidgets.Image` (the figure is closed after rendering). Every poison is checked against `clean`
    once here; per-class index lists are precomputed, so a redraw costs one small figure.
    Returns a VBox; `.controls` (dict of the widgets) and `.redraw()` are attached for scripting and tests.
    """
    w = _ipywidgets()
    poisons = _check_poisons(clean, poisons, "perturbation_explorer")
    labels = clean.labels.numpy()
    per_class = {k: np.flatnonzero(labels == k) for k in range(clean.num_classes)}
    class_options = [(f"{k}: {clean.classes[k]} ({len(idx)})", k) for k, idx in per_class.items() if len(idx)]
    if not class_options:
        raise ValueError("perturbation_explorer needs a non-empty dataset")
    first_class = class_options[0][1]

    attack = w.Dropdown(options=list(poisons), value=next(iter(poisons)), description="attack")
    klass = w.Dropdown(options=class_options, value=first_class, description="class")
    image_idx = w.IntSlider(value=0, min=0, max=len(per_class[first_class]) - 1, step=1,
                            description="image", continuous_update=False)
    auto = w.Checkbox(value=True, description="auto amplify")
    amplify = w.FloatLogSlider(value=16.0, base=2, min=0, max=8, step=0.5, description="amplify ×",
                               continuous_update=False, disabled=True, readout_format=".3g")
    fft = w.Checkbox(value=True, description="Fourier panel")
    picture = w.Image(format="png")
    info = w.HTML()
    state = {"busy": False}

    def redraw(_change=None) -> None:
        """Render the selected image of the selected poison into the Image widget."""
        if state["busy"]:
            return
        amplify.disabled = auto.value
        members = per_class[klass.value]
        index = int(members[min(image_idx.value, len(members) - 1)])
        poison = poisons[attack.value]
        fig = render_perturbation(clean, poison, index, amplify=None if auto.value else float(amplify.value),
                                  show_fft=fft.value, check=False)
        picture.value = figure_to_png(fig, dpi=dpi)
        info.value = (f"<b>{attack.value}</b>: training image {index} "
                      f"({image_idx.value + 1} of {len(members)} in class {clean.classes[klass.value]!s})")

    def class_changed(_change=None) -> None:
        state["busy"] = True  # changing the slider range would redraw once more
        try:
            image_idx.value = 0
            image_idx.max = len(per_class[klass.value]) - 1
        finally:
            state["busy"] = False
        redraw()

    klass.observe(class_changed, names="value")
    for control in (attack, image_idx, auto, amplify, fft):
        control.observe(redraw, names="value")

    box = w.VBox([w.HBox([attack, klass]), w.HBox([image_idx, fft]), w.HBox([auto, amplify]), info, picture])
    box.controls = {"attack": attack, "class": klass, "image": image_idx, "auto": auto, "amplify": amplify,
                    "fft": fft, "picture": picture, "info": info}
    box.redraw = redraw
    redraw()
    return box
