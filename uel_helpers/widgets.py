"""ipywidgets explorers: thin layers over the pure render functions in `uel_helpers.plots`.

Core widgets only (Dropdown, IntSlider, FloatLogSlider, Checkbox, HTML, Image, HBox/VBox), with the API
common to ipywidgets 7.7 (Colab) and 8.x; figures are rendered to PNG bytes into an `Image` widget, which
works in Jupyter, Colab and headless runs. Notebooks call the render function once for a static figure,
then open the explorer (DESIGN.md, Widgets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import ImageSet
from .plots import (
    dct_spectra,
    figure_to_png,
    render_attribution,
    render_perturbation,
    render_prototype_path,
    signed_rows,
)
from .poisons.base import Poison

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["perturbation_explorer", "dvae_explorer", "dvae_panels", "sharpen_explorer", "sharpen_panels",
           "attribution_explorer", "prototype_explorer"]


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - ipywidgets is a dependency
        raise ImportError(
            "the explorers need ipywidgets: pip install 'ipywidgets>=7.6,<9' (on Colab it is preinstalled; "
            "do not install ipywidgets 8 there, it breaks Colab's widgets)"
        ) from err
    return ipywidgets


def _check_poisons(clean: ImageSet, poisons: Poison | Mapping[str, Poison], who: str) -> dict[str, Poison]:
    """A dict name -> Poison, every poison checked against `clean` (clear ValueError on a mismatch)."""
    if isinstance(poisons, Poison):
        poisons = {poisons.attack: poisons}
    if not isinstance(poisons, Mapping) or not poisons:
        raise ValueError(f"{who} needs a non-empty dict name -> Poison, e.g. {{'ar': make_poison('ar', train)}}")
    if not isinstance(clean, ImageSet):
        raise TypeError(f"{who} needs the clean ImageSet the poisons were made from, got {type(clean).__name__}")
    out = {}
    for name, poison in poisons.items():
        if not isinstance(poison, Poison):
            raise TypeError(f"{who}: {name!r} is a {type(poison).__name__}, not a Poison")
        try:
            poison.check_matches(clean)
        except ValueError as err:
            raise ValueError(f"{who}: poison {name!r} does not match this clean set: {err}") from err
        out[str(name)] = poison
    return out


def _class_index(clean: ImageSet, who: str) -> tuple[dict[int, np.ndarray], list[tuple[str, int]], int]:
    """Per-class image indices, the class dropdown's options ("k: name (count)") and the first non-empty class."""
    labels = clean.labels.numpy()
    per_class = {k: np.flatnonzero(labels == k) for k in range(clean.num_classes)}
    class_options = [(f"{k}: {clean.classes[k]} ({len(idx)})", k) for k, idx in per_class.items() if len(idx)]
    if not class_options:
        raise ValueError(f"{who} needs a non-empty dataset")
    return per_class, class_options, class_options[0][1]


