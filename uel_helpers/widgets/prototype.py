"""The prototype explorer (notebook 07): see an AutoProtoNet's decoded prototypes and move one along a path towards
a chosen exemplar (Sandoval-Segura and Lawson, "AutoProtoNet: Interpretability for Prototypical Networks",
arXiv:2204.00929, §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..plots import render_prototype_path
from ._display import FIGURE_DPI, View, _ipywidgets, idle

if TYPE_CHECKING:
    import ipywidgets

def prototype_explorer(model, tasks, alphas=None, dpi: float = FIGURE_DPI) -> ipywidgets.VBox:
    """See and fix prototypes (notebook 07; arXiv:2204.00929 §4): choose an episode and a class, see its support
    images, its decoded prototype and the decoded path p(alpha) = c + alpha (e - c) towards a chosen spare exemplar;
    an alpha slider moves along the path and the accuracy of the episode's held-out queries follows; "apply" replaces
    the class's prototype by p(alpha) (later paths start from it; disabled at alpha = 0, where p = c), "reset"
    restores the episode's prototypes (disabled while they are unchanged). Episodes and exemplars are numbered from 1.

    model: a trained AutoProtoNet (`protonet.TrainedProtoNet` or `AutoProtoNet` with a decoder); tasks: a sequence of
    `protonet.RefinementTask` (e.g. from `make_refinement_task`); alphas: the path's points (default 0, 0.1, ..., 1).
    Embeddings are computed once here; a path (one decoder pass of len(alphas) + 1 embeddings) is decoded once per
    (episode, class, exemplar, applied prototypes) and kept, so moving the slider only redraws. Renders
    `plots.render_prototype_path` into an `Image` widget. Raises ValueError for no tasks or a model without a decoder.
    Returns a VBox with `.controls`, `.redraw()` and `.prototypes(i)` (the current prototypes (way, D) of episode i,
    0-based).
    """
    from ..protonet import PAPER_ALPHAS, decode_embeddings, embed_images, interpolate, prototype_accuracy, refine

    w = _ipywidgets()
    tasks = list(tasks)
    if not tasks:
        raise ValueError("prototype_explorer: tasks is empty; pass tasks from protonet.make_refinement_task(...)")
    alphas = np.asarray(list(PAPER_ALPHAS) + [1.0] if alphas is None else alphas, dtype=float)
    net = getattr(model, "model", model)
    if getattr(net, "decoder", None) is None:
        raise ValueError("prototype_explorer: the model has no decoder (a ProtoNet, lambda_r = 0); "
                         "pass an AutoProtoNet")
    pre = []
    for t in tasks:
        c, h, wd = t.support.shape[2:]
        sup = embed_images(model, t.support.reshape(-1, c, h, wd)).reshape(t.way, t.support.shape[1], -1)
        ex = embed_images(model, t.exemplars.reshape(-1, c, h, wd)).reshape(t.way, t.exemplars.shape[1], -1)
        pre.append({"protos": sup.mean(1), "original": sup.mean(1).clone(), "query": embed_images(model, t.query),
                    "exemplars": ex, "version": 0, "applied": 0})
    paths: dict[tuple, tuple] = {}
    view = View(w, "prototype", dpi)

    def names(i: int) -> list[tuple[str, int]]:
        t = tasks[i]
        return [(f"{k}: {t.classes[k]}" + (f" (poor exemplar: {t.corruption})" if k == t.bad_class else ""), k)
                for k in range(t.way)]

    def exemplars(i: int) -> list[tuple[str, int]]:
        n = tasks[i].exemplars.shape[1]
        return [(f"{j + 1} of {n}", j) for j in range(n)]

    episode = w.Dropdown(options=[(f"{i + 1} of {len(tasks)}", i) for i in range(len(tasks))], value=0,
                         description="episode")
    klass = w.Dropdown(options=names(0), value=tasks[0].bad_class, description="class")
    exemplar = w.Dropdown(options=exemplars(0), value=0, description="exemplar")
    alpha = w.SelectionSlider(options=[(f"{a:.2g}", i) for i, a in enumerate(alphas)], value=0, description="α",
                              continuous_update=True)
    apply, reset = w.Button(description="apply"), w.Button(description="reset episode")

    def path_of(i: int, k: int, j: int) -> tuple:
        p = pre[i]
        key = (i, k, j, p["version"])
        if key not in paths:
            e = p["exemplars"][k, j]
            emb = interpolate(p["protos"][k], e, alphas.tolist())
            decoded = decode_embeddings(model, torch.cat([p["protos"][k][None], emb, e[None]]))
            acc = np.array([prototype_accuracy(refine(p["protos"], k, float(a), e), p["query"], tasks[i].query_labels)
                            for a in alphas])
            paths[key] = (emb, decoded[0], decoded[1:-1], decoded[-1], acc)
        return paths[key]

    def draw() -> None:
        i, k, j, a = episode.value, klass.value, exemplar.value, alpha.value
        t = tasks[i]
        _, dproto, dpath, dex, acc = path_of(i, k, j)
        apply.disabled = a == 0  # p(0) is the current prototype: applying it changes nothing
        reset.disabled = not pre[i]["applied"]
        for control in (episode, klass, exemplar):
            control.disabled = idle(control)
        key = (i, k, j, pre[i]["version"], a)
        if not view.show_cached(key):
            applied = pre[i]["applied"]
            title = (f"refining the prototype of {t.classes[k]} along the α path" if not applied else
                     f"refining the prototypes of episode {i + 1} further ({applied} change(s) applied)")
            view.show(render_prototype_path(t.support[k], dproto, dpath, alphas, acc, t.exemplars[k, j], dex,
                                            chosen=a, class_name=t.classes[k], title=title), key)
        now = prototype_accuracy(pre[i]["protos"], pre[i]["query"], t.query_labels)
        first = prototype_accuracy(pre[i]["original"], pre[i]["query"], t.query_labels)
        view.info.value = (f"<b>{t.classes[k]}</b>, exemplar {j + 1}, α = {alphas[a]:.2g}: held-out accuracy "
                           f"<b>{100 * acc[a]:.1f}%</b> (current prototypes {100 * now:.1f}%, at the start "
                           f"{100 * first:.1f}%; {len(t.query_labels)} queries, diagnostic)")

    redraw = view.redraws(draw)

    def episode_changed(change=None) -> None:
        with view.setting():
            t = tasks[episode.value]
            klass.options = names(episode.value)
            klass.value = t.bad_class
            exemplar.options = exemplars(episode.value)
            exemplar.value = 0
            alpha.value = 0
        redraw(change)

    def on_apply(_button=None) -> None:
        i, k, j = episode.value, klass.value, exemplar.value
        p = pre[i]
        p["protos"] = p["protos"].clone()
        p["protos"][k] = path_of(i, k, j)[0][alpha.value]
        p["version"] += 1
        p["applied"] += 1
        with view.setting():
            alpha.value = 0
        redraw()

    def on_reset(_button=None) -> None:
        p = pre[episode.value]
        p["protos"], p["version"], p["applied"] = p["original"].clone(), p["version"] + 1, 0
        redraw()

    episode.observe(episode_changed, names="value")
    for control in (klass, exemplar, alpha):
        control.observe(redraw, names="value")
    apply.on_click(on_apply)
    reset.on_click(on_reset)
    box = view.box([[episode, klass, exemplar], [alpha, apply, reset]],
                   {"episode": episode, "class": klass, "exemplar": exemplar, "alpha": alpha, "apply": apply,
                    "reset": reset}, redraw)
    box.prototypes = lambda i=0: pre[i]["protos"]
    redraw()
    return box
