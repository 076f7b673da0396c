"""Prototypes you can see: embeddings decoded into images, and the comparison method, an image optimised until its
embedding is the prototype (Adam + total variation).

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929. Upstream code psandovalsegura/AdversarialQuerying@9992e0e: `vis_prototypes.py`
(`get_prototypes`, `get_prototypes_imgs_from_data`, `generate_prototype_img_using_adam`), the latter run in
`CIFAR-FS Prototype Visualization.ipynb`.
"""

from __future__ import annotations

import math
import numbers

import torch

from ..data import decode_images
from ..device import check_finite_loss, make_generator, pick_device
from .model import AutoProtoNet, class_prototypes
from .trained import TrainedProtoNet, _model_of


def _as_float_images(images: torch.Tensor, meta: dict | None = None) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if images.dtype == torch.uint8:
        return decode_images(images, meta)
    if not images.dtype.is_floating_point:
        raise TypeError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    return images.float()


@torch.no_grad()
def embed_images(model: AutoProtoNet | TrainedProtoNet, images: torch.Tensor, batch: int = 512,
                 device: str | torch.device | None = "cpu") -> torch.Tensor:
    """Embeddings E(x) of images (N, C, H, W), uint8 0..255 or float in [0, 1], model in eval mode: float32 (N, D)
    on the CPU."""
    m = _model_of(model)
    x = _as_float_images(images)
    dev = pick_device(device)
    was_training = m.training
    m.eval().to(dev)
    out = [m.embed(xb.to(dev)).float().cpu() for xb in x.split(batch)]
    m.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, m.embedding_dim)


@torch.no_grad()
def decode_embeddings(model: AutoProtoNet | TrainedProtoNet, embeddings: torch.Tensor, batch: int = 512,
                      device: str | torch.device | None = "cpu") -> torch.Tensor:
    """D(e) for embeddings (N, D): float32 images (N, C, H, W) >= 0 on the CPU, not clamped (the decoder ends in a
    ReLU, as upstream's; clamp to [0, 1] only for display). Raises ValueError for a model without a decoder."""
    m = _model_of(model)
    e = torch.as_tensor(embeddings).float()
    if e.ndim == 1:
        e = e[None]
    dev = pick_device(device)
    was_training = m.training
    m.eval().to(dev)
    out = [m.decode(eb.to(dev)).float().cpu() for eb in e.split(batch)]
    m.train(was_training)
    return torch.cat(out)


def decode_prototypes(model: AutoProtoNet | TrainedProtoNet, support: torch.Tensor, support_labels: torch.Tensor,
                      way: int | None = None, device: str | torch.device | None = "cpu"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypes of a support set and their decoded images (upstream `vis_prototypes.py`, `get_prototypes` and
    `get_prototypes_imgs_from_data`): image_k = D(c_k).

    support (S, C, H, W) uint8 or float in [0, 1]; support_labels (S,) int64 in [0, way). Returns (prototypes
    (way, D), decoded images (way, C, H, W) >= 0). Raises ValueError for a class without support or no decoder."""
    labels = torch.as_tensor(support_labels).to(torch.int64).cpu()
    way = int(labels.max()) + 1 if way is None else way
    protos = class_prototypes(embed_images(model, support, device=device), labels, way)
    return protos, decode_embeddings(model, protos, device=device)


# --- the comparison: a prototype image by optimisation (Adam + TV) ----------------------------------------

def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of images (B, C, H, W): the mean absolute difference between vertical and between
    horizontal neighbours, summed over the two directions. Our definition: upstream's `vis_prototypes.py@9992e0e`
    calls a `total_variation` that it neither defines nor imports."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def optimise_prototype_image(model: AutoProtoNet | TrainedProtoNet, prototype: torch.Tensor, steps: int = 20_000,
                             lr: float = 0.01, tv_weight: float = 0.05, rand_init: bool = False, seed: int = 0,
                             device: str | torch.device | None = "cpu") -> torch.Tensor:
    """An image whose embedding is the prototype: argmin_x ||E(x) - c||_2 + tv_weight * TV(x), x in [0, 1] (upstream
    `vis_prototypes.py`, `generate_prototype_img_using_adam`: Adam(lr, betas (0.9, 0.999)) from zeros or U[0, 1]; run in
    upstream's `CIFAR-FS Prototype Visualization.ipynb` with lr 0.01, 20,000 steps, weight 0.05). Upstream's quirks,
    fixed: tv_weight = 0 really drops the TV term (upstream adds the constant 1.0), the learning rate stays constant
    (upstream calls `StepLR.step(loss)`, passing the loss as the epoch), and x is projected onto [0, 1] after every
    step. Model in eval mode. Returns float32 (C, H, W) in [0, 1] on the CPU. Raises ValueError for a prototype of the
    wrong size or steps < 1, NonFiniteLossError (device.py) when the loss becomes NaN or infinite (checked every 500
    steps and at the end)."""
    m = _model_of(model)
    c = torch.as_tensor(prototype).float().reshape(-1)
    if c.numel() != m.embedding_dim:
        raise ValueError(f"prototype must have {m.embedding_dim} values (the embedding size), got {c.numel()}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    dev = pick_device(device)
    was_training = m.training
    m.eval().to(dev)
    shape = (1, m.in_channels, *m.image_size)
    gen = make_generator(seed, dev)
    x = torch.rand(shape, generator=gen, device=dev) if rand_init else torch.zeros(shape, device=dev)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.9, 0.999))
    target = c.to(dev)[None]
    for p in m.parameters():
        p.requires_grad_(False)
    bad = torch.zeros((), dtype=torch.bool, device=dev)  # any NaN/inf loss so far (checked every 500 steps)
    try:
        for step in range(int(steps)):
            loss = (m.embed(x) - target).norm()
            if tv_weight:
                loss = loss + tv_weight * total_variation(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)  # NaN survives the clamp: a NaN image would come back
            bad |= ~torch.isfinite(loss.detach())
            if (step + 1) % 500 == 0 or step + 1 == steps:
                check_finite_loss(math.nan if bool(bad) else 0.0, "optimise_prototype_image", "loss",
                                  where=f"by step {step + 1} (lr {lr:g})",
                                  fix=f"lower lr (now {lr:g}), or check the prototype and the model for NaN/inf")
    finally:
        for p in m.parameters():
            p.requires_grad_(True)
        m.train(was_training)
    return x.detach()[0].cpu()