def perturbation_explorer(clean: ImageSet, poisons: Poison | Mapping[str, Poison], dpi: int = 80
                          ) -> ipywidgets.VBox:
    """Browse the effective perturbations of several poisons, one training image at a time.

    Controls: attack, class, image within the class, amplification (automatic or a factor) and the
    Fourier panel. Each change redraws `plots.render_perturbation(clean, poison, index, ...)` into an
    `ipywidgets.Image` (the figure is closed after rendering). Every poison is checked against `clean`
    once here; per-class index lists are precomputed, so a redraw costs one small figure.
    Returns a VBox; `.controls` (dict of the widgets) and `.redraw()` are attached for scripting and tests.
    """
    w = _ipywidgets()
    poisons = _check_poisons(clean, poisons, "perturbation_explorer")
    per_class, class_options, first_class = _class_index(clean, "perturbation_explorer")

    attack = w.Dropdown(options=list(poisons), value=next(iter(poisons)), description="attack")
    klass = w.Dropdown(options=class_options, value=first_class, description="class")
    image_idx = w.IntSlider(value=0, min=0, max=len(per_class[first_class]) - 1, step=1,
                            description="image", continuous_update=False)
    auto = w.Checkbox(value=True, description="auto amplify")
    amplify = w.FloatLogSlider(value=16.0, base=2, min=0, max=8, step=0.5, description="amplify ×",
                               continuous_update=False, disabled=True, readout_format=".3g")
    fft = w.Checkbox(value=True, description="Fourier panel")
    picture = w.Image(format="png")
    info = w.HTML()
    state = {"busy": False}

    def redraw(_change=None) -> None:
        """Render the selected image of the selected poison into the Image widget."""
        if state["busy"]:
            return
        amplify.disabled = auto.value
        members = per_class[klass.value]
        index = int(members[min(image_idx.value, len(members) - 1)])
        poison = poisons[attack.value]
        fig = render_perturbation(clean, poison, index, amplify=None if auto.value else float(amplify.value),
                                  show_fft=fft.value, check=False)
        picture.value = figure_to_png(fig, dpi=dpi)
        info.value = (f"<b>{attack.value}</b>: training image {index} "
                      f"({image_idx.value + 1} of {len(members)} in class {clean.classes[klass.value]!s})")

    def class_changed(_change=None) -> None:
        state["busy"] = True  # changing the slider range would redraw once more
        try:
            image_idx.value = 0
            image_idx.max = len(per_class[klass.value]) - 1
        finally:
            state["busy"] = False
        redraw()

    klass.observe(class_changed, names="value")
    for control in (attack, image_idx, auto, amplify, fft):
        control.observe(redraw, names="value")

    box = w.VBox([w.HBox([attack, klass]), w.HBox([image_idx, fft]), w.HBox([auto, amplify]), info, picture])
    box.controls = {"attack": attack, "class": klass, "image": image_idx, "auto": auto, "amplify": amplify,
                    "fft": fft, "picture": picture, "info": info}
    box.redraw = redraw
    redraw()
    return box


def dvae_panels(model, clean: ImageSet, poisoned: ImageSet, indices, sample_latent: bool = True, seed: int = 0
                ) -> dict:
    """D-VAE's view of some poisoned training images: input, x̂, p̂, the true δ and x − p̂ (float CPU tensors).

    `model` is a trained stage model (`run_stages(...).models[0]` or `train_dvae`); δ = poisoned − clean is what
    was stored, so the p̂ row can be compared with it directly.
    """
    from .defenses.dvae import DVAE, reconstruct  # widgets sit above defenses; imported here to keep import light

    if not isinstance(model, DVAE):
        raise TypeError(f"dvae_panels: expected a trained DVAE (run_stages(...).models[0]), got {type(model).__name__}")
    if not isinstance(clean, ImageSet) or not isinstance(poisoned, ImageSet):
        raise TypeError("dvae_panels: clean and poisoned must be ImageSets (the clean set and its poisoned version)")
    if clean.images.shape != poisoned.images.shape:
        raise ValueError(f"dvae_panels: clean {tuple(clean.images.shape)} and poisoned {tuple(poisoned.images.shape)} "
                         "are not versions of the same images")
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if idx.ndim != 1 or len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= len(clean):
        raise ValueError(f"dvae_panels: indices must be a non-empty list of ints in [0, {len(clean)}), got {indices!r}")
    x = poisoned.images[idx].float() / 255
    out = reconstruct(model, poisoned.images[idx], poisoned.labels[idx], sample_latent=sample_latent, seed=seed,
                      device="cpu")
    return {"input (poisoned)": x, "x̂ (main decoder)": out.x_hat.clamp(0, 1), "p̂ (perturbation decoder)": out.p_hat,
            "true δ": x - clean.images[idx].float() / 255, "x − p̂ (stage-1 output)": out.residual}


