"""What every explorer shares (`uel_helpers.widgets._display`) and the figure helpers the explorers lean on.

One behaviour per test: natural-size PNGs within the view's budget, the one image numbering, idle controls, the busy
mark, errors shown in the info line, coalesced redraws of changes sent by the browser, the text form of a saved
notebook; the D-VAE view's column titles do not overlap at 5-digit indices; the package layout keeps its old names.
"""

from __future__ import annotations

import ast
import asyncio
import time

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch

from uel_helpers import plots, widgets
from uel_helpers.widgets._display import (
    BUSY_HTML,
    COALESCE_S,
    PICTURE_MAX_PX,
    View,
    figure_png,
    idle,
    number,
    png_size,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_png_size_reads_the_header_and_rejects_other_bytes():
    fig = plt.figure(figsize=(2, 1))
    png, width, height = figure_png(fig, dpi=100)
    assert png_size(png) == (width, height)
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + bytes(30))


@pytest.mark.parametrize("size_in, fits_at_dpi", [((3.0, 2.0), True), ((30.0, 4.0), False), ((4.0, 20.0), False)])
def test_figure_png_keeps_the_picture_within_its_budget_and_closes_the_figure(size_in, fits_at_dpi):
    fig = plt.figure(figsize=size_in)
    fig.add_subplot().plot([0, 1], [0, 1])
    png, width, height = figure_png(fig, dpi=100)
    assert width <= PICTURE_MAX_PX[0] and height <= PICTURE_MAX_PX[1]
    if fits_at_dpi:  # drawn at the asked dpi: about figsize x dpi (tight bounding box)
        assert width >= 0.8 * size_in[0] * 100 and height >= 0.8 * size_in[1] * 100
    else:  # lowered just enough: one side at the budget's edge
        assert width >= 0.95 * PICTURE_MAX_PX[0] or height >= 0.95 * PICTURE_MAX_PX[1]
    assert not plt.fignum_exists(fig.number)


def test_images_are_named_one_way():
    assert number(1, 20, 10417) == "image 1 of 20 (dataset index 10417)"


@pytest.mark.parametrize("control, expected", [
    (ipywidgets.Dropdown(options=["a"]), True),
    (ipywidgets.Dropdown(options=["a", "b"]), False),
    (ipywidgets.IntSlider(min=1, max=1), True),
    (ipywidgets.IntSlider(min=1, max=2), False),
])
def test_idle_controls_are_those_with_one_choice(control, expected):
    assert idle(control) is expected


def _explorer(draw_log: list):
    """A minimal explorer over one slider: each draw records the slider's value and shows a tiny figure."""
    view = View(ipywidgets, "test", 100)
    slider = ipywidgets.IntSlider(value=1, min=1, max=9)
    marks = []

    def draw() -> None:
        marks.append(view.busy.value)
        draw_log.append(slider.value)
        fig = plt.figure(figsize=(1 + slider.value / 10, 1))
        view.show(fig, key=slider.value)

    redraw = view.redraws(draw)
    slider.observe(redraw, names="value")
    box = view.box([[slider]], {"image": slider}, redraw)
    redraw()
    return box, slider, marks


def test_busy_mark_is_set_during_a_redraw_and_cleared_after():
    log: list = []
    box, slider, marks = _explorer(log)
    slider.value = 2
    assert marks == [BUSY_HTML, BUSY_HTML] and box.controls["busy"].value == ""
    assert box.controls["picture"].width == str(png_size(bytes(box.controls["picture"].value))[0])
    assert box.controls["picture"].layout.align_self == "flex-start"  # natural size, not the output's width


def test_an_error_in_a_redraw_is_shown_in_the_info_line_and_raised():
    view = View(ipywidgets, "test", 100)

    def draw() -> None:
        raise RuntimeError("no such image")

    redraw = view.redraws(draw)
    with pytest.raises(RuntimeError):
        redraw()
    assert "RuntimeError: no such image" in view.info.value and view.busy.value == ""


def test_controls_set_by_the_explorer_itself_do_not_redraw():
    log: list = []
    box, slider, _ = _explorer(log)
    with box.view.setting():
        slider.value = 5
        slider.max = 6
    assert log == [1]


def test_changes_from_the_browser_are_coalesced_into_one_redraw_of_the_latest_values():
    log: list = []
    box, slider, _ = _explorer(log)

    async def held_key() -> None:
        for value in (2, 3, 4, 5):  # four key presses queued in the kernel, applied as the browser sends them
            slider.set_state({"value": value})
        assert log == [1] and box.controls["busy"].value == BUSY_HTML  # busy at once, drawn a moment later
        await asyncio.sleep(COALESCE_S * 4)
        assert log == [1, 5] and box.controls["busy"].value == ""
        slider.value = 6  # a change made in Python draws at once
        assert log == [1, 5, 6]

    asyncio.run(held_key())
    assert box.view.draws == 3


