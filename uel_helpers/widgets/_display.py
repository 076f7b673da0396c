"""What every explorer shares: the picture at its natural size, the busy mark, coalesced redraws, the text form.

- The figure is rendered to PNG at `FIGURE_DPI` and shown at its natural size: an `Image` aligned to the start of
  its box with its width set to the PNG's (ipywidgets otherwise stretches it to the output's width and blurs it),
  rendered at a lower dpi when needed to keep the picture within `PICTURE_MAX_PX`, so that the whole view, controls
  and picture, fits `VIEW_MAX_PX` (a 1366 x 768 laptop screen): one sees a control and its effect together.
- A busy mark ("drawing...") is set when a redraw is asked for and cleared when it is done.
- Redraws do not queue: changes that come from the browser start one redraw after a short pause
  (`COALESCE_S`); every change that arrives before it runs (key presses held down, a redraw still running) joins
  it, and it draws the controls' latest values. Changes made in Python (`control.value = ...`) draw at once.
- Shown without a live kernel (a saved notebook, nbconvert, GitHub), the explorer reads as a sentence that says
  so instead of `VBox(children=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from ..plots import figure_to_png

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

FIGURE_DPI = 100                # PNG pixels per figure inch; shown 1:1 in CSS pixels
VIEW_MAX_PX = (1100, 700)       # an explorer's whole view (controls + picture), CSS px: a 1366 x 768 laptop screen
PICTURE_MAX_PX = (1060, 520)    # the picture's share: two rows of controls and the status line take ~120 px
BUSY_HTML = "<span style='color:#b35900'>&#x23F3; drawing&hellip;</span>"  # shown while a redraw runs
PNG_CACHE_SIZE = 48             # rendered views kept per explorer (going back to a view is then instant)
COALESCE_S = 0.05               # a change from the browser waits this long for the changes queued behind it


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - ipywidgets is a dependency
        raise ImportError(
            "the explorers need ipywidgets: pip install 'ipywidgets>=7.6,<9' (on Colab it is preinstalled; "
            "do not install ipywidgets 8 there, it breaks Colab's widgets)"
        ) from err
    return ipywidgets


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk; ValueError for bytes that are not a PNG."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG (expected bytes starting with the PNG signature)")
    return struct.unpack(">II", png[16:24])


def figure_png(fig: Figure, dpi: float = FIGURE_DPI, max_px: tuple[int, int] = PICTURE_MAX_PX
               ) -> tuple[bytes, int, int]:
    """(PNG bytes, width, height) of `fig` at `dpi`, or at the lower dpi that keeps it within `max_px`; closes `fig`.

    What the explorers show: at most `max_px` pixels, meant to be shown at 1 PNG pixel per CSS pixel.
    """
    try:
        png = figure_to_png(fig, dpi=dpi, close=False)
        width, height = png_size(png)
        scale = min(1.0, max_px[0] / width, max_px[1] / height)
        if scale < 1.0:  # the tight bounding box scales with the dpi; 1% below, for rounding
            png = figure_to_png(fig, dpi=dpi * scale * 0.99, close=False)
            width, height = png_size(png)
    finally:
        plt.close(fig)
    return png, width, height


def number(k: int, n: int, index: int) -> str:
    """The one way images are named: 'image k of n (dataset index i)', k 1-based, i the 0-based dataset index."""
    return f"image {k} of {n} (dataset index {index})"


def idle(control) -> bool:
    """True for a control with a single choice (a dropdown with one option, a slider with min == max)."""
    if hasattr(control, "options"):
        return len(control.options) < 2
    return control.min == control.max


def _from_browser(change) -> bool:
    """True for a change sent by the browser: ipywidgets (7 and 8) applies those under the widget's property lock."""
    owner = change.get("owner") if isinstance(change, dict) else None
    return bool(getattr(owner, "_property_lock", None))


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@functools.lru_cache(maxsize=2)
def _explorer_class(w):
    """A VBox whose text form (what a notebook shows without a live kernel) is a sentence, not its children."""

    class Explorer(w.VBox):
        kind = "explorer"

        def __repr__(self) -> str:  # ipywidgets 7 cuts the text form at 110 characters
            return f"[{self.kind} explorer: live widget; run the notebook to use it. Static figure: above.]"

    return Explorer


