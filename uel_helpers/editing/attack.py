"""PhotoGuard's encoder attack (the protection), its adaptive variant through JPEG, and the random-noise control.

Salman et al., "Raising the Cost of Malicious AI-Powered Image Editing", arXiv 2302.06588 §3 (encoder attack):

    min_δ ‖E(x + δ) − z_target‖₂   subject to ‖δ‖∞ ≤ ε,

solved by L∞ PGD exactly as upstream's `pgd` (`MadryLab/photoguard@686bea7`,
`notebooks/demo_simple_attack_img2img.ipynb`): a uniform random start x + U(−ε, ε) (not clamped before the first
step), a sign step whose size decays linearly, `step_i = step − (step − step/100) · i / iters`, projection onto the
ε-ball around x, then onto the valid pixel range; the loss is the L2 norm (not squared) of the latent mean minus the
target (upstream's img2img demo: the zero latent). The protected image is then stored as an 8-bit image.

Deviations (said in the docstrings): images in [0, 1] (upstream [−1, 1]: its eps 0.06 and step 0.02 are 0.03 and
0.01 here); rounding to the nearest 8-bit level (upstream's ToPILImage truncates) with the stored difference kept
within round(ε·255) levels; one L2 norm per image, summed over a batch (the sign step of each image is then that of
its own attack; upstream attacks one image).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..checks import check_bool, check_choice, check_count, check_seed
from ..data import quantize
from ..device import autocast, make_generator, pick_device
from ..progress import progress
from .inputs import check_eps, check_images_u8
from .settings import AttackSettings, attack_settings

__all__ = ["Protection", "budget_levels", "encoder_attack", "encoder_device", "noise_control", "pgd_encoder_attack",
           "step_schedule"]

Encoder = Callable[[torch.Tensor], torch.Tensor]  # float (N, C, H, W) in [0, 1] -> latent (N, ...)
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # float images -> float images (e.g. RandomJPEG)


def step_schedule(step: float, iters: int, min_step_fraction: float = 0.01) -> torch.Tensor:
    """PhotoGuard's step sizes: `step − (step − step · min_step_fraction) · i / iters` for i = 0 .. iters − 1.

    float64 tensor (iters,): starts at `step` and decays linearly towards (never reaching) step/100 at the default
    fraction (upstream `pgd`: `step_size - (step_size - step_size / 100) / iters * i`). Raises ValueError/TypeError
    for a step outside (0, 1], iters < 1 or a fraction outside [0, 1].
    """
    s = AttackSettings(eps=1.0, step=step, iters=iters, min_step_fraction=min_step_fraction)  # validates
    i = torch.arange(s.iters, dtype=torch.float64)
    return s.step - (s.step - s.step * s.min_step_fraction) * i / s.iters


def pgd_encoder_attack(encoder: Encoder, x: torch.Tensor, eps: float, steps: torch.Tensor,
                       target: torch.Tensor | float = 0.0, transform: Transform | None = None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The attack loop on a float batch, as upstream's `pgd` (no checks: `encoder_attack` is the entry point).

    x: float (N, C, H, W) in [0, 1]; steps: the step sizes (`step_schedule`); target: the latent to reach (0 = the
    zero latent). transform: None (PhotoGuard) or a random differentiable transform applied before the encoder (the
    adaptive protection). Returns (x_adv float in [0, 1], the mean loss of every iteration).
    """
    x_adv = x + torch.rand(x.shape, generator=generator, device=x.device) * 2 * eps - eps  # uniform random start
    losses = torch.empty(len(steps), device=x.device)
    for i, step in enumerate(steps.tolist()):
        x_adv.requires_grad_(True)
        z = encoder(x_adv if transform is None else transform(x_adv.clamp(0, 1), generator))
        loss = (z.float() - target).flatten(1).norm(dim=1)  # ‖E(x_adv) − z_target‖₂, one per image
        grad, = torch.autograd.grad(loss.sum(), [x_adv])
        x_adv = x_adv.detach() - step * grad.sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0, 1)
        losses[i] = loss.detach().mean()
    return x_adv, losses


