"""Argument checks shared by the editing modules, and the import of the optional libraries (the `editing` extra).

Images come in two forms: stored images, uint8 (N, C, H, W) in 0..255 (what a PNG holds, what the attack returns),
and float images (N, C, H, W) in [0, 1] (what encoders, editors and the metrics read). A float image outside [0, 1]
or with NaN is a ValueError, any other dtype a TypeError: nothing is clipped or rescaled silently.
"""

from __future__ import annotations

import importlib

import torch

from ..checks import check_count, check_finite_tensor, check_rate

EXTRA = 'pip install "uel_helpers[editing]"'  # the extra that brings kornia, torchmetrics and diffusers
JPEG_QUALITY_RANGE = (1, 100)  # PIL's; quality 0 is refused (libjpeg silently treats it as 1)


def require(module: str, what: str):
    """Import an optional library, or raise ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs the `{module.split('.')[0]}` library, which is part of the editing extra: "
                          f"{EXTRA} (in a checkout: pip install -e \".[editing]\")") from err


def check_images_u8(images, name: str, who: str) -> torch.Tensor:
    """Stored images: a uint8 tensor (N, C, H, W). Returns it."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a uint8 torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"{who}: {name} must be uint8 images in 0..255 (stored images, as a PNG holds them), got "
                        f"{images.dtype}; for float images x in [0, 1] pass uel_helpers.data.quantize(x)")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"{who}: {name} must have shape (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"{who}: {name} must have 1 or 3 channels (gray or RGB), got {images.shape[1]}")
    return images


def as_unit(images, name: str, who: str) -> torch.Tensor:
    """uint8 (0..255) or float [0, 1] images (N, C, H, W) as float32 in [0, 1] on their device."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        return check_images_u8(images, name, who).float().div(255.0)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{who}: {name} must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"{who}: {name} must have shape (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    check_finite_tensor(images, name, who)
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{who}: {name} must lie in [0, 1] (float images), got values in [{lo:.4g}, {hi:.4g}]; "
                         "divide 0..255 images by 255, map [-1, 1] images with (x + 1) / 2")
    return images.float()


def check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], who: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{who}: {names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} must be the same "
                         "images (same shape)")


def check_eps(eps, who: str, name: str = "eps") -> float:
    """An L∞ budget in (0, 1] ([0, 1] pixel units; 8/255 ≈ 0.031)."""
    eps = check_rate(eps, name, who, lo=0.0, hi=1.0, lo_open=True)
    return eps


def check_quality(quality, who: str, name: str = "quality") -> int:
    """A JPEG quality: an int in 1..100 (PIL's range)."""
    return check_count(quality, name, who, lo=JPEG_QUALITY_RANGE[0], hi=JPEG_QUALITY_RANGE[1])
