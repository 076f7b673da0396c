"""JPEG for notebook 08: PIL's codec (the one the ISS defense uses) and a differentiable stand-in for the attacker.

- `jpeg_images`: every stored image through PIL's `save(format="JPEG", quality=Q)` and `open`, exactly
  `uel_helpers.transforms.jpeg_roundtrip` (ISS, Liu et al., arXiv 2301.13838; `liuzrcc/ImageShortcutSqueezing@005d653`),
  which is what notebook 02's JPEG defense applies to training images. PIL's defaults: 4:2:0 chroma subsampling for
  RGB, the standard IJG tables scaled by Q; 1-channel images are coded as grayscale JPEG.
- `differentiable_jpeg`: kornia's differentiable JPEG (`kornia.enhance.jpeg_codec_differentiable`; Reich et al.,
  "Differentiable JPEG: The Devil is in the Details", WACV 2024, arXiv 2309.06978): the same quantisation tables and
  subsampling with a differentiable rounding, so that an attacker can optimise *through* compression.
- `RandomJPEG`: the expectation-over-transformation (EOT; Athalye et al., arXiv 1707.07397) transform of the
  adaptive protection: a quality drawn per image and per PGD iteration from a set (design; the JPEG paper, arXiv
  2304.02234 §"discussion", asks for robust protections but runs no adaptive one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..transforms import jpeg_roundtrip
from .inputs import as_unit, check_images_u8, check_quality, require
from .settings import JPEG_QUALITIES

__all__ = ["RandomJPEG", "differentiable_jpeg", "jpeg_images"]


def jpeg_images(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Save every image as a JPEG of `quality` with PIL and decode it again (on the CPU, one image at a time).

    images: uint8 (N, C, H, W), C = 1 or 3, any device. quality: an int in 1..100.
    Returns uint8 (N, C, H, W) on the CPU; image i equals `np.asarray(Image.open(<PIL JPEG of image i>))`.
    Raises TypeError for non-uint8 images or a non-int quality, ValueError for a shape that is not (N, 1|3, H, W) or
    a quality outside 1..100.
    """
    images = check_images_u8(images, "images", "jpeg_images")
    quality = check_quality(quality, "jpeg_images")
    hwc = images.detach().cpu().permute(0, 2, 3, 1).numpy()
    out = np.empty_like(hwc)
    for i, img in enumerate(hwc):
        out[i] = jpeg_roundtrip(np.ascontiguousarray(img), quality).reshape(img.shape)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def differentiable_jpeg(x: torch.Tensor, quality) -> torch.Tensor:
    """kornia's differentiable JPEG encode-decode of float images.

    x: float (N, C, H, W) in [0, 1], C = 1 or 3 (a gray image is coded as an RGB image with three equal channels and
    read back as their mean: its chroma is constant, so only the luma is quantised, as in a grayscale JPEG).
    quality: an int in 1..100 for all images, or a float tensor (N,) of per-image qualities in [1, 100].
    Returns float (N, C, H, W), differentiable with respect to x. Raises ImportError naming the `editing` extra when
    kornia is missing, TypeError/ValueError for bad images or qualities.
    """
    enhance = require("kornia.enhance", "differentiable_jpeg")
    as_unit(x.detach(), "x", "differentiable_jpeg")  # checks dtype, shape and range
    n = x.shape[0]
    if isinstance(quality, torch.Tensor):
        q = quality.to(device=x.device, dtype=torch.float32).reshape(-1)
        if q.numel() not in (1, n) or bool(((q < 1) | (q > 100)).any()):
            raise ValueError(f"differentiable_jpeg: quality must be one value or {n} values in [1, 100], got "
                             f"{q.tolist()}")
    else:
        q = torch.tensor([float(check_quality(quality, "differentiable_jpeg"))], device=x.device)
    return _codec(enhance, x, q)


def _codec(enhance, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """kornia's codec without checks (the attack's inner loop: no host sync per iteration)."""
    gray = x.shape[1] == 1
    out = enhance.jpeg_codec_differentiable(x.expand(-1, 3, -1, -1) if gray else x, q)
    return out.mean(1, keepdim=True) if gray else out


class RandomJPEG:
    """The adaptive protection's transform: each call codes every image with `differentiable_jpeg` at a quality
    drawn uniformly (per image) from `qualities` with the attack's generator (expectation over transformation).

    qualities: ints in 1..100 (default: the sweep's `JPEG_QUALITIES`, 100 ... 50). Call: `t(x, generator)` with x
    float (N, C, H, W) in [0, 1]. Raises ValueError for an empty or out-of-range list.
    """

    def __init__(self, qualities: Sequence[int] = JPEG_QUALITIES):
        qs = [check_quality(q, "RandomJPEG", "qualities[]") for q in qualities]
        if not qs:
            raise ValueError("RandomJPEG: qualities is empty; give at least one JPEG quality in 1..100")
        self.qualities = tuple(qs)
        self._enhance = require("kornia.enhance", "RandomJPEG (the adaptive protection)")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        table = torch.tensor(self.qualities, dtype=torch.float32, device=generator.device)
        pick = torch.randint(len(self.qualities), (x.shape[0],), generator=generator, device=generator.device)
        return _codec(self._enhance, x, table[pick].to(x.device))

    def __repr__(self) -> str:
        return f"RandomJPEG(qualities={self.qualities})"
