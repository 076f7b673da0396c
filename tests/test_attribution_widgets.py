"""render_attribution, support_figure and attribution_explorer on small generated data."""

import pytest
import torch

from uel_helpers.attribution import attribute, random_attribution
from uel_helpers.data import synthetic_dataset
from uel_helpers.plots import render_attribution, support_figure
from uel_helpers.widgets import attribution_explorer


@pytest.fixture
def sets():
    tr = synthetic_dataset(n_per_class=12, num_classes=3, channels=1, size=8, seed=0)
    te = synthetic_dataset(n_per_class=2, num_classes=3, channels=1, size=8, seed=1)
    return tr, te


def _atts(tr, te, k=6):
    ftr, fte = tr.images.flatten(1).float(), te.images.flatten(1).float()
    return [attribute(ftr, tr.labels, fte, te.labels, "l2knn", k=k, test_indices=[0, 2, 4]),
            attribute(ftr, tr.labels, fte, te.labels, "l2knn", k=k, test_indices=[0, 2], label_conditioning=False),
            random_attribution(tr.labels, te.labels, k, test_indices=[0, 2, 4])]


def test_render_attribution_rows_and_titles(sets):
    tr, te = sets
    atts = _atts(tr, te)
    fig = render_attribution(tr, te, atts, 2, top=4)
    assert len(fig.axes) == 3 * 5
    assert fig.axes[0].get_ylabel() == "l2knn" and fig.axes[5].get_ylabel() == "l2knn (all classes)"
    first = atts[0].top(2, 1)[0]
    assert fig.axes[1].get_title().startswith(f"#1 · {first}\n")
    with pytest.raises(ValueError, match="test_index 4 was not attributed"):
        render_attribution(tr, te, atts, 4)
    with pytest.raises(ValueError, match="test_index: expected 0..5"):
        render_attribution(tr, te, atts[0], 6)


def test_support_figure_has_one_panel_per_kind():
    rows = [{"method": m, "kind": kind, "points": 5, "k": 10, "flipped": f, "flipped_frac": f / 5,
             "median_support": None if f == 0 else 4, "retrainings": 0, "seconds": 0.0}
            for kind in ("removal", "mislabel") for m, f in (("esvm", 3), ("random", 0))]
    fig = support_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["removal support", "mislabel support"]


def test_attribution_explorer_redraws_on_every_control(sets):
    tr, te = sets
    box = attribution_explorer(tr, te, _atts(tr, te))
    c = box.controls
    assert [v for _, v in c["test"].options] == [0, 2]  # the test images every attribution covers
    first = c["picture"].value
    assert first[:4] == b"\x89PNG"
    c["test"].value = 2
    assert c["picture"].value != first
    c["conditioning"].value = False
    assert "label conditioning off" in c["info"].value and not c["conditioning"].disabled
    c["method"].value = "random"  # computed with label conditioning only: the box shows that and is disabled
    assert c["conditioning"].value and c["conditioning"].disabled
    assert "label conditioning on (the only way it was computed)" in c["info"].value
    c["top"].value = 3
    assert "top 3 of k=6" in c["info"].value
    with pytest.raises(ValueError, match="attributions is empty"):
        attribution_explorer(tr, te, [])


def test_render_attribution_rejects_a_bad_top(sets):
    tr, te = sets
    with pytest.raises(ValueError, match="top: expected a positive int"):
        render_attribution(tr, te, _atts(tr, te)[0], 0, top=0)
    assert torch.is_tensor(_atts(tr, te)[0].indices)