def dvae_explorer(models: Mapping, clean: ImageSet, poisoned: Mapping[str, ImageSet], n: int = 6,
                  dpi: int = 80) -> ipywidgets.VBox:
    """Browse what a trained D-VAE separates, per poison and class: input, x̂, p̂, the true δ and x − p̂.

    models: poison name -> the stage-1 DVAE trained on that poison; poisoned: poison name -> its poisoned
    training set (aligned with `clean`). Controls: poison, class, first image, and whether z is sampled (as
    the reference does) or set to its mean. Returns a VBox with `.controls` and `.redraw()` attached.
    """
    w = _ipywidgets()
    if not isinstance(models, Mapping) or not models or set(models) != set(poisoned):
        raise ValueError("dvae_explorer needs two dicts with the same poison names: models (name -> DVAE) and "
                         f"poisoned (name -> ImageSet); got {sorted(models) if isinstance(models, Mapping) else models}"
                         f" and {sorted(poisoned) if isinstance(poisoned, Mapping) else poisoned}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"dvae_explorer: n (images per view) must be an int >= 1, got {n!r}")
    per_class, class_options, first_class = _class_index(clean, "dvae_explorer")
    poison = w.Dropdown(options=list(models), value=next(iter(models)), description="poison")
    klass = w.Dropdown(options=class_options, value=first_class, description="class")
    start = w.IntSlider(value=0, min=0, max=max(0, len(per_class[first_class]) - n), step=1, description="first",
                        continuous_update=False)
    sample = w.Checkbox(value=True, description="sample z (as the reference)")
    picture = w.Image(format="png")
    info = w.HTML()
    state = {"busy": False}

    def redraw(_change=None) -> None:
        """Run the selected model on the selected images and render the rows."""
        if state["busy"]:
            return
        members = per_class[klass.value]
        pick = members[start.value:start.value + n]
        panels = dvae_panels(models[poison.value], clean, poisoned[poison.value], pick, sample_latent=sample.value)
        cos = torch.nn.functional.cosine_similarity(panels["p̂ (perturbation decoder)"].flatten(1),
                                                    panels["true δ"].flatten(1), dim=1)
        fig = signed_rows(panels, signed=("p̂ (perturbation decoder)", "true δ"),
                          column_titles=[f"#{int(i)}  cos {float(c):+.2f}" for i, c in zip(pick, cos, strict=True)],
                          title=f"{poison.value}: class {clean.classes[klass.value]} (cos = cosine(p̂, δ))")
        picture.value = figure_to_png(fig, dpi=dpi)
        info.value = (f"<b>{poison.value}</b>: images {start.value + 1}-{start.value + len(pick)} of {len(members)} "
                      f"in class {clean.classes[klass.value]!s}; mean cosine(p̂, δ) {float(cos.mean()):+.3f}")

    def class_changed(_change=None) -> None:
        state["busy"] = True
        try:
            start.value = 0
            start.max = max(0, len(per_class[klass.value]) - n)
        finally:
            state["busy"] = False
        redraw()

    klass.observe(class_changed, names="value")
    for control in (poison, start, sample):
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox([poison, klass]), w.HBox([start, sample]), info, picture])
    box.controls = {"poison": poison, "class": klass, "first": start, "sample": sample, "picture": picture,
                    "info": info}
    box.redraw = redraw
    redraw()
    return box


def sharpen_panels(image: torch.Tensor, mode: str = "rsk", center: float = 2.5, percent: float = 30.0,
                   seed: int = 0) -> dict:
    """One image (C, H, W, [0,1]) through sharpening (`mode` "rsk"/"ssk") and the DCT low-pass: the three stages."""
    from .defenses.sharpen import dct_lowpass, sharpen_filter

    if not isinstance(image, torch.Tensor) or image.ndim != 3 or not image.dtype.is_floating_point:
        raise ValueError("sharpen_panels: image must be one float tensor (C, H, W) in [0, 1]")
    gen = torch.Generator().manual_seed(seed)
    sharp = sharpen_filter(image[None], mode, center, None, generator=gen)[0]
    return {"input": image, f"{mode.upper()} (c={center:g})": sharp,
            f"+ DCT low-pass {percent:g}%": dct_lowpass(sharp[None], percent)[0]}