def test_a_python_change_cancels_a_pending_browser_redraw():
    log: list = []
    _, slider, _ = _explorer(log)

    async def run() -> None:
        slider.set_state({"value": 3})
        slider.value = 4
        await asyncio.sleep(COALESCE_S * 4)

    asyncio.run(run())
    assert log == [1, 4]


def test_without_a_kernel_an_explorer_reads_as_a_sentence():
    box, _, _ = _explorer([])
    assert repr(box) == "[test explorer: live widget; run the notebook to use it. Static figure: above.]"
    assert "uel-explorer-test" in box._dom_classes and "uel-control-image" in box.controls["image"]._dom_classes


def test_dvae_column_titles_do_not_overlap_at_five_digit_indices():
    x = torch.rand(6, 3, 16, 16)
    titles = [f"index {12000 + 1111 * i}\ncos {-0.99:+.2f}" for i in range(6)]
    fig = plots.signed_rows({"input": x, "δ": x - 0.5, "x̂": x, "p̂": x - 0.5, "x − p̂": x}, signed=("δ", "p̂"),
                            column_titles=titles, title="two\nlines", cell=widgets.dvae.DVAE_CELL_INCHES)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes[:6]]
    for left, right in zip(boxes, boxes[1:], strict=False):
        assert left.x1 < right.x0, f"column titles overlap: {left} and {right}"
    tops = [ax.get_window_extent(renderer) for ax in fig.axes[:6]]
    suptitle = fig._suptitle.get_window_extent(renderer)
    assert all(b.y1 < suptitle.y0 for b in boxes) and all(t.y1 <= b.y0 + 1 for t, b in zip(tops, boxes, strict=True))


def test_old_import_paths_still_work():
    from uel_helpers.plots import (  # noqa: F401
        demo_figure,
        figure_to_png,
        render_attribution,
        render_perturbation,
        render_prototype_path,
        signed_rows,
        to_display,
    )
    from uel_helpers.widgets import (  # noqa: F401
        attribution_explorer,
        dvae_explorer,
        dvae_panels,
        figure_png,
        perturbation_explorer,
        prototype_explorer,
        render_dvae_view,
        render_sharpen_view,
        sharpen_explorer,
        sharpen_panels,
    )

    assert set(widgets.EXPLORERS) == {"perturbation", "dvae", "sharpen", "attribution", "prototype", "inpainting",
                                      "jpeg"}
    assert all(callable(getattr(plots, name)) for name in plots.__all__)
    assert all(hasattr(widgets, name) for name in widgets.__all__)


KERNEL_SETUP = """
import matplotlib
matplotlib.use("Agg")
import time
import ipywidgets
import matplotlib.pyplot as plt
from uel_helpers.widgets._display import View
view = View(ipywidgets, "t", 100)
slider = ipywidgets.IntSlider(value=1, min=1, max=20)
log = []
def draw():
    log.append(slider.value)
    time.sleep(0.3)  # a slow figure: key presses pile up behind it
    view.show(plt.figure(figsize=(1, 1)))
slider.observe(view.redraws(draw), names="value")
print("COMM", slider.comm.comm_id)
"""


def _run(kc, code: str, timeout: float = 60) -> str:
    """Execute `code` in the kernel; its stdout."""
    msg_id = kc.execute(code)
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)


def test_a_kernel_coalesces_key_presses_sent_by_the_browser(tmp_path):
    """The path a browser's changes take: comm messages to a running ipykernel, several queued while one redraw runs.
    They must give one or two redraws, the last one of the latest value, not one redraw per key press."""
    jupyter_client = pytest.importorskip("jupyter_client")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        comm_id = _run(kc, KERNEL_SETUP).split("COMM ")[1].split()[0]
        for value in range(2, 8):  # six key presses, as the browser sends them
            kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
                "method": "update", "state": {"value": value}, "buffer_paths": []}}))
        time.sleep(2.5)
        log = ast.literal_eval(_run(kc, "print(slider.value, log, view.draws)").split(" ", 1)[1].rsplit(" ", 1)[0])
        assert log[-1] == 7 and 1 <= len(log) <= 2, f"redraws of {log} for 6 key presses"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_inpainting_explorer_needs_precomputed_views():
    with pytest.raises(TypeError, match="InpaintingViews"):
        widgets.inpainting_explorer({"SAT": None})


@pytest.mark.parametrize("protections, qualities, error", [
    ({}, (50,), TypeError),
    ({"x": "not a protection"}, (50,), TypeError),
    (None, (0, 50), ValueError),
    (None, (75.5,), TypeError),  # a quality is never rounded
    (None, (), ValueError),
])
def test_jpeg_explorer_rejects_bad_input(protections, qualities, error):
    from uel_helpers.editing import noise_control

    if protections is None:
        protections = noise_control(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), 8 / 255)
    with pytest.raises(error):
        widgets.jpeg_explorer(lambda x: x, lambda x: x, protections, qualities=qualities)