class View:
    """The parts every explorer shares: the picture (natural size), the busy mark, the info line, redraw plumbing.

    An explorer makes one (`View(ipywidgets, "kind", dpi)`), wraps its draw function with `redraws`, draws with
    `show`/`show_cached`, changes its own controls inside `with view.setting():` and assembles itself with `box`.
    """

    def __init__(self, w, kind: str, dpi: float):
        self.w, self.kind, self.dpi = w, kind, dpi
        self.picture = w.Image(format="png", layout=w.Layout(align_self="flex-start"))
        self.busy = w.HTML(value="", layout=w.Layout(width="8em", min_width="8em"))
        self.info = w.HTML(layout=w.Layout(align_self="center"))
        self.quiet = False  # True while the explorer sets its own controls (no redraw per change)
        self.draws = 0  # redraws done (each one draws the controls' values of the moment)
        self._scheduled = None  # the pending coalesced redraw (an asyncio TimerHandle), if any
        self._cache: OrderedDict = OrderedDict()

    def show(self, fig: Figure, key=None) -> None:
        """Put `fig` (closed here) into the picture at its natural size; `key` caches the PNG for that view."""
        png, width, _ = figure_png(fig, self.dpi)
        if key is not None:
            self._cache[key] = (png, width)
            while len(self._cache) > PNG_CACHE_SIZE:
                self._cache.popitem(last=False)
        self._set(png, width)

    def show_cached(self, key) -> bool:
        """Show the cached PNG of view `key`; False when it was not rendered yet."""
        hit = self._cache.get(key)
        if hit is None:
            return False
        self._cache.move_to_end(key)
        self._set(*hit)
        return True

    def _set(self, png: bytes, width: int) -> None:
        with self.picture.hold_sync():  # value and width reach the browser in one message
            self.picture.value = png
            self.picture.width = str(width)

    def redraws(self, draw: Callable[[], None]) -> Callable:
        """`draw` wrapped as a change handler: skipped while the explorer sets its own controls; the busy mark is
        set first and cleared after; a change from the browser is coalesced with those queued behind it (one draw
        of the latest values, `COALESCE_S` later); an error is shown in the info line (a callback's traceback would
        otherwise only reach the server's log) and raised."""

        def now() -> None:
            self._scheduled = None
            try:
                draw()
                self.draws += 1
            except Exception as err:
                self.info.value = f"<b style='color:#c00'>error: {type(err).__name__}: {err}</b>"
                raise
            finally:
                self.busy.value = ""

        def redraw(change=None) -> None:
            if self.quiet:
                return
            self.busy.value = BUSY_HTML
            loop = _running_loop() if _from_browser(change) else None
            if loop is None:  # a change made in Python (or no event loop): draw now
                if self._scheduled is not None:
                    self._scheduled.cancel()
                now()
            elif self._scheduled is None:
                self._scheduled = loop.call_later(COALESCE_S, now)

        return redraw

    @contextlib.contextmanager
    def setting(self):
        """Change controls without a redraw per change: `with view.setting(): slider.max = 4`."""
        self.quiet = True
        try:
            yield
        finally:
            self.quiet = False

    def box(self, rows: list[list], controls: dict, redraw: Callable) -> ipywidgets.VBox:
        """The explorer: rows of controls, the busy mark and info line, the picture; `.controls` (the widgets by
        name, with "picture", "info" and "busy"), `.redraw()`, `.kind` and `.view` attached."""
        w = self.w
        children = [w.HBox(row) for row in rows] + [w.HBox([self.busy, self.info]), self.picture]
        box = _explorer_class(w)(children, layout=w.Layout(max_width=f"{VIEW_MAX_PX[0]}px"))
        box.kind = self.kind
        box.add_class("uel-explorer")  # stable hooks for the browser test and for user CSS
        box.add_class(f"uel-explorer-{self.kind}")
        for name, control in controls.items():
            control.add_class(f"uel-control-{name}")
        self.picture.add_class("uel-picture")
        self.busy.add_class("uel-busy")
        self.info.add_class("uel-info")
        box.controls = {**controls, "picture": self.picture, "info": self.info, "busy": self.busy}
        box.redraw = redraw
        box.view = self
        return box
