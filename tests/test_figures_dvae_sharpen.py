"""Figures and explorers of notebooks 03-05: signed rows, the cap sweep, kernels, frequency responses, DCT
spectra, the D-VAE explorer and the sharpening explorer (headless, tiny data)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from uel_helpers import plots
from uel_helpers.data import synthetic_dataset
from uel_helpers.defenses.dvae import train_dvae, train_vae
from uel_helpers.widgets import dvae_explorer, dvae_panels, sharpen_explorer, sharpen_panels


@pytest.fixture(autouse=True)
def _one_thread_and_close():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    plt.close("all")


def _sets():
    clean = synthetic_dataset(n_per_class=4, num_classes=3, channels=3, size=8, seed=0)
    delta = torch.randint(-6, 7, clean.images.shape, generator=torch.Generator().manual_seed(1))
    poisoned = clean.with_images((clean.images.int() + delta).clamp(0, 255).to(torch.uint8))
    return clean, poisoned


@pytest.fixture(scope="module")
def dvae_model():
    _, poisoned = _sets()
    return train_dvae(poisoned, 1.0, profile="smoke", width=4, latent_dim=4, epochs=1, quiet=True, device="cpu",
                      cache=False)


def test_signed_rows_labels_the_amplification_and_checks_shapes():
    x = torch.rand(4, 3, 8, 8)
    d = (torch.rand(4, 3, 8, 8) - 0.5) / 50
    fig = plots.signed_rows({"x": x, "δ": d}, signed=["δ"], column_titles=list("abcd"), title="t")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels[0] == "x" and labels[1].startswith("δ\n×") and "gray = 0" in labels[1]
    with pytest.raises(ValueError, match="same"):
        plots.signed_rows({"x": x, "y": x[:2]})
    with pytest.raises(ValueError, match="not among the rows"):
        plots.signed_rows({"x": x}, signed=["δ"])
    with pytest.raises(ValueError, match="column titles"):
        plots.signed_rows({"x": x}, column_titles=["a"])


def test_cap_sweep_draws_three_panels_and_checks_lengths():
    fig = plots.cap_sweep([0.5, 1, 4], [15, 18, 21], [0.2, 0.5, 0.9], [0.6, 0.5, 0.3], clean_accuracy=0.83,
                          poisoned_accuracy=0.19)
    assert len(fig.axes) == 3 and all(ax.get_xscale() == "log" for ax in fig.axes)
    assert list(fig.axes[2].lines[0].get_ydata()) == pytest.approx([60, 50, 30])
    with pytest.raises(ValueError, match="one value per cap"):
        plots.cap_sweep([1, 2], [1], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="> 0"):
        plots.cap_sweep([0, 2], [1, 2], [1, 2], [1, 2])


def test_kernel_grid_and_frequency_responses():
    blur = np.full((3, 3), 1 / 9)
    sharp = np.array([[0, -0.375, 0], [-0.375, 2.5, -0.375], [0, -0.375, 0]])
    fig = plots.kernel_grid({"blur": blur, "sharp": sharp})
    assert "sum 1.00" in fig.axes[0].get_title()
    fig = plots.frequency_responses({"blur": blur, "sharp": sharp}, size=16)
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    centre = 8
    assert images[0][centre, centre] == pytest.approx(1.0)  # a blur passes DC ...
    assert images[0][0, 0] < 0.2 < images[1][0, 0]  # ... and damps high frequencies; sharpening boosts them
    with pytest.raises(ValueError, match="2-D"):
        plots.kernel_grid({"bad": np.zeros((3, 3, 3))})
    with pytest.raises(ValueError, match="at most"):
        plots.frequency_responses({"big": np.zeros((20, 20))}, size=16)


def test_dct_spectra_and_sharpen_panels():
    x = torch.rand(3, 12, 12)
    panels = sharpen_panels(x, "ssk", 2.5, 30.0)
    shapes = [tuple(v.shape) for v in panels.values()]
    assert shapes == [(3, 12, 12), (3, 10, 10), (3, 10, 10)]
    fig = plots.dct_spectra(panels)
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="one image tensor"):
        plots.dct_spectra({"batch": torch.rand(2, 3, 8, 8)})
    with pytest.raises(ValueError, match="float tensor"):
        sharpen_panels(torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_sharpen_explorer_redraws_headless():
    ds = synthetic_dataset(n_per_class=2, num_classes=2, channels=3, size=12, seed=0)
    box = sharpen_explorer(ds)
    c = box.controls
    first = bytes(c["picture"].value)
    assert first.startswith(b"\x89PNG")
    c["percent"].value = 60.0
    assert bytes(c["picture"].value) != first and "60%" in c["info"].value
    assert not c["seed"].disabled
    c["kernel"].value = "ssk"
    assert "SSK" in c["info"].value and c["seed"].disabled  # SSK has no random kernel: the seed does nothing
    c["image"].value = 3  # numbered from 1: the dataset index is one less
    assert "image 3 of 4 (dataset index 2)" in c["info"].value


def test_dvae_panels_and_explorer(dvae_model):
    clean, poisoned = _sets()
    panels = dvae_panels(dvae_model, clean, poisoned, [0, 5])
    assert list(panels) == ["input (poisoned)", "x̂ (main decoder)", "p̂ (perturbation decoder)", "true δ",
                            "x − p̂ (stage-1 output)"]
    torch.testing.assert_close(panels["true δ"], (poisoned.images[[0, 5]].float() - clean.images[[0, 5]].float()) / 255)
    box = dvae_explorer({"p": dvae_model}, clean, {"p": poisoned}, n=3)
    c = box.controls
    first = bytes(c["picture"].value)
    c["class"].value = 2
    assert c["first"].value == 1 and c["first"].max == 2 and bytes(c["picture"].value) != first  # numbered from 1
    assert "mean cosine" in c["info"].value
    with pytest.raises(ValueError, match="indices"):
        dvae_panels(dvae_model, clean, poisoned, [99])
    with pytest.raises(ValueError, match="same poison names"):
        dvae_explorer({"p": dvae_model}, clean, {"q": poisoned})
    vae = train_vae(poisoned, 1.0, profile="smoke", width=4, latent_dim=4, epochs=1, quiet=True, device="cpu",
                    cache=False)
    with pytest.raises(TypeError, match="DVAE"):
        dvae_panels(vae, clean, poisoned, [0])