@dataclass
class Protection:
    """Protected (or control) images as stored, with what made them.

    images: uint8 (N, C, H, W) on the CPU, the stored 8-bit images; clean: the uint8 images they were made from;
    eps: the L∞ budget in [0, 1] units; method: "photoguard" (encoder attack), "adaptive" (the same through a random
    transform, e.g. `RandomJPEG`) or "noise" (uniform random noise, the control); loss: float (iters,) the mean
    ‖E(x_adv) − z_target‖₂ per iteration (None for the control); seconds: wall time.
    """

    images: torch.Tensor
    clean: torch.Tensor
    eps: float
    method: str
    settings: AttackSettings | None = None
    transform: str | None = None
    loss: torch.Tensor | None = None
    seconds: float = 0.0

    @property
    def delta(self) -> torch.Tensor:
        """The stored perturbation (images − clean) / 255: float (N, C, H, W) in [−1, 1]."""
        return (self.images.float() - self.clean.float()) / 255.0

    @property
    def linf_levels(self) -> int:
        """max |images − clean| in 8-bit levels (≤ round(eps · 255))."""
        return int((self.images.int() - self.clean.int()).abs().max())

    @property
    def label(self) -> str:
        names = {"photoguard": "protected", "adaptive": "adaptive", "noise": "noise control"}
        return f"{names.get(self.method, self.method)} ε={255 * self.eps:.3g}/255"


def budget_levels(eps: float) -> int:
    """The stored budget in 8-bit levels: round(eps · 255), halves rounded up (0.03 -> 8 levels)."""
    return int(eps * 255 + 0.5)


def _store(x_adv: torch.Tensor, clean_u8: torch.Tensor, eps: float, rounding: str) -> torch.Tensor:
    """Quantise to 8 bits and keep the stored difference within round(eps · 255) levels."""
    levels = budget_levels(eps)
    q = quantize(x_adv.detach().cpu(), rounding).int()
    c = clean_u8.cpu().int()
    return torch.minimum(torch.maximum(q, c - levels), c + levels).clamp(0, 255).to(torch.uint8)


def encoder_device(encoder, device=None) -> torch.device:
    """`device` if given, else where `encoder` runs: its `.device`, or the device of its (bound) module's first
    parameter; the CPU for a plain function."""
    if device is not None:
        return pick_device(device)
    for obj in (encoder, getattr(encoder, "__self__", None)):
        dev = getattr(obj, "device", None)
        if isinstance(dev, torch.device):
            return dev
        if isinstance(obj, torch.nn.Module):
            p = next(obj.parameters(), None)
            if p is not None:
                return p.device
    return torch.device("cpu")