def sharpen_explorer(ds: ImageSet, dpi: int = 80) -> ipywidgets.VBox:
    """Browse one training image through RSK/SSK sharpening and the DCT low-pass, with their DCT spectra.

    Controls: image, sharpening kernel (random RSK, redrawn with the seed, or static SSK), centre c, the DCT
    percentage kept per side, and the RSK seed. Nothing is trained: this shows what the defense does to an image.
    """
    w = _ipywidgets()
    if not isinstance(ds, ImageSet) or len(ds) == 0:
        raise ValueError("sharpen_explorer needs a non-empty ImageSet (e.g. a CUDA-poisoned training set)")
    index = w.IntSlider(value=0, min=0, max=len(ds) - 1, description="image", continuous_update=False)
    mode = w.Dropdown(options=[("RSK (random)", "rsk"), ("SSK (static)", "ssk")], value="rsk", description="kernel")
    center = w.FloatSlider(value=2.5, min=1.1, max=5.0, step=0.1, description="centre c", continuous_update=False)
    percent = w.FloatSlider(value=30.0, min=5.0, max=100.0, step=5.0, description="DCT kept %",
                            continuous_update=False)
    seed = w.IntSlider(value=0, min=0, max=99, description="RSK seed", continuous_update=False)
    picture = w.Image(format="png")
    info = w.HTML()

    def redraw(_change=None) -> None:
        """Render the selected image through the selected transform."""
        x = ds.images[index.value].float() / 255
        panels = sharpen_panels(x, mode.value, center.value, percent.value, seed.value)
        fig = dct_spectra(panels, title=f"image {index.value} ({ds.classes[int(ds.labels[index.value])]})")
        picture.value = figure_to_png(fig, dpi=dpi)
        info.value = (f"<b>{mode.value.upper()}</b> c = {center.value:.1f}, DCT block kept: {percent.value:.0f}% "
                      "per side")

    for control in (index, mode, center, percent, seed):
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox([index, mode]), w.HBox([center, percent, seed]), info, picture])
    box.controls = {"image": index, "kernel": mode, "center": center, "percent": percent, "seed": seed,
                    "picture": picture, "info": info}
    box.redraw = redraw
    redraw()
    return box


