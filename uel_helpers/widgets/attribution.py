"""The attribution explorer (notebook 06): a test image and its top-k training images by each attribution method."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data import ImageSet
from ..plots import render_attribution
from ._display import FIGURE_DPI, View, _ipywidgets, idle

if TYPE_CHECKING:
    import ipywidgets

ATTRIBUTION_TOP_MAX = 10  # training images beside the test image in the explorer (one row fits the picture)


def attribution_explorer(train_set: ImageSet, test_set: ImageSet, attributions, top: int = 8,
                         dpi: float = FIGURE_DPI) -> ipywidgets.VBox:
    """Browse attributions (notebook 06): pick a test image, a method and label conditioning; see the test image and
    its top-k training images with their scores (`plots.render_attribution`, into an `Image` widget).

    attributions: a sequence of `attribution.Attribution` (any methods, with and without label conditioning); the
    test images offered are those every attribution covers. The label-conditioning box is disabled for a method
    computed one way only (it then shows that way). Raises ValueError when there are none or they share no test
    image. Returns a VBox with `.controls` and `.redraw()`.
    """
    w = _ipywidgets()
    atts = list(attributions)
    if not atts:
        raise ValueError("attribution_explorer: attributions is empty; pass the results of attribution.attribute()")
    by_key = {(a.method, a.label_conditioning): a for a in atts}
    shared = set(atts[0].test_indices.tolist())
    for a in atts[1:]:
        shared &= set(a.test_indices.tolist())
    if not shared:
        raise ValueError("attribution_explorer: the attributions share no test image; compute them on the same "
                         "test_indices")
    tests = sorted(shared)
    methods = list(dict.fromkeys(a.method for a in atts))
    view = View(w, "attribution", dpi)

    def ways(method: str) -> list[bool]:
        return [c for c in (True, False) if (method, c) in by_key]

    test_pick = w.Dropdown(options=[(f"{j + 1} of {len(tests)} (test index {t}, "
                                     f"{test_set.classes[int(test_set.labels[t])]})", t) for j, t in enumerate(tests)],
                           value=tests[0], description="test image")
    method = w.Dropdown(options=methods, value=methods[0], description="method")
    conditioning = w.Checkbox(value=ways(methods[0])[0], description="label conditioning")
    k_max = min(a.k for a in atts)
    top_k = w.IntSlider(value=min(top, k_max, ATTRIBUTION_TOP_MAX), min=1, max=min(k_max, ATTRIBUTION_TOP_MAX),
                        description="top k", continuous_update=False)

    def draw() -> None:
        available = ways(method.value)
        if conditioning.value not in available:
            with view.setting():
                conditioning.value = available[0]
        conditioning.disabled = len(available) < 2
        for control in (test_pick, method, top_k):
            control.disabled = idle(control)
        att = by_key[(method.value, conditioning.value)]
        key = (method.value, conditioning.value, test_pick.value, top_k.value)
        if not view.show_cached(key):
            view.show(render_attribution(train_set, test_set, att, test_pick.value, top=top_k.value), key)
        only = "" if len(available) > 1 else " (the only way it was computed)"
        view.info.value = (f"<b>{method.value}</b>, label conditioning {'on' if conditioning.value else 'off'}{only}: "
                           f"test index {test_pick.value}, top {top_k.value} of k={att.k}")

    redraw = view.redraws(draw)
    for control in (test_pick, method, conditioning, top_k):
        control.observe(redraw, names="value")
    box = view.box([[test_pick, method], [conditioning, top_k]],
                   {"test": test_pick, "method": method, "conditioning": conditioning, "top": top_k}, redraw)
    redraw()
    return box
