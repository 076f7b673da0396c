"""ipywidgets explorers: thin layers over pure render functions (`uel_helpers.plots` and the `render_*_view`
functions here), one module per explorer.

Core widgets only (Dropdown, IntSlider, FloatLogSlider, Checkbox, Button, HTML, Image, HBox/VBox), with the API
common to ipywidgets 7.7 (Colab) and 8.x. What every explorer shares lives in `_display` (`View`):

- the figure is shown at its natural size (not stretched to the output's width) and the whole view, controls and
  picture, fits `VIEW_MAX_PX` (a 1366 x 768 laptop screen): one sees a control and its effect together;
- a busy mark ("drawing...") is set at the start of every redraw; changes from the browser that arrive while a
  redraw is pending or running are coalesced into one redraw of the latest values;
- a control that would do nothing is disabled (a one-option dropdown, a one-value slider, the RSK seed under SSK);
- images are numbered one way everywhere: "image k of N" (1-based, within the class or set shown) and the dataset
  index (0-based, as in `ds.images[i]`) beside it;
- shown without a live kernel (a saved notebook, nbconvert, GitHub), an explorer reads as a sentence that says so
  instead of `VBox(children=...)`; notebooks call the pure render function once before opening an explorer, so an
  executed notebook shows its first view as a static figure.

Every explorer returns its box with `.controls` (dict of the widgets), `.redraw()` and `.kind` attached.
"""

from __future__ import annotations

from collections.abc import Callable

from ._display import BUSY_HTML, FIGURE_DPI, PICTURE_MAX_PX, VIEW_MAX_PX, figure_png, png_size
from .attribution import attribution_explorer
from .dvae import dvae_explorer, dvae_panels, render_dvae_view
from .inpainting import inpainting_explorer
from .jpeg import jpeg_explorer
from .perturbation import perturbation_explorer
from .prototype import prototype_explorer
from .sharpen import render_sharpen_view, sharpen_explorer, sharpen_panels

__all__ = ["perturbation_explorer", "dvae_explorer", "dvae_panels", "render_dvae_view", "sharpen_explorer",
           "sharpen_panels", "render_sharpen_view", "attribution_explorer", "prototype_explorer", "inpainting_explorer",
           "jpeg_explorer", "figure_png", "png_size", "EXPLORERS", "FIGURE_DPI", "PICTURE_MAX_PX", "VIEW_MAX_PX",
           "BUSY_HTML"]

# Every explorer, by name: the browser test and the ipywidgets-7.7.1 test build each of them on smoke data, and fail
# when one is added here without a smoke case (tests/explorer_cases.py).
EXPLORERS: dict[str, Callable] = {
    "perturbation": perturbation_explorer,
    "dvae": dvae_explorer,
    "sharpen": sharpen_explorer,
    "attribution": attribution_explorer,
    "prototype": prototype_explorer,
    "inpainting": inpainting_explorer,
    "jpeg": jpeg_explorer,
}
