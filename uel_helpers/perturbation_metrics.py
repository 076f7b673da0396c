"""How much of a perturbation a purifier removed, and how much image it kept: PSNR, survival, cosine.

All three compare aligned ImageSets (or uint8/float tensors of the same shape) of the same images: the clean
set, the poisoned set made from it, and a purified (or reconstructed) version of the poisoned set. The
perturbation that was actually stored is δ = poisoned − clean (after clipping and quantisation), in [0,1]
pixel units.

    PSNR(a, b)    = 10·log10(1 / MSE(a, b)) per image, in dB (higher = closer; identical images give +inf)
    transfer      = Σ⟨f(x + δ) − f(x), δ⟩ / Σ‖δ‖²  over the whole set, for a purifier f run on both the poisoned
                    and the clean images: the least-squares coefficient of δ in how the output moved when δ was
                    added (1 = δ passed through untouched, 0 = removed, < 0 = over-subtracted)
    survival      = the same with f(x) replaced by x: Σ⟨f(x + δ) − x, δ⟩ / Σ‖δ‖². Only meaningful when f leaves
                    clean content alone (a subtraction, like D-VAE's stage 1): a lossy reconstruction's own error
                    f(x) − x can correlate with δ (on Fashion-MNIST both are >= 0 on the black background, where
                    clipping keeps only the positive part of δ), so use `perturbation_transfer` for those.
    cosine(p, δ)  = ⟨p, δ⟩ / (‖p‖·‖δ‖) per image: how well an estimated perturbation (D-VAE's p̂) points along
                    the true one
"""

from __future__ import annotations

import torch

from .data import ImageSet


def _as_unit_float(x, what: str, fn: str) -> torch.Tensor:
    """uint8 (0..255) or float [0,1] images (an ImageSet or an N×C×H×W tensor) as float [0,1]."""
    if isinstance(x, ImageSet):
        x = x.images
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {what} must be an ImageSet or a tensor (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{fn}: {what} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float().div(255.0)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{fn}: {what} must be uint8 (0..255) or float in [0, 1], got {x.dtype}")
    return x.float()


def _pair(a, b, names: tuple[str, str], fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    fa, fb = _as_unit_float(a, names[0], fn), _as_unit_float(b, names[1], fn)
    if fa.shape != fb.shape:
        raise ValueError(f"{fn}: {names[0]} and {names[1]} must be the same images, got shapes {tuple(fa.shape)} "
                         f"and {tuple(fb.shape)}")
    if isinstance(a, ImageSet) and isinstance(b, ImageSet) and not torch.equal(a.labels, b.labels):
        raise ValueError(f"{fn}: {names[0]} and {names[1]} have different labels: they are not the same images "
                         "in the same order")
    return fa, fb


def psnr(a, b) -> torch.Tensor:
    """PSNR in dB of every image of `a` against the same image of `b` (peak 1.0 in [0,1] units); shape (N,)."""
    fa, fb = _pair(a, b, ("a", "b"), "psnr")
    mse = (fa - fb).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)  # mse = 0 gives +inf: the images are identical


def _delta_coefficient(clean, poisoned, base, moved, fn: str) -> float:
    x, xp = _pair(clean, poisoned, ("clean", "poisoned"), fn)
    _, fb = _pair(clean, base, ("clean", "the purified clean set"), fn)
    _, fm = _pair(clean, moved, ("clean", "the purified poisoned set"), fn)
    delta = xp - x
    energy = float(delta.pow(2).sum())
    if energy == 0:
        raise ValueError(f"{fn}: poisoned equals clean (δ = 0): there is no perturbation to follow")
    return float(((fm - fb) * delta).sum()) / energy


def perturbation_survival(clean, poisoned, purified) -> float:
    """Σ⟨purified − clean, δ⟩ / Σ‖δ‖² with δ = poisoned − clean: the share of δ left (1 = all), for subtractions.

    For a purifier that also changes clean content (a VAE reconstruction), use `perturbation_transfer`.
    """
    return _delta_coefficient(clean, poisoned, clean, purified, "perturbation_survival")


def perturbation_transfer(clean, poisoned, purified_clean, purified_poisoned) -> float:
    """Σ⟨f(x + δ) − f(x), δ⟩ / Σ‖δ‖²: how much of δ a purifier f passes (1 = all, 0 = none), its own error excluded.

    purified_clean / purified_poisoned: f applied to the clean and to the poisoned images (same images, same order;
    for a sampling VAE use the same seed for both, so the sampling noise cancels).
    """
    return _delta_coefficient(clean, poisoned, purified_clean, purified_poisoned, "perturbation_transfer")


def cosine_similarity(estimate, delta) -> torch.Tensor:
    """Per-image cosine between an estimated perturbation and the true one (float tensors, any scale); (N,).

    Images where either vector is zero get NaN (the direction is undefined), not a silent 0.
    """
    fn = "cosine_similarity"
    for what, t in (("estimate", estimate), ("delta", delta)):
        if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
            raise TypeError(f"{fn}: {what} must be a float tensor (N, ...), got "
                            f"{type(t).__name__ if not isinstance(t, torch.Tensor) else t.dtype}")
    if estimate.shape != delta.shape or estimate.ndim < 2:
        raise ValueError(f"{fn}: estimate and delta must have the same shape (N, ...), got {tuple(estimate.shape)} "
                         f"and {tuple(delta.shape)}")
    e, d = estimate.flatten(1).double(), delta.flatten(1).double()
    norms = e.norm(dim=1) * d.norm(dim=1)
    cos = (e * d).sum(1) / norms
    return torch.where(norms > 0, cos, torch.full_like(cos, float("nan"))).float()


__all__ = ["cosine_similarity", "perturbation_survival", "perturbation_transfer", "psnr"]
