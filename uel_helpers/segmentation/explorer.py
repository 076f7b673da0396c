"""What the inpainting explorer shows, computed once: for a few images, mask positions, mask sizes and models, the
saved iterates of the inpainting optimiser (`inpaint`, the peer recipe of Santurkar et al., arXiv 1906.09453 §3.3,
adapted to a per-pixel loss); and `render_view`, the pure render function of one view. The ipywidgets layer is
`uel_helpers.widgets.inpainting_explorer`, which only redraws `render_view`; a notebook calls `render_view` once
before opening it, so a static render of the notebook shows the first view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from ..checks import check_choice, check_count
from .data import SegScenes
from .figures import render_inpainting_view
from .inpaint import inpaint, masks_on_objects, region_psnr, square_mask
from .settings import InpaintSettings, inpaint_settings, scaled_patch

POSITIONS = ("on an object", "centre", "top left", "bottom right")


@dataclass
class InpaintingViews:
    """Precomputed explorer data. originals (I, C, H, W), targets (I, H, W); masks (I, P, S, H, W) for the positions
    P and sides S; iterates {model: (T, I, P, S, C, H, W)} at the saved `steps` (T of them, step 0 = corrupted)."""

    originals: torch.Tensor
    targets: torch.Tensor
    classes: tuple[str, ...]
    positions: tuple[str, ...]
    sides: tuple[int, ...]
    steps: tuple[int, ...]
    masks: torch.Tensor
    iterates: dict[str, torch.Tensor]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.iterates)

    def index(self, image: int, position: str, side: int, model: str, step: int) -> tuple:
        """Check a view's coordinates (image 0-based; step = an index into `steps`) and return them as indices."""
        who = "InpaintingViews"
        check_count(image, "image", who, lo=0, hi=len(self.originals) - 1)
        check_choice(position, "position", self.positions, who)
        check_choice(side, "side", self.sides, who)
        check_choice(model, "model", self.models, who)
        check_count(step, "step", who, lo=0, hi=len(self.steps) - 1)
        return image, self.positions.index(position), self.sides.index(side), model, step


def position_masks(scenes: SegScenes, side: int, positions: Sequence[str] = POSITIONS, seed: int = 0
                   ) -> torch.Tensor:
    """(N, P, H, W) bool squares of `side` at each named position (`POSITIONS`) for every scene."""
    h = w = scenes.size
    fixed = {"centre": ((h - side) // 2, (w - side) // 2), "top left": (0, 0), "bottom right": (h - side, w - side)}
    out = []
    for p in positions:
        check_choice(p, "position", POSITIONS, "position_masks")
        if p == "on an object":
            out.append(masks_on_objects(scenes, side, seed))
        else:
            out.append(square_mask((h, w), *fixed[p], side)[None].expand(len(scenes), h, w))
    return torch.stack(out, 1)


def inpainting_views(models: Mapping[str, object], scenes: SegScenes, sides: Sequence[int] | None = None,
                     positions: Sequence[str] = POSITIONS, settings: InpaintSettings | None = None, saved: int = 10,
                     seed: int = 0, device: str | torch.device | None = "auto") -> InpaintingViews:
    """Run the inpainting optimiser for every scene x position x side, once per model (one batch of I * P * S images
    each, the identical `settings` for every model), keeping about `saved` + 1 iterates (step 0 = the corrupted
    image, then every steps // saved steps; the iterate after that step, not the lowest-loss one).

    models: {name: network or TrainedSegmenter}; scenes: SegScenes (targets: their label maps); sides: mask sides in
    px, None = the scaled peer patch (`scaled_patch`) and 1.5 times it; positions: names from `POSITIONS`.
    Raises ValueError for an unknown position, a side larger than the scenes or saved < 1.
    """
    s = settings if settings is not None else inpaint_settings(None)
    base = scaled_patch(scenes.size)
    sides = tuple(sides) if sides is not None else (base, min(scenes.size, round(1.5 * base)))
    every = max(1, s.steps // check_count(saved, "saved", "inpainting_views"))
    masks = torch.stack([position_masks(scenes, side, positions, seed) for side in sides], 2)  # I, P, S, H, W
    i, p, k = masks.shape[:3]
    x = scenes.to_float()[:, None, None].expand(i, p, k, *scenes.to_float().shape[1:]).reshape(-1, 3, *masks.shape[-2:])
    y = scenes.labels.long()[:, None, None].expand(i, p, k, *masks.shape[-2:]).reshape(-1, *masks.shape[-2:])
    iterates, steps = {}, None
    for name, model in models.items():
        res = inpaint(model, x, y, masks.reshape(-1, *masks.shape[-2:]), s, save_every=every, device=device)
        steps = tuple(sorted(res.iterates))
        iterates[name] = torch.stack([res.iterates[t] for t in steps]).reshape(len(steps), i, p, k, *x.shape[1:])
    return InpaintingViews(scenes.to_float(), scenes.labels.long(), scenes.classes, tuple(positions), sides,
                           steps or (0,), masks, iterates)


def render_view(views: InpaintingViews, image: int = 0, position: str = POSITIONS[0], side: int | None = None,
                model: str | None = None, step: int = -1) -> Figure:
    """The explorer's picture for one choice, a matplotlib Figure: corrupted | the fill after that step | original |
    target labels, the mask outlined, the PSNR of the masked square under the fill. image: 0-based index into
    views.originals (the explorer shows it 1-based); position, side, model: one of views.positions / sides / models
    (None = the first); step: index into views.steps, -1 = the last saved. ValueError naming the argument for a
    choice that is not in `views`."""
    side = views.sides[0] if side is None else side
    model = views.models[0] if model is None else model
    step = len(views.steps) - 1 if step == -1 else step
    i, p, k, model, t = views.index(image, position, side, model, step)
    mask = views.masks[i, p, k]
    it = views.iterates[model][t, i, p, k]
    psnr = float(region_psnr(it[None], views.originals[i][None], mask[None])[0])
    return render_inpainting_view(views.originals[i], views.iterates[model][0, i, p, k], it, mask, views.targets[i],
                                  len(views.classes), views.steps[t], model, psnr)