def encoder_attack(encoder: Encoder, images: torch.Tensor, settings: AttackSettings | None = None, *,
                   target: torch.Tensor | None = None, transform: Transform | None = None, seed: int = 0,
                   batch_size: int = 64, device=None, amp: bool = False, rounding: str = "round",
                   quiet: bool = False) -> Protection:
    """Protect images from latent-diffusion editing with PhotoGuard's encoder attack (arXiv 2302.06588 §3).

    encoder: any differentiable map from float images (B, C, H, W) in [0, 1] to latents (B, ...), e.g.
    `ProxyVAE.encode_mean` or `SDEncoder(pipe.vae)`; it runs on its own device (or `device`).
    images: uint8 (N, C, H, W), C = 1 or 3, the clean stored images. settings: `AttackSettings` (default: the default
    profile's; `attack_settings("paper")` is PhotoGuard's eps 0.03, step 0.01 in [0, 1] units, 1,000 iterations).
    target: the latent to push towards, (N, ...) like the encoder's output; None = the zero latent (upstream's img2img
    demo). transform: None = PhotoGuard; a random differentiable transform such as `RandomJPEG()` = the adaptive
    protection (the loss reads E(transform(x + δ))). seed: the random start (and the transform's draws); the same
    seed, batch_size and device give the same images, bit for bit. amp: the package's autocast on CUDA (bf16 on
    Ampere and newer, fp16 before; `SDEncoder` applies PhotoGuard's fp16 autocast itself, so leave amp off for it).
    rounding: "round" (nearest level; default) or "truncate" (upstream's ToPILImage).
    Returns a `Protection` whose uint8 images differ from `images` by at most round(eps · 255) levels.
    Raises TypeError/ValueError for non-uint8 images, bad settings, a target of the wrong shape, a bad seed or
    batch size, and ImportError (naming the `editing` extra) when the transform needs kornia and it is missing.
    """
    who = "encoder_attack"
    images = check_images_u8(images, "images", who)
    settings = attack_settings(None) if settings is None else settings
    if not isinstance(settings, AttackSettings):
        raise TypeError(f"{who}: settings must be an AttackSettings (attack_settings(profile)), got "
                        f"{type(settings).__name__}")
    eps = check_eps(settings.eps, who)
    seed = check_seed(seed, "seed", who)
    batch_size = check_count(batch_size, "batch_size", who)
    check_bool(amp, "amp", who)
    check_choice(rounding, "rounding", ("round", "truncate"), who)
    if not callable(encoder):
        raise TypeError(f"{who}: encoder must be callable (float images in [0, 1] -> latents), got "
                        f"{type(encoder).__name__}")
    if transform is not None and not callable(transform):
        raise TypeError(f"{who}: transform must be None or callable (x, generator) -> x, got "
                        f"{type(transform).__name__}")
    if target is not None and (not isinstance(target, torch.Tensor) or target.shape[0] != images.shape[0]):
        raise ValueError(f"{who}: target must be a tensor with one latent per image ({images.shape[0]}, ...), got "
                         f"{tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__}")
    dev = encoder_device(encoder, device)
    steps = step_schedule(settings.step, settings.iters, settings.min_step_fraction)
    gen = make_generator(seed, dev)
    out, curves = [], []
    t0 = time.perf_counter()
    chunks = range(0, images.shape[0], batch_size)
    bar = progress(chunks, quiet=quiet, desc=f"{'adaptive' if transform is not None else 'PhotoGuard'} attack "
                                             f"({settings.iters} iterations x {len(chunks)} batch(es))", unit="batch")
    for lo in bar:
        chunk = images[lo:lo + batch_size]
        x = chunk.to(dev).float().div(255.0)
        t = 0.0 if target is None else target[lo:lo + batch_size].to(dev).float()
        with autocast(dev, enabled=amp):
            x_adv, losses = pgd_encoder_attack(encoder, x, eps, steps, t, transform, gen)
        out.append(_store(x_adv, chunk, eps, rounding))
        curves.append(losses.float().cpu() * chunk.shape[0])
    loss = torch.stack(curves).sum(0) / images.shape[0]
    return Protection(torch.cat(out), images.cpu(), eps, "photoguard" if transform is None else "adaptive", settings,
                      None if transform is None else repr(transform), loss, time.perf_counter() - t0)


def noise_control(images: torch.Tensor, eps: float, seed: int = 0, rounding: str = "round") -> Protection:
    """The control: sample-wise uniform random noise U(−eps, eps) per pixel, clamped to [0, 1] and stored as 8 bits
    like a protection (same budget, no optimisation): what "JPEG removes the shift" is compared with.

    images: uint8 (N, C, H, W); eps in (0, 1]. Returns a `Protection` (method "noise"). Raises TypeError/ValueError
    for non-uint8 images or eps outside (0, 1].
    """
    who = "noise_control"
    images = check_images_u8(images, "images", who)
    eps = check_eps(eps, who)
    gen = make_generator(check_seed(seed, "seed", who))
    x = images.cpu().float() / 255.0
    noisy = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    return Protection(_store(noisy, images, eps, check_choice(rounding, "rounding", ("round", "truncate"), who)),
                      images.cpu(), eps, "noise")
