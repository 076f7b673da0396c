"""Applying a trained D-VAE (or plain VAE): its outputs on a batch, and one purification stage on a whole set.

The reference's PURIFY step (`yuyi-sd/D-VAE@9d62e4c`, `main_vae_disentangle.py`; Yu et al., ICML 2024, arXiv
2405.01460): the model in eval mode (BatchNorm running statistics), the images in a fixed order, z still
*sampled* (`sample_latent=True`, the default here; False uses z = mu), and the result quantised to uint8 by
truncation, floor(255·x) (`rounding="truncate"`, the default here).

    stage 1:  x1 = uint8(clamp(x - p̂1(x, y), 0, 1))                       the residual, not x̂
    stage 2:  r = clamp(x1 - p̂2(x1, y), 0, 1);  x2 = uint8(clamp(x̂2(r, y), 0, 1))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ...checks import check_bool, check_choice, check_count, check_seed
from ...data import ImageSet, quantize
from ...device import amp_dtype, autocast, deterministic_backend, make_generator, pick_device
from .model import DVAE, VAE
from .settings import INFER_BATCH, ROUNDINGS, check_imageset, check_labels


@dataclass
class DVAEOutputs:
    """A model's outputs on a batch, on the CPU in [0,1] units: x̂, p̂ (None for the plain VAE), the residual
    clamp(x - p̂, 0, 1) (stage 1's output before quantisation; x for the plain VAE) and the KL per image."""

    x_hat: torch.Tensor
    p_hat: torch.Tensor | None
    residual: torch.Tensor
    kl: torch.Tensor
    info: dict = field(default_factory=dict)


def _as_float_images(images, model: VAE, fn: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{fn}: images must be a tensor (N, C, H, W) or an ImageSet, got {type(images).__name__}")
    want = (model.arch["channels"], *model.arch["size"])
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(want):
        raise ValueError(f"{fn}: the model was trained on images of shape {tuple(want)}, got {tuple(images.shape)} "
                         "(expected (N, C, H, W))")
    if images.dtype == torch.uint8:
        return images.float().div(255.0)
    if not images.dtype.is_floating_point:
        raise TypeError(f"{fn}: images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    if len(images) and (float(images.min()) < 0 or float(images.max()) > 1):
        raise ValueError(f"{fn}: float images must lie in [0, 1], got [{float(images.min()):.4f}, "
                         f"{float(images.max()):.4f}]")
    return images.float()


def _model_device(model: VAE, device) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    return pick_device(device)


@torch.no_grad()
def reconstruct(model: VAE, images, labels: torch.Tensor | None = None, *, sample_latent: bool = True, seed: int = 0,
                batch_size: int = INFER_BATCH, device: str | torch.device | None = None,
                amp: bool = True) -> DVAEOutputs:
    """Run a trained (D-)VAE in eval mode on a batch and return x̂, p̂, clamp(x - p̂, 0, 1) and the KL per image.

    images: an ImageSet (its labels are used) or a tensor (N, C, H, W), uint8 or float in [0,1]; labels are
    required for a D-VAE. `sample_latent` samples z (as the reference's purification) with `seed`; False
    uses z = mu. `device` None = where the model is.
    """
    fn = "reconstruct"
    if not isinstance(model, VAE):
        raise TypeError(f"{fn}: expected a model from train_dvae/train_vae, got {type(model).__name__}")
    if isinstance(images, ImageSet):
        labels = images.labels if labels is None else labels
        images = images.images
    x = _as_float_images(images, model, fn)
    is_dvae = isinstance(model, DVAE)
    if is_dvae:
        y = check_labels(labels, len(x), model.arch["num_classes"], fn)
    sample_latent = check_bool(sample_latent, "sample_latent", fn)
    batch_size = check_count(batch_size, "batch_size", fn)
    seed = check_seed(seed, "seed", fn)
    dev = _model_device(model, device)
    model.to(dev).eval()
    amp = amp and amp_dtype(dev) is not None
    gen = make_generator(seed, dev)
    xs, ps, rs, kls = [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        with autocast(dev, amp):
            out = model(xb, y[i:i + batch_size].to(dev), sample_latent, gen) if is_dvae else model(xb, sample_latent,
                                                                                                 gen)
        x_hat = out.x_hat.float()
        kl_map = -0.5 * (1 + out.logvar - out.mu.pow(2) - out.logvar.exp()).sum(1)
        kls.append(kl_map.flatten(1).mean(1).cpu())
        xs.append(x_hat.cpu())
        if is_dvae:
            p_hat = out.p_hat.float()
            ps.append(p_hat.cpu())
            rs.append(torch.clamp(xb - p_hat, 0, 1).cpu())
        else:
            rs.append(xb.cpu())
    empty = torch.empty(0, *x.shape[1:])
    cat = lambda parts: torch.cat(parts) if parts else empty.clone()  # noqa: E731
    return DVAEOutputs(cat(xs), cat(ps) if is_dvae else None, cat(rs),
                       torch.cat(kls) if kls else torch.empty(0),
                       {"sample_latent": sample_latent, "seed": seed, "model": model.kind})


@torch.no_grad()
def purify_stage(model: DVAE, ds: ImageSet, stage: int, *, sample_latent: bool = True, seed: int = 0,
                 rounding: str = "truncate", batch_size: int = INFER_BATCH, device: str | torch.device | None = None,
                 amp: bool = True, quiet: bool = True) -> ImageSet:
    """Apply one trained D-VAE stage to every image of `ds`, in order (the reference's PURIFY step).

    stage 1: uint8(clamp(x - p̂(x, y), 0, 1));  stage 2: r = clamp(x - p̂(x, y), 0, 1), uint8(clamp(x̂(r, y), 0, 1)).
    `rounding` "truncate" = floor(255·x) as the reference, "round" = the package's round half up.
    """
    fn = "purify_stage"
    if not isinstance(model, DVAE):
        raise TypeError(f"{fn}: expected a DVAE from train_dvae, got {type(model).__name__}")
    check_imageset(ds, fn)
    if stage not in (1, 2) or isinstance(stage, bool):
        raise ValueError(f"{fn}: stage must be 1 (subtract p̂) or 2 (subtract p̂, then reconstruct), got {stage!r}")
    check_choice(rounding, "rounding", ROUNDINGS, fn)
    sample_latent = check_bool(sample_latent, "sample_latent", fn)
    seed = check_seed(seed, "seed", fn)
    if (ds.channels, *ds.image_size) != (model.arch["channels"], *model.arch["size"]) or \
            ds.num_classes != model.arch["num_classes"]:
        raise ValueError(f"{fn}: the model was trained on {model.arch['channels']}x{model.arch['size'][0]}x"
                         f"{model.arch['size'][1]} images of {model.arch['num_classes']} classes, got {ds.shape} and "
                         f"{ds.num_classes} classes")
    dev = _model_device(model, device)
    model.to(dev).eval()
    amp = amp and amp_dtype(dev) is not None
    gen = make_generator(seed, dev)
    x_all, y_all = ds.images.to(dev), ds.labels.to(dev)
    out = torch.empty_like(ds.images)
    with deterministic_backend(dev):
        for i in tqdm(range(0, len(ds), batch_size), desc=f"purify stage {stage}", leave=False,
                      disable=quiet or None):
            xb, yb = x_all[i:i + batch_size].float().div_(255.0), y_all[i:i + batch_size]
            with autocast(dev, amp):
                res = model(xb, yb, sample_latent, gen)
            xb = torch.clamp(xb - res.p_hat.float(), 0, 1)
            if stage == 2:
                with autocast(dev, amp):
                    res = model(xb, yb, sample_latent, gen)
                xb = torch.clamp(res.x_hat.float(), 0, 1)
            out[i:i + batch_size] = quantize(xb, rounding).cpu()
    tag = f"dvae-stage{stage}"
    return ds.with_images(out, name=f"{ds.name}+{tag}", defenses=[*ds.meta.get("defenses", []), tag])


def vae_reconstruct(model: VAE, ds: ImageSet, *, sample_latent: bool = True, seed: int = 0,
                    rounding: str = "truncate", batch_size: int = INFER_BATCH, device: str | torch.device | None = None,
                    amp: bool = True) -> ImageSet:
    """Replace every image of `ds` by the (plain) VAE's reconstruction, uint8(clamp(x̂, 0, 1)); same labels."""
    fn = "vae_reconstruct"
    if not isinstance(model, VAE) or isinstance(model, DVAE):
        raise TypeError(f"{fn}: expected a plain VAE from train_vae, got {type(model).__name__} "
                        "(use purify_stage for a D-VAE)")
    check_imageset(ds, fn)
    check_choice(rounding, "rounding", ROUNDINGS, fn)
    out = reconstruct(model, ds.images, sample_latent=sample_latent, seed=seed, batch_size=batch_size, device=device,
                      amp=amp)
    tag = "vae"
    return ds.with_images(quantize(out.x_hat.clamp(0, 1), rounding), name=f"{ds.name}+{tag}",
                          defenses=[*ds.meta.get("defenses", []), tag])
