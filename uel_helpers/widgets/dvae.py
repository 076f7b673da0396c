"""The D-VAE explorer (notebook 03): what a trained D-VAE separates, per poison and class: the input, x̂, p̂, the
true δ and x − p̂ (Yu et al., "Purify Unlearnable Examples via Rate-Constrained Variational Autoencoders",
ICML 2024, arXiv:2405.01460 §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data import ImageSet
from ..plots import signed_rows
from ._display import FIGURE_DPI, View, _ipywidgets, idle
from ._inputs import class_index

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

def dvae_panels(model, clean: ImageSet, poisoned: ImageSet, indices, sample_latent: bool = True, seed: int = 0
                ) -> dict:
    """D-VAE's view of some poisoned training images: input, x̂, p̂, the true δ and x − p̂ (float CPU tensors).

    `model` is a trained stage model (`run_stages(...).models[0]` or `train_dvae`); δ = poisoned − clean is what
    was stored, so the p̂ row can be compared with it directly.
    """
    from ..defenses.dvae import DVAE, reconstruct  # widgets sit above defenses; imported here to keep import light

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


DVAE_CELL_INCHES = 0.85  # one image of the D-VAE view: 5 rows x 6 images fit the explorer's picture at 100 dpi


def _check_dvae_inputs(models, clean: ImageSet, poisoned, n, who: str) -> None:
    if not isinstance(models, Mapping) or not models or not isinstance(poisoned, Mapping) \
            or set(models) != set(poisoned):
        raise ValueError(f"{who} needs two dicts with the same poison names: models (name -> DVAE) and "
                         f"poisoned (name -> ImageSet); got {sorted(models) if isinstance(models, Mapping) else models}"
                         f" and {sorted(poisoned) if isinstance(poisoned, Mapping) else poisoned}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{who}: n (images per view) must be an int >= 1, got {n!r}")


def _dvae_view(models, clean, poisoned, poison: str, members: np.ndarray, first: int, n: int, sample_latent: bool,
               class_name: str) -> tuple[Figure, np.ndarray, torch.Tensor]:
    """The D-VAE explorer's figure for images first..first+n-1 (1-based) of one class, and the cosines."""
    pick = members[first - 1:first - 1 + n]
    panels = dvae_panels(models[poison], clean, poisoned[poison], pick, sample_latent=sample_latent)
    cos = torch.nn.functional.cosine_similarity(panels["p̂ (perturbation decoder)"].flatten(1),
                                                panels["true δ"].flatten(1), dim=1)
    titles = [f"index {int(i)}\ncos {float(c):+.2f}" for i, c in zip(pick, cos, strict=True)]
    fig = signed_rows(panels, signed=("p̂ (perturbation decoder)", "true δ"), column_titles=titles,
                      title=f"{poison}, class {class_name}: images {first}-{first + len(pick) - 1} of {len(members)}\n"
                            "above each: its dataset index and cos = cosine(p̂, δ)", cell=DVAE_CELL_INCHES)
    return fig, pick, cos


def render_dvae_view(models: Mapping, clean: ImageSet, poisoned: Mapping[str, ImageSet], poison: str | None = None,
                     klass: int | None = None, first: int = 1, n: int = 6, sample_latent: bool = True) -> Figure:
    """The D-VAE explorer's view as a static figure (what a notebook shows before opening `dvae_explorer`).

    poison: a key of `models` (default the first); klass: a class label (default the first non-empty class);
    first: the first image shown, 1-based within the class (images first .. first + n - 1). Raises ValueError for
    an unknown poison or class, or `first` outside the class.
    """
    _check_dvae_inputs(models, clean, poisoned, n, "render_dvae_view")
    per_class, _, first_class = class_index(clean, "render_dvae_view")
    poison = next(iter(models)) if poison is None else poison
    klass = first_class if klass is None else klass
    if poison not in models:
        raise ValueError(f"render_dvae_view: unknown poison {poison!r}; expected one of {list(models)}")
    if klass not in per_class or not len(per_class[klass]):
        raise ValueError(f"render_dvae_view: class {klass!r} has no images; classes 0..{clean.num_classes - 1}")
    members = per_class[klass]
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or not 1 <= first <= len(members):
        raise ValueError(f"render_dvae_view: first must be an image number in 1..{len(members)}, got {first!r}")
    return _dvae_view(models, clean, poisoned, poison, members, int(first), n, sample_latent,
                      str(clean.classes[klass]))[0]


def dvae_explorer(models: Mapping, clean: ImageSet, poisoned: Mapping[str, ImageSet], n: int = 6,
                  sample_latent: bool = True, dpi: float = FIGURE_DPI) -> ipywidgets.VBox:
    """Browse what a trained D-VAE separates, per poison and class: input, x̂, p̂, the true δ and x − p̂.

    models: poison name -> the stage-1 DVAE trained on that poison; poisoned: poison name -> its poisoned
    training set (aligned with `clean`). Controls: poison, class, first image (1-based within the class), and
    whether z is sampled (as the reference does; `sample_latent` is its first value) or set to its mean. Views already
    drawn are kept, so going back is instant. Its first view is `render_dvae_view(models, clean, poisoned, n=n,
    sample_latent=sample_latent)`. Returns a VBox with `.controls` and `.redraw()` attached.
    """
    w = _ipywidgets()
    _check_dvae_inputs(models, clean, poisoned, n, "dvae_explorer")
    per_class, class_options, first_class = class_index(clean, "dvae_explorer")
    view = View(w, "dvae", dpi)
    poison = w.Dropdown(options=list(models), value=next(iter(models)), description="poison")
    klass = w.Dropdown(options=class_options, value=first_class, description="class")
    start = w.IntSlider(value=1, min=1, max=max(1, len(per_class[first_class]) - n + 1), step=1,
                        description="first image", continuous_update=False, style={"description_width": "initial"})
    sample = w.Checkbox(value=bool(sample_latent), description="sample z (as the reference)")
    cosines: dict = {}

    def draw() -> None:
        members = per_class[klass.value]
        first = min(start.value, len(members))
        for control in (poison, klass, start):
            control.disabled = idle(control)
        key = (poison.value, klass.value, first, sample.value)
        if not view.show_cached(key):
            fig, _, cos = _dvae_view(models, clean, poisoned, poison.value, members, first, n, sample.value,
                                     str(clean.classes[klass.value]))
            cosines[key] = float(cos.mean())
            view.show(fig, key)
        last = min(first + n - 1, len(members))
        view.info.value = (f"<b>{poison.value}</b>: images {first}-{last} of {len(members)} in class "
                           f"{clean.classes[klass.value]!s}; mean cosine(p̂, δ) {cosines[key]:+.3f}")

    redraw = view.redraws(draw)

    def class_changed(change=None) -> None:
        with view.setting():
            start.value = 1
            start.max = max(1, len(per_class[klass.value]) - n + 1)
        redraw(change)

    klass.observe(class_changed, names="value")
    for control in (poison, start, sample):
        control.observe(redraw, names="value")
    box = view.box([[poison, klass], [start, sample]],
                   {"poison": poison, "class": klass, "first": start, "sample": sample}, redraw)
    redraw()
    return box
