"""Explicit conversions of an `ImageSet` (resize, zero-pad, grayscale <-> RGB): never applied automatically."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import (
    check_bool,
    check_count,
    check_size,
)
from .imageset import (
    ImageSet,
    quantize,
)

# --- explicit conversions ----------------------------------------------------------------------

def resize(ds: ImageSet, size: int | tuple[int, int]) -> ImageSet:
    """Resize every image to `size` (bilinear, antialiased), re-quantised to uint8.

    size: an int (square) or (height, width); TypeError for other types (e.g. 16.5), ValueError below 1.
    """
    hw = check_size(size, "size", "resize")
    if ds.image_size == hw:
        return ds
    x = F.interpolate(ds.to_float(), size=hw, mode="bilinear", align_corners=False, antialias=True)
    return ds.with_images(quantize(x.clamp_(0, 1)), resized_to=list(hw))


def pad(ds: ImageSet, size: int) -> ImageSet:
    """Zero-pad (black) every image, centred, to size x size: e.g. 28x28 Fashion-MNIST to CIFAR's 32x32.

    Raises ValueError when `size` is smaller than an image side (padding never crops) or not an int.
    """
    size = check_count(size, "size", "pad")
    h, w = ds.image_size
    if size < max(h, w):
        raise ValueError(f"pad: size {size} is smaller than the {h}x{w} images; padding never crops "
                         f"(use resize() to shrink)")
    if (h, w) == (size, size):
        return ds
    top, left = (size - h) // 2, (size - w) // 2
    x = F.pad(ds.images, (left, size - w - left, top, size - h - top))
    return ds.with_images(x, padded_to=size)


def to_rgb(ds: ImageSet) -> ImageSet:
    """Repeat a grayscale channel three times (e.g. to feed Fashion-MNIST to CIFAR models)."""
    if ds.channels == 3:
        return ds
    return ds.with_images(ds.images.repeat(1, 3, 1, 1), to_rgb=True)


def to_grayscale(ds: ImageSet, keep_channels: bool = True) -> ImageSet:
    """ITU-R 601 luma; with `keep_channels` the result keeps 3 identical channels (as ISS's Grayscale(3))."""
    keep_channels = check_bool(keep_channels, "keep_channels", "to_grayscale")
    if ds.channels == 1:
        return ds
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = (ds.to_float() * w).sum(1, keepdim=True)
    if keep_channels:
        y = y.repeat(1, 3, 1, 1)
    return ds.with_images(quantize(y.clamp_(0, 1)))
