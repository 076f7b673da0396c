"""render_prototypes, render_reconstructions, render_prototype_path and prototype_explorer on small generated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uel_helpers.data import synthetic_dataset
from uel_helpers.plots import render_prototype_path, render_prototypes, render_reconstructions
from uel_helpers.protonet import (
    decode_embeddings,
    embed_images,
    make_refinement_task,
    protonet_settings,
    prototype_accuracy,
    refinement_path,
    train_protonet,
)
from uel_helpers.widgets import prototype_explorer

TINY = protonet_settings("smoke").with_(epochs=1, steps_per_epoch=2, train_way=3, train_shot=2, train_query=2)


@pytest.fixture(scope="module")
def trained():
    ds = synthetic_dataset(n_per_class=10, num_classes=4, channels=1, size=16, seed=2)
    auto = train_protonet(ds, TINY, seed=0, device="cpu", quiet=True, cache=False)
    plain = train_protonet(ds, TINY.with_(lambda_r=0.0), seed=0, device="cpu", quiet=True, cache=False)
    tasks = [make_refinement_task(ds, way=3, shot=1, query=3, n_exemplars=2, bad_class=b, seed=b) for b in (0, 2)]
    return ds, auto, plain, tasks


def test_render_prototypes_layout_and_errors(trained):
    ds, auto, _, tasks = trained
    t = tasks[0]
    path = refinement_path(auto, t)
    fig = render_prototypes(t.support, path.decoded_prototypes, t.classes, optimised=path.decoded_prototypes)
    assert len(fig.axes) == 3 * 3
    assert fig.axes[0].get_ylabel() == t.classes[0] and fig.axes[2].get_title() == "Adam + TV"
    with pytest.raises(ValueError, match="3 classes in the episode, 2 class names"):
        render_prototypes(t.support, path.decoded_prototypes, t.classes[:2])
    with pytest.raises(ValueError, match="must describe the same"):
        render_prototypes(t.support, path.decoded_prototypes[:2], t.classes)


def test_render_reconstructions_titles_are_the_mse(trained):
    ds, auto, _, _ = trained
    x = ds.images[:4]
    r = decode_embeddings(auto, embed_images(auto, x))
    fig = render_reconstructions(x, r)
    mse = ((r - x.float() / 255) ** 2).mean((1, 2, 3))
    assert fig.axes[4].get_title() == f"{float(mse[0]):.4f}"
    with pytest.raises(ValueError, match="differ"):
        render_reconstructions(x[:3], r)


def test_render_prototype_path_marks_the_choice(trained):
    _, auto, _, tasks = trained
    t = tasks[0]
    p = refinement_path(auto, t)
    fig = render_prototype_path(t.support[0], p.decoded_prototypes[0], p.decoded_path, p.alphas, p.accuracy,
                                t.exemplars[0, 0], p.decoded_exemplar, chosen=7, class_name=t.classes[0])
    titles = [ax.get_title() for ax in fig.axes]
    assert f"α=0.7\n{100 * p.accuracy[7]:.0f}%" in titles
    assert "chosen α = 0.7" in fig.axes[-1].get_legend().texts[0].get_text()
    with pytest.raises(ValueError, match="11 alphas, 3 accuracies"):
        render_prototype_path(t.support[0], p.decoded_prototypes[0], p.decoded_path, p.alphas, p.accuracy[:3],
                              t.exemplars[0, 0], p.decoded_exemplar)


def test_prototype_explorer_slider_apply_and_reset(trained):
    _, auto, plain, tasks = trained
    box = prototype_explorer(auto, tasks)
    c = box.controls
    assert c["class"].value == tasks[0].bad_class and c["picture"].value[:4] == b"\x89PNG"
    path = refinement_path(auto, tasks[0])
    c["alpha"].value = 7
    assert f"α = 0.7: held-out accuracy <b>{100 * path.accuracy[7]:.1f}%</b>" in c["info"].value
    before = box.prototypes(0).clone()
    c["apply"].click()
    after = box.prototypes(0)
    assert torch.allclose(after[0], path.path[7], atol=1e-6) and torch.equal(after[1:], before[1:])
    assert c["alpha"].value == 0
    acc_now = prototype_accuracy(after, path.query_embeddings, path.query_labels)
    assert f"current prototypes {100 * acc_now:.1f}%" in c["info"].value
    c["reset"].click()
    assert torch.allclose(box.prototypes(0), before)
    c["episode"].value = 1
    assert c["class"].value == 2 and "poor exemplar" in dict((v, k) for k, v in c["class"].options)[2]
    np.testing.assert_equal(len(c["alpha"].options), 11)
    with pytest.raises(ValueError, match="no decoder"):
        prototype_explorer(plain, tasks)
    with pytest.raises(ValueError, match="tasks is empty"):
        prototype_explorer(auto, [])
