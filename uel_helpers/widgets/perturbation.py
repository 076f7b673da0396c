"""The perturbation explorer (notebook 01): one training image at a time, clean, poisoned and the amplified
effective perturbation of several poisons, with its Fourier spectrum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..data import ImageSet
from ..plots import render_perturbation
from ..plots._common import _amplified
from ..poisons.base import Poison
from ._display import FIGURE_DPI, View, _ipywidgets, idle, number
from ._inputs import check_poisons, class_index

if TYPE_CHECKING:
    import ipywidgets

AMPLIFY_LOG2_RANGE = (-2, 8)  # the amplify slider: x0.25 .. x256 (an automatic factor is 0.5 .. 127.5 on uint8 data)


def perturbation_explorer(clean: ImageSet, poisons: Poison | Mapping[str, Poison], dpi: float = FIGURE_DPI
                          ) -> ipywidgets.VBox:
    """Browse the effective perturbations of several poisons, one training image at a time.

    Controls: attack, class, image within the class (1-based), the Fourier panel, and the amplification: automatic
    (the slider, disabled, shows the factor in use) or the slider's factor. Each change redraws
    `plots.render_perturbation(clean, poison, index, ...)`, the pure function a notebook calls for its static
    figure, into an `ipywidgets.Image`. Every poison is checked against `clean` once here; per-class index lists
    are precomputed, so a redraw costs one small figure. Returns a VBox with `.controls` and `.redraw()`.
    """
    w = _ipywidgets()
    poisons = check_poisons(clean, poisons, "perturbation_explorer")
    per_class, class_options, first_class = class_index(clean, "perturbation_explorer")
    view = View(w, "perturbation", dpi)

    attack = w.Dropdown(options=list(poisons), value=next(iter(poisons)), description="attack")
    klass = w.Dropdown(options=class_options, value=first_class, description="class")
    image = w.IntSlider(value=1, min=1, max=len(per_class[first_class]), step=1, description="image",
                        continuous_update=False)
    fft = w.Checkbox(value=True, description="Fourier panel")
    auto = w.Checkbox(value=True, description="auto amplify")
    lo, hi = AMPLIFY_LOG2_RANGE
    amplify = w.FloatLogSlider(value=16.0, base=2, min=lo, max=hi, step=0.25, description="amplify ×",
                               continuous_update=False, disabled=True, readout_format=".3g")

    def draw() -> None:
        members = per_class[klass.value]
        k = min(image.value, len(members))
        index = int(members[k - 1])
        poison = poisons[attack.value]
        delta = (poison.poisoned.images[index].float() - clean.images[index].float()) / 255.0
        factor = _amplified(delta, None)[1] if auto.value else float(amplify.value)
        if auto.value:
            with view.setting():  # the disabled slider shows the factor in use
                amplify.value = float(np.clip(factor, 2.0 ** lo, 2.0 ** hi))
        amplify.disabled = auto.value
        for control in (attack, klass, image):
            control.disabled = idle(control)
        key = (attack.value, index, None if auto.value else factor, fft.value)
        if not view.show_cached(key):
            view.show(render_perturbation(clean, poison, index, amplify=None if auto.value else factor,
                                          show_fft=fft.value, check=False), key)
        view.info.value = (f"<b>{attack.value}</b>: {number(k, len(members), index)} in class "
                           f"{clean.classes[klass.value]!s}; δ ×{factor:.3g} ({'auto' if auto.value else 'set'})")

    redraw = view.redraws(draw)

    def class_changed(change=None) -> None:
        with view.setting():  # changing the slider's range would redraw once more
            image.value = 1
            image.max = len(per_class[klass.value])
        redraw(change)

    klass.observe(class_changed, names="value")
    for control in (attack, image, fft, auto, amplify):
        control.observe(redraw, names="value")
    box = view.box([[attack, klass, image], [fft, auto, amplify]],
                   {"attack": attack, "class": klass, "image": image, "fft": fft, "auto": auto, "amplify": amplify},
                   redraw)
    redraw()
    return box
