"""The inpainting explorer of notebook 09 (`uel_helpers.widgets.inpainting_explorer`) over precomputed iterates: its
first view is the pure render function's, images are numbered from 1, one-choice controls are disabled, the picture
is shown at its natural size, and moving a control redraws. Tiny sizes: seconds."""

from __future__ import annotations

import pytest
import torch

from uel_helpers import segmentation as seg
from uel_helpers.data import ImageSet

widgets = pytest.importorskip("uel_helpers.widgets")
pytest.importorskip("ipywidgets")
inpainting_explorer = getattr(widgets, "inpainting_explorer", None)
pytestmark = pytest.mark.skipif(inpainting_explorer is None,
                                reason="uel_helpers/widgets/inpainting.py not added yet (issue 20)")


@pytest.fixture(scope="module")
def views():
    imgs = torch.zeros(6, 1, 28, 28, dtype=torch.uint8)
    imgs[:3, :, 4:24, 4:24] = 255
    imgs[3:, :, 11:17, 2:26] = 255
    source = ImageSet(imgs, torch.tensor([0, 0, 0, 1, 1, 1]), ("square", "bar"), name="shapes")
    scenes = seg.make_scenes(source, 3, size=16, scale=(0.5, 0.8), seed=0)
    torch.manual_seed(0)
    net = seg.build_segmenter("unet-lite", 3, width=4, image_size=16).eval()
    return seg.inpainting_views({"standard": net, "SAT": net}, scenes, sides=(4,), positions=("centre", "top left"),
                                settings=seg.InpaintSettings(steps=4), saved=2, device="cpu")


def test_first_view_numbering_and_idle_controls(views):
    from uel_helpers.widgets import png_size

    box = inpainting_explorer(views)
    c = box.controls
    assert "image 1 of 3" in c["info"].value  # numbered from 1
    assert c["side"].disabled and not c["model"].disabled and not c["position"].disabled  # one side: nothing to pick
    assert c["step"].value == len(views.steps) - 1  # opens on the last saved iterate
    width, _ = png_size(c["picture"].value)
    assert c["picture"].width == str(width)  # natural size, not stretched
    assert "step" in c["info"].value.lower() or "steps" in c["info"].value


def test_moving_a_control_redraws(views):
    box = inpainting_explorer(views)
    before = box.controls["picture"].value
    box.controls["step"].value = 0
    assert box.controls["picture"].value != before
    box.controls["model"].value = "SAT"
    image = box.controls["image"]
    image.value = image.max if hasattr(image, "max") else image.options[-1][1]
    assert "image 3 of 3" in box.controls["info"].value


def test_bad_views_raise():
    with pytest.raises(TypeError, match="InpaintingViews"):
        inpainting_explorer({"not": "views"})
