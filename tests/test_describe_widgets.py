"""describe() numbers on hand-made poisons, the perturbation render functions, and the explorer widget."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.plots import render_perturbation, render_poison_grid
from uel_helpers.poisons import describe, format_table, poison_from_delta
from uel_helpers.widgets import perturbation_explorer

EPS = 8 / 255


def _gray_set(n_per_class: int = 10, classes: int = 4, channels: int = 3, size: int = 8) -> ImageSet:
    """Mid-gray images (no clipping, so δ survives exactly up to rounding)."""
    n = n_per_class * classes
    images = torch.full((n, channels, size, size), 128, dtype=torch.uint8)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return ImageSet(images, labels, [f"c{k}" for k in range(classes)], name="gray")


def _random_set(n: int = 240, classes: int = 4, channels: int = 1, size: int = 8, seed: int = 0) -> ImageSet:
    """Noise images with random labels: not linearly separable beyond memorisation."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g)
    return ImageSet(images, labels, [f"c{k}" for k in range(classes)], name="noise")


def _classwise(ds: ImageSet, eps: float = EPS, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    delta = torch.sign(torch.randn(ds.num_classes, *ds.shape, generator=g)) * eps
    return poison_from_delta("cw-test", ds, delta, {"eps": eps, "norm": "linf"}, seed, classwise=True)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_classwise_noise_is_linearly_separable_and_images_are_not():
    ds = _random_set()
    rows = describe({"cw": _classwise(ds)}, ds, max_samples=200, steps=30)
    (row,) = rows
    assert row["separability"] == 1.0 and row["separability_heldout"] == 1.0
    assert row["clean_separability_heldout"] < 0.6  # 4 classes, random labels: held-out near chance 0.25
    assert row["sep_samples"] <= 200
    assert row["budget"] == "eps=8/255 norm=linf" and row["params"] == {"eps": EPS, "norm": "linf"}


def test_linf_l2_l0_psnr_of_a_known_budget():
    ds = _gray_set()
    row = describe(_classwise(ds), ds, separability=False)[0]
    assert row["name"] == "cw-test" and "separability" not in row
    assert abs(row["linf_max"] - EPS) <= 0.5 / 255 + 1e-9
    assert abs(row["linf_mean"] - EPS) <= 0.5 / 255 + 1e-9
    d = 3 * 8 * 8
    assert row["l2"] == pytest.approx(8 / 255 * math.sqrt(d), rel=1e-6)
    assert row["l0_fraction"] == 1.0 and row["l0_pixels"] == 64.0 and row["changed_images"] == 1.0
    assert row["psnr"] == pytest.approx(20 * math.log10(255 / 8), abs=1e-6)


def test_tiny_noise_is_rounded_away_and_small_noise_has_high_psnr():
    ds = _gray_set()
    g = torch.Generator().manual_seed(1)
    tiny = poison_from_delta("tiny", ds, torch.full((len(ds), *ds.shape), 0.2 / 255), {"eps": 0.2 / 255}, 0,
                             classwise=False)
    one = poison_from_delta("one-step", ds, torch.sign(torch.randn(len(ds), *ds.shape, generator=g)) / 255,
                            {"eps": 1 / 255}, 0, classwise=False)
    rows = describe({"tiny": tiny, "one": one}, ds, separability=False)
    assert [r["name"] for r in rows] == ["tiny", "one"]
    assert rows[0]["psnr"] == math.inf and rows[0]["l2"] == 0 and rows[0]["changed_images"] == 0
    assert rows[1]["psnr"] == pytest.approx(20 * math.log10(255), abs=1e-6)  # 48.1 dB
    text = format_table(rows)
    assert "inf" in text and "PSNR" in text and "1/255" in text


def test_l0_of_a_one_pixel_change():
    ds = _gray_set(channels=3)
    delta = torch.zeros(len(ds), *ds.shape)
    delta[:, :, 3, 4] = 0.5
    row = describe(poison_from_delta("pixel", ds, delta, {"pixels": 1}, 0, classwise=False), ds, separability=False)[0]
    assert row["l0_pixels"] == 1.0
    assert row["l0_fraction"] == pytest.approx(3 / (3 * 64))
    assert row["linf_max"] == pytest.approx(127 / 255)  # 128 + 127.5 rounds to 255 (clipped at 1)
    assert row["budget"] == "pixels=1"


def test_repr_is_the_table_and_mismatch_raises():
    ds = synthetic_dataset(n_per_class=6, num_classes=3, channels=1, size=8)
    rows = describe(_classwise(ds), ds, max_samples=18, steps=5)
    assert repr(rows) == format_table(rows) and "linsep" in repr(rows) and "cw-test" in repr(rows)
    other = synthetic_dataset(n_per_class=6, num_classes=3, channels=1, size=8, seed=5)
    with pytest.raises(ValueError, match="does not match"):
        describe(_classwise(ds), other)
    with pytest.raises(ValueError):
        describe({}, ds)


@pytest.mark.parametrize("channels", [1, 3])
def test_render_functions_axes(channels):
    ds = synthetic_dataset(n_per_class=4, num_classes=3, channels=channels, size=8)
    p = _classwise(ds)
    assert len(render_poison_grid(ds, p, n=5).axes) == 15
    assert len(render_poison_grid(ds, p, n=50, amplify=10).axes) == 3 * len(ds)
    assert len(render_perturbation(ds, p, 2).axes) == 4
    assert len(render_perturbation(ds, p, 2, amplify=4.0, show_fft=False).axes) == 3
    with pytest.raises(ValueError, match="index"):
        render_perturbation(ds, p, len(ds))
    with pytest.raises(ValueError, match="amplify"):
        render_perturbation(ds, p, 0, amplify=-1)


def test_render_checks_the_clean_set():
    ds = synthetic_dataset(n_per_class=4, num_classes=3, channels=1, size=8)
    other = synthetic_dataset(n_per_class=4, num_classes=3, channels=1, size=8, seed=3)
    with pytest.raises(ValueError):
        render_poison_grid(other, _classwise(ds))


def test_explorer_builds_and_redraws_headless():
    ds = synthetic_dataset(n_per_class=5, num_classes=3, channels=3, size=8)
    zero = poison_from_delta("zero", ds, torch.zeros(len(ds), *ds.shape), {}, 0, classwise=False)
    box = perturbation_explorer(ds, {"cw": _classwise(ds), "zero": zero})
    c = box.controls
    first = bytes(c["picture"].value)  # bytes in ipywidgets 7, a memoryview in 8
    assert first.startswith(b"\x89PNG")
    assert (c["image"].min, c["image"].value, c["image"].max) == (1, 1, 5)  # numbered from 1 within the class
    c["image"].value = 4
    assert bytes(c["picture"].value) != first
    labels = ds.labels.numpy()
    assert f"image 4 of 5 (dataset index {int(np.flatnonzero(labels == 0)[3])})" in c["info"].value
    c["class"].value = 2
    assert c["image"].value == 1 and c["image"].max == 5
    assert f"image 1 of 5 (dataset index {int(np.flatnonzero(labels == 2)[0])})" in c["info"].value
    before = bytes(c["picture"].value)
    c["fft"].value = False
    assert bytes(c["picture"].value) != before
    # automatic amplification: the disabled slider shows the factor in use; turning it off keeps the picture
    assert c["amplify"].disabled and f"δ ×{c['amplify'].value:.3g} (auto)" in c["info"].value
    auto_factor, before = c["amplify"].value, bytes(c["picture"].value)
    c["auto"].value = False
    assert not c["amplify"].disabled and c["amplify"].value == auto_factor
    assert bytes(c["picture"].value) == before
    c["amplify"].value = 2 * auto_factor
    assert bytes(c["picture"].value) != before and "(set)" in c["info"].value
    c["attack"].value = "zero"
    assert "zero" in c["info"].value


def test_explorer_rejects_a_mismatched_clean_set():
    ds = synthetic_dataset(n_per_class=5, num_classes=3, channels=1, size=8)
    other = synthetic_dataset(n_per_class=5, num_classes=3, channels=1, size=8, seed=9)
    with pytest.raises(ValueError, match="does not match"):
        perturbation_explorer(other, {"cw": _classwise(ds)})
    with pytest.raises(ValueError):
        perturbation_explorer(ds, {})
