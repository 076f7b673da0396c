"""Inpainting and object editing by optimisation against a segmenter; input-gradient maps; how to score a fill.

The optimiser of Sandoval-Segura, arXiv 2204.01099 is not published (its upstream fork,
`psandovalsegura/Robust-Semantic-Segmentation@2bf51a1`, has no inpainting code). We use the best-documented peer
recipe, Santurkar et al., arXiv 1906.09453 (`MadryLab/robustness_applications@1503d17` `inpainting.ipynb`, with the
`robustness` library's L2 PGD), adapted to segmentation (our design): per image,

    minimise  L(x) = mean_pixels CE(f(x), y_target) + lambda_r * mean_{C,H,W}((x - x_c)^2 * (1 - mask))
    x_0 = x_c (the image with the masked square filled with its per-channel mean colour)
    x <- x - step * g / ||g||_2;  x <- x_c + renorm_L2(x - x_c, eps);  x <- clamp(x, 0, 1)

for `steps` iterations, keeping each image's lowest-loss iterate (`use_best`). Editing is the same with the target
map relabelled on an object's pixels ("dog -> cat"). The identical settings are used for every model compared.

Scores of a fill (the region is the mask): PSNR = 10 log10(1 / MSE) over the masked pixels and channels; SSIM (Wang
et al., IEEE TIP 2004) with a 7 x 7 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, averaged over the masked
pixels (windows near the mask's edge also see unmasked pixels); judge accuracy = the pixel accuracy of a separately
trained segmenter inside the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_count, check_seed
from ..device import autocast, pick_device
from .attacks import pixel_ce
from .data import IGNORE, SegScenes, check_label_map
from .metrics import as_network, check_target, predict
from .settings import InpaintSettings, inpaint_settings, scaled_eps

# --- masks ---------------------------------------------------------------------------------------------


def square_mask(size: int | tuple[int, int], top: int, left: int, side: int) -> torch.Tensor:
    """A bool (H, W) mask, True on the side x side square whose top-left pixel is (top, left).
    Raises ValueError when the square does not lie fully inside the image (naming `top`/`left`/`side`)."""
    h, w = (size, size) if isinstance(size, int) else size
    side = check_count(side, "side", "square_mask", hi=min(h, w))  # the side first: an error then names `side`
    for name, value, extent in (("top", top, h), ("left", left, w)):
        value = check_count(value, name, "square_mask", lo=-(2**31))
        if value < 0 or value + side > extent:
            raise ValueError(f"square_mask: the mask lies outside the {h}x{w} image: {name}={value} with side={side} "
                             f"needs 0 <= {name} <= {extent - side}")
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top:top + side, left:left + side] = True
    return mask


def masks_on_objects(scenes: SegScenes, side: int, seed: int = 0) -> torch.Tensor:
    """One side x side square per scene (N, H, W), centred on a random pixel of an object (a non-background,
    non-ignored pixel; the image centre when there is none) and shifted to lie inside the image. Deterministic."""
    who = "masks_on_objects"
    side = check_count(side, "side", who, hi=scenes.size)
    gen = torch.Generator().manual_seed(check_seed(seed, "seed", who))
    h = w = scenes.size
    out = torch.zeros(len(scenes), h, w, dtype=torch.bool)
    for i in range(len(scenes)):
        ys, xs = torch.nonzero((scenes.labels[i] != 0) & (scenes.labels[i] != IGNORE), as_tuple=True)
        if len(ys):
            k = int(torch.randint(0, len(ys), (), generator=gen))
            cy, cx = int(ys[k]), int(xs[k])
        else:
            cy, cx = h // 2, w // 2
        top = min(max(0, cy - side // 2), h - side)
        left = min(max(0, cx - side // 2), w - side)
        out[i] = square_mask((h, w), top, left, side)
    return out


def check_mask(mask: torch.Tensor, images: torch.Tensor, who: str) -> torch.Tensor:
    """A bool mask (N, H, W) for images (N, C, H, W) with at least one masked pixel per image."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{who}: mask must be a bool tensor (N, H, W), got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    want = (images.shape[0], *images.shape[2:])
    if tuple(mask.shape) != want:
        raise ValueError(f"{who}: mask must have the images' size {want} (N, H, W), got {tuple(mask.shape)}")
    if not bool(mask.flatten(1).any(1).all()):
        raise ValueError(f"{who}: every image needs a non-empty mask")
    return mask