def attribution_explorer(train_set: ImageSet, test_set: ImageSet, attributions, top: int = 10, dpi: int = 80
                         ) -> ipywidgets.VBox:
    """Browse attributions (notebook 06): pick a test image, a method and label conditioning; see the test image and
    its top-k training images with their scores (`plots.render_attribution`, into an `Image` widget).

    attributions: a sequence of `attribution.Attribution` (any methods, with and without label conditioning); the
    test images offered are those every attribution covers. Raises ValueError when there are none or they share
    no test image. Returns a VBox with `.controls` and `.redraw()`.
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
    test_pick = w.Dropdown(options=[(f"{t}: {test_set.classes[int(test_set.labels[t])]}", t) for t in tests],
                           value=tests[0], description="test image")
    method = w.Dropdown(options=methods, value=methods[0], description="method")
    conditioning = w.Checkbox(value=(methods[0], True) in by_key, description="label conditioning")
    k_max = min(a.k for a in atts)
    top_k = w.IntSlider(value=min(top, k_max), min=1, max=min(k_max, 30), description="top k",
                        continuous_update=False)
    picture = w.Image(format="png")
    info = w.HTML()

    def redraw(_change=None) -> None:
        att = by_key.get((method.value, conditioning.value))
        if att is None:
            info.value = (f"<b>{method.value}</b> was not computed "
                          f"{'with' if conditioning.value else 'without'} label conditioning")
            return
        fig = render_attribution(train_set, test_set, att, test_pick.value, top=top_k.value)
        picture.value = figure_to_png(fig, dpi=dpi)
        info.value = (f"<b>{method.value}</b>, label conditioning {'on' if conditioning.value else 'off'}: "
                      f"test image {test_pick.value}, top {top_k.value} of k={att.k}")

    for control in (test_pick, method, conditioning, top_k):
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox([test_pick, method]), w.HBox([conditioning, top_k]), info, picture])
    box.controls = {"test": test_pick, "method": method, "conditioning": conditioning, "top": top_k,
                    "picture": picture, "info": info}
    box.redraw = redraw
    redraw()
    return box


def prototype_explorer(model, tasks, alphas=None, dpi: int = 80) -> ipywidgets.VBox:
    """See and fix prototypes (notebook 07; arXiv:2204.00929 §4): choose an episode and a class, see its support
    images, its decoded prototype and the decoded path p(alpha) = c + alpha (e - c) towards a chosen spare exemplar;
    an alpha slider moves along the path and the accuracy of the episode's held-out queries follows; "apply" replaces
    the class's prototype by p(alpha) (later paths start from it), "reset" restores the episode's prototypes.

    model: a trained AutoProtoNet (`protonet.TrainedProtoNet` or `AutoProtoNet` with a decoder); tasks: a sequence of
    `protonet.RefinementTask` (e.g. from `make_refinement_task`); alphas: the path's points (default 0, 0.1, ..., 1).
    Embeddings are computed once here; a path (one decoder pass of len(alphas) + 1 embeddings) is decoded once per
    (episode, class, exemplar, applied prototypes) and kept, so moving the slider only redraws. Renders
    `plots.render_prototype_path` into an `Image` widget. Raises ValueError for no tasks or a model without a decoder.
    Returns a VBox with `.controls`, `.redraw()` and `.prototypes(i)` (the current prototypes (way, D) of episode i).
    """
    from .protonet import PAPER_ALPHAS, decode_embeddings, embed_images, interpolate, prototype_accuracy, refine

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
                    "exemplars": ex, "version": 0})
    paths: dict[tuple, tuple] = {}

    def names(i: int) -> list[tuple[str, int]]:
        t = tasks[i]
        return [(f"{k}: {t.classes[k]}" + (f" (poor exemplar: {t.corruption})" if k == t.bad_class else ""), k)
                for k in range(t.way)]

    episode = w.Dropdown(options=[(f"episode {i}", i) for i in range(len(tasks))], value=0, description="episode")
    klass = w.Dropdown(options=names(0), value=tasks[0].bad_class, description="class")
    exemplar = w.Dropdown(options=list(range(tasks[0].exemplars.shape[1])), value=0, description="exemplar")
    alpha = w.SelectionSlider(options=[(f"{a:.2g}", i) for i, a in enumerate(alphas)], value=0, description="α",
                              continuous_update=True)
    apply, reset = w.Button(description="apply"), w.Button(description="reset episode")
    picture = w.Image(format="png")
    info = w.HTML()
    state = {"busy": False}

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

    def redraw(_change=None) -> None:
        if state["busy"]:
            return
        i, k, j, a = episode.value, klass.value, exemplar.value, alpha.value
        t = tasks[i]
        _, dproto, dpath, dex, acc = path_of(i, k, j)
        fig = render_prototype_path(t.support[k], dproto, dpath, alphas, acc, t.exemplars[k, j], dex, chosen=a,
                                    class_name=t.classes[k])
        picture.value = figure_to_png(fig, dpi=dpi)
        now = prototype_accuracy(pre[i]["protos"], pre[i]["query"], t.query_labels)
        first = prototype_accuracy(pre[i]["original"], pre[i]["query"], t.query_labels)
        info.value = (f"<b>{t.classes[k]}</b>, exemplar {j}: held-out accuracy at α = {alphas[a]:.2g}: "
                      f"<b>{100 * acc[a]:.1f}%</b> (current prototypes {100 * now:.1f}%, before any change "
                      f"{100 * first:.1f}%; {len(t.query_labels)} queries, diagnostic)")

    def episode_changed(_change=None) -> None:
        state["busy"] = True
        try:
            t = tasks[episode.value]
            klass.options = names(episode.value)
            klass.value = t.bad_class
            exemplar.options = list(range(t.exemplars.shape[1]))
            exemplar.value = 0
            alpha.value = 0
        finally:
            state["busy"] = False
        redraw()

    def on_apply(_button=None) -> None:
        i, k, j = episode.value, klass.value, exemplar.value
        p = pre[i]
        p["protos"] = p["protos"].clone()
        p["protos"][k] = path_of(i, k, j)[0][alpha.value]
        p["version"] += 1
        state["busy"] = True
        try:
            alpha.value = 0
        finally:
            state["busy"] = False
        redraw()

    def on_reset(_button=None) -> None:
        p = pre[episode.value]
        p["protos"], p["version"] = p["original"].clone(), p["version"] + 1
        redraw()

    episode.observe(episode_changed, names="value")
    for control in (klass, exemplar, alpha):
        control.observe(redraw, names="value")
    apply.on_click(on_apply)
    reset.on_click(on_reset)
    box = w.VBox([w.HBox([episode, klass, exemplar]), w.HBox([alpha, apply, reset]), info, picture])
    box.controls = {"episode": episode, "class": klass, "exemplar": exemplar, "alpha": alpha, "apply": apply,
                    "reset": reset, "picture": picture, "info": info}
    box.redraw = redraw
    box.prototypes = lambda i=0: pre[i]["protos"]
    redraw()
    return box