def _check_images(x: torch.Tensor, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        raise TypeError(f"{who}: images must be a float tensor (N, C, H, W) in [0, 1], got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"{who}: images must lie in [0, 1]")
    return x


def corrupt(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The images with the masked pixels set to each image's per-channel mean colour (the peer recipe's start)."""
    _check_images(images, "corrupt")
    check_mask(mask, images, "corrupt")
    mean = images.mean((2, 3), keepdim=True)
    return torch.where(mask[:, None], mean.expand_as(images), images)


def relabel_object(labels: torch.Tensor, object_mask: torch.Tensor, new_class: int) -> torch.Tensor:
    """The target of an edit: `labels` (N, H, W) with the pixels of `object_mask` set to `new_class`."""
    if object_mask.shape != labels.shape:
        raise ValueError(f"relabel_object: object_mask {tuple(object_mask.shape)} must have the labels' shape "
                         f"{tuple(labels.shape)}")
    check_count(new_class, "new_class", "relabel_object", lo=0, hi=IGNORE - 1)
    return torch.where(object_mask, torch.full_like(labels, new_class), labels)


# --- the optimiser -------------------------------------------------------------------------------------


@dataclass
class InpaintResult:
    """filled: the returned images (N, C, H, W) in [0, 1]; corrupted: the start x_c; loss: L of `filled` per image;
    iterates: {step: images} saved along the way (step 0 = x_c), for the explorer."""

    filled: torch.Tensor
    corrupted: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    loss: torch.Tensor
    iterates: dict[int, torch.Tensor] = field(default_factory=dict)


def inpainting_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor, x_c: torch.Tensor, mask: torch.Tensor,
                    lambda_r: float) -> torch.Tensor:
    """L per image (N,): mean per-pixel CE(model(x), target) + lambda_r * mean((x - x_c)^2 * (1 - mask))."""
    with autocast(x.device):
        logits = model(x)
    keep = (~mask).to(x.dtype)[:, None]
    return pixel_ce(logits, target, "per_image") + lambda_r * ((x - x_c) ** 2 * keep).flatten(1).mean(1)


def inpaint(model, images: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
            settings: InpaintSettings | None = None, save_every: int | None = None,
            device: str | torch.device | None = "auto") -> InpaintResult:
    """Fill the masked squares of `images` by L2 PGD on `model` (a network or TrainedSegmenter, eval mode).

    images: float (N, C, H, W) in [0, 1], the originals (the masked pixels are replaced by the mean colour here);
    target: (N, H, W) label map to aim for (the ground truth to inpaint, a relabelled map to edit); mask: bool
    (N, H, W). settings: None = the current profile's `inpaint_settings`. save_every: keep every k-th iterate.
    Raises TypeError / ValueError for images that are not float [0, 1], a target or mask of another size, an empty
    mask.
    """
    who = "inpaint"
    net = as_network(model)
    s = settings if settings is not None else inpaint_settings(None)
    _check_images(images, who)
    target = check_target(target, images, who)
    check_mask(mask, images, who)
    dev = pick_device(device)
    was = net.training
    net = net.to(dev).eval()
    x_c = corrupt(images, mask).to(dev)
    target, m = target.to(dev), mask.to(dev)
    eps = s.eps if s.eps is not None else scaled_eps(*images.shape[1:])
    x = x_c.clone()
    best_loss = torch.full((len(x),), float("inf"), device=dev)
    best_x = x_c.clone()
    saved = {0: x_c.cpu()} if save_every else {}
    for it in range(s.steps):
        x.requires_grad_(True)
        losses = inpainting_loss(net, x, target, x_c, m, s.lambda_r)
        (g,) = torch.autograd.grad(losses.sum(), [x])
        with torch.no_grad():
            better = losses.detach() < best_loss
            best_loss = torch.where(better, losses.detach(), best_loss)
            best_x = torch.where(better[:, None, None, None], x.detach(), best_x)
            norm = g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x = x.detach() - s.step * g / (norm + 1e-10)
            x = (x_c + (x - x_c).renorm(p=2, dim=0, maxnorm=eps)).clamp(0, 1)
        if save_every and (it + 1) % save_every == 0:
            saved[it + 1] = x.detach().cpu()
    with torch.no_grad():
        last = inpainting_loss(net, x, target, x_c, m, s.lambda_r)
    if s.use_best:
        better = last < best_loss
        best_loss = torch.where(better, last, best_loss)
        x = torch.where(better[:, None, None, None], x, best_x)
    else:
        best_loss = last
    net.train(was)
    return InpaintResult(x.detach().cpu(), x_c.cpu(), mask.cpu(), target.cpu(), best_loss.cpu(), saved)


# --- gradients and scores ------------------------------------------------------------------------------


def _check_pair(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, who: str) -> None:
    _check_images(a, who)
    _check_images(b, who)
    if a.shape != b.shape:
        raise ValueError(f"{who}: the two image batches must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    check_mask(mask, a, who)


def input_gradients(model, images: torch.Tensor, labels: torch.Tensor, device: str | torch.device | None = "auto"
                    ) -> torch.Tensor:
    """d/dx of the mean per-pixel CE of `model` (eval mode) against `labels` (N, H, W), per image: float (N, C, H, W)
    on the CPU, for images float (N, C, H, W) in [0, 1]. TypeError/ValueError for images outside [0, 1] or a label
    map of another size."""
    net = as_network(model)
    _check_images(images, "input_gradients")
    labels = check_target(labels, images, "input_gradients")
    dev = pick_device(device)
    was = net.training
    net = net.to(dev).eval()
    x = images.to(dev).clone().requires_grad_(True)
    with autocast(dev):
        logits = net(x)
    (g,) = torch.autograd.grad(pixel_ce(logits, labels.to(dev), "per_image").sum(), [x])
    net.train(was)
    return g.detach().cpu()


def object_share(grads: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image, the fraction in [0, 1] of the squared input gradient (grads (N, C, H, W)) that falls on object
    pixels (labels (N, H, W) not 0 or 255): (N,). ValueError for a label map of another size."""
    check_label_map(labels, (grads.shape[0], *grads.shape[2:]), "labels", "object_share")
    energy = grads.pow(2).sum(1)
    on = ((labels != 0) & (labels != IGNORE)).to(energy.dtype)
    return (energy * on).flatten(1).sum(1) / energy.flatten(1).sum(1).clamp_min(1e-30)


def region_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR in dB (peak 1) of `a` against `b` over the masked pixels of each image: (N,); images (N, C, H, W) in
    [0, 1], mask bool (N, H, W). Identical regions give 120 dB (the MSE is floored at 1e-12). TypeError/ValueError
    for images of different shapes, a mask that is not bool (N, H, W) or an empty mask."""
    _check_pair(a, b, mask, "region_psnr")
    m = mask[:, None].to(a.dtype)
    mse = ((a - b) ** 2 * m).flatten(1).sum(1) / (m.flatten(1).sum(1) * a.shape[1])
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """The SSIM map (N, H, W) of images in [0, 1] (mean over channels; borders replicate-padded), Wang et al. 2004
    with a Gaussian window. The window is 7x7 (σ 1.5), not the usual 11x11, because the masked squares it scores are
    only 9-16 px wide at `quick`; `uel_helpers.editing.ssim` (notebook 08, whole images) uses torchmetrics' 11x11
    window, so the two notebooks' SSIM values are not comparable."""
    c = a.shape[1]
    r = torch.arange(window, dtype=a.dtype, device=a.device) - window // 2
    g1 = torch.exp(-(r**2) / (2 * sigma**2))
    k = (g1[:, None] * g1[None]) / (g1.sum() ** 2)
    k = k.expand(c, 1, window, window).contiguous()

    def blur(t):
        return F.conv2d(F.pad(t, (window // 2,) * 4, mode="replicate"), k, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    s_aa, s_bb, s_ab = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return s.mean(1)


def region_ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SSIM of `a` against `b` (N, C, H, W) in [0, 1] averaged over the masked pixels (mask bool (N, H, W)) of each
    image: (N,), at most 1. Errors as `region_psnr`."""
    _check_pair(a, b, mask, "region_ssim")
    m = mask.to(a.dtype)
    return (ssim_map(a, b) * m).flatten(1).sum(1) / m.flatten(1).sum(1)


def judge_accuracy(judge, images: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                   device: str | torch.device | None = "auto") -> torch.Tensor:
    """Per image, the fraction in [0, 1] of masked pixels (not labelled 255) that the judge (a network or
    TrainedSegmenter, run in eval mode) labels as `target`: (N,). images float (N, C, H, W) in [0, 1], target (N, H, W),
    mask bool (N, H, W). TypeError/ValueError for inputs of other types or sizes."""
    net = as_network(judge)
    _check_images(images, "judge_accuracy")
    target = check_target(target, images, "judge_accuracy")
    check_mask(mask, images, "judge_accuracy")
    dev = pick_device(device)
    pred = predict(net.to(dev), images.to(dev)).cpu()
    counted = mask & (target != IGNORE)
    return ((pred == target) & counted).flatten(1).sum(1) / counted.flatten(1).sum(1).clamp_min(1)


# --- comparing models --------------------------------------------------------------------------------


@dataclass
class FillScores:
    """One row of an inpainting comparison: images (N, C, H, W) in [0, 1] and, per image (N,), the PSNR in dB and
    SSIM of the masked region against the original, and the judge's pixel accuracy in the mask (NaN without a
    judge)."""

    images: torch.Tensor
    psnr: torch.Tensor
    ssim: torch.Tensor
    judge: torch.Tensor


def compare_inpainting(models, scenes: SegScenes, mask: torch.Tensor, settings: InpaintSettings | None = None,
                       judge=None, device: str | torch.device | None = "auto") -> dict[str, FillScores]:
    """Inpaint the masked squares of `scenes` (target: their ground-truth maps) with every model of `models` ({name:
    network or TrainedSegmenter}) under the identical `settings`, and score each fill.

    Returns {"corrupted": the start, "original": the untouched images (PSNR 120 dB, the cap of
    `region_psnr`, and SSIM 1: the judge's ceiling),
    name: the fill of each model}. mask: bool (N, H, W). judge: a separately trained segmenter (never one of
    `models`: no self-evaluation). Raises TypeError/ValueError as `inpaint`, and ValueError when the judge is one of
    the models.
    """
    who = "compare_inpainting"
    if not isinstance(scenes, SegScenes):
        raise TypeError(f"{who}: scenes must be SegScenes, got {type(scenes).__name__}")
    if judge is not None and any(as_network(judge) is as_network(m) for m in models.values()):
        raise ValueError(f"{who}: the judge must be trained separately from the models it scores (no self-evaluation)")
    x, y = scenes.to_float(), scenes.labels.long()
    check_mask(mask, x, who)

    def row(images: torch.Tensor) -> FillScores:
        acc = (judge_accuracy(judge, images, y, mask, device) if judge is not None
               else torch.full((len(x),), float("nan")))
        return FillScores(images, region_psnr(images, x, mask), region_ssim(images, x, mask), acc)

    out = {"corrupted": row(corrupt(x, mask)), "original": row(x)}
    for name, model in models.items():
        out[name] = row(inpaint(model, x, y, mask, settings, device=device).filled)
    return out


def edit_targets(scenes: SegScenes, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each scene, an editing task: (target (N, H, W) int64, mask (N, H, W) bool, new class (N,) int64).

    The largest visible object (synthetic scenes: by `instances`; otherwise the largest class region) is relabelled to
    a different, random non-background class; the mask is its bounding box. A scene without an object gets the centre
    square of half the side relabelled. Deterministic in `seed`. ValueError with fewer than 2 object classes.
    """
    who = "edit_targets"
    if not isinstance(scenes, SegScenes):
        raise TypeError(f"{who}: scenes must be SegScenes, got {type(scenes).__name__}")
    if scenes.num_classes < 3:
        raise ValueError(f"{who}: editing needs at least 2 object classes besides the background, got "
                         f"{scenes.num_classes - 1}")
    gen = torch.Generator().manual_seed(check_seed(seed, "seed", who))
    labels = scenes.labels.long()
    n, h, w = labels.shape
    target, mask, new = labels.clone(), torch.zeros(n, h, w, dtype=torch.bool), torch.zeros(n, dtype=torch.int64)
    for i in range(n):
        regions = scenes.instances[i].long() if scenes.instances is not None else labels[i].masked_fill(
            labels[i] == IGNORE, 0)
        counts = torch.bincount(regions.flatten(), minlength=2)
        counts[0] = 0
        if int(counts.max()) == 0:
            obj = square_mask((h, w), h // 4, w // 4, min(h, w) // 2)
            old = 0
        else:
            obj = regions == int(counts.argmax())
            old = int(labels[i][obj].mode().values)
        choices = [k for k in range(1, scenes.num_classes) if k != old]
        new[i] = choices[int(torch.randint(0, len(choices), (), generator=gen))]
        target[i][obj] = new[i]
        ys, xs = torch.nonzero(obj, as_tuple=True)
        mask[i, int(ys.min()):int(ys.max()) + 1, int(xs.min()):int(xs.max()) + 1] = True
    return target, mask, new
