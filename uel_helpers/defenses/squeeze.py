"""Image shortcut squeezing (ISS; Liu, Zhao & Larson, ICML 2023): grayscale, JPEG and bit-depth reduction.

Simple compressions of the *training* images remove the shortcuts that availability poisons plant:
grayscale removes colour shortcuts (it beats EM, REM, DC), low-quality JPEG removes high-frequency ones
(TAP, SEP, AR, OPS), bit-depth reduction (BDR) removes small-amplitude ones. APBench applies them as
`RandomPosterize(bits=2, p=1)`, `Grayscale(3)` and JPEG quality 10, in the order BDR -> Gray -> JPEG,
to the training set only (APBench, Qin et al., TMLR 2024, `lafeat/apbench@9a6fb91`; ISS
`liuzrcc/ImageShortcutSqueezing@005d653`). Each function here reproduces the PIL /
torchvision transform bit for bit on uint8 images:

- `grayscale`: PIL's `Image.convert("L")` (ITU-R 601-2 luma, L = R·299/1000 + G·587/1000 + B·114/1000, which
  Pillow computes in 16-bit fixed point with rounding), replicated to 3 channels like `Grayscale(3)`;
- `jpeg`: PIL's `save(format="JPEG", quality=q)` then `open`, as ISS and APBench do (they also pass
  `optimice=True`, a misspelling PIL ignores; optimising the Huffman tables would not change the pixels
  anyway). PIL, not `torchvision.io.encode_jpeg/decode_jpeg`: those gave identical bytes and pixels and
  were ~1.7x faster, but torchvision 0.29 deprecates them (DeprecationWarning, removal announced);
- `bdr`: `RandomPosterize(bits, p=1)`: keep the top `bits` bits of every 8-bit value.
"""

from __future__ import annotations

import numpy as np
import torch

from ..checks import check_count
from ..data import ImageSet
from ..transforms import jpeg_roundtrip, luma  # re-exported: they lived here before transforms.py
from .registry import register

__all__ = ["JPEG_QUALITY_RANGE", "bdr", "grayscale", "iss_gray", "iss_gray_jpeg", "iss_jpeg", "jpeg", "jpeg_roundtrip",
           "luma"]

JPEG_QUALITY_RANGE = (1, 100)


def _check_imageset(ds: ImageSet, defense: str) -> None:
    if not isinstance(ds, ImageSet):
        raise TypeError(f"{defense}: expected an ImageSet of uint8 images (load_dataset(...)), got {type(ds).__name__}")


def _tagged(ds: ImageSet, images: torch.Tensor, tag: str) -> ImageSet:
    """The purified set: same labels and classes, name `<name>+<tag>`, the tag appended to meta['defenses']."""
    return ds.with_images(images, name=f"{ds.name}+{tag}", defenses=[*ds.meta.get("defenses", []), tag])


@register("grayscale", "ISS's grayscale (APBench 'Gray'): ITU-R 601-2 luma exactly as PIL's convert('L'), "
          "kept as 3 identical channels like torchvision Grayscale(3); removes colour shortcuts (EM, REM, DC)")
def grayscale(ds: ImageSet) -> ImageSet:
    """ISS grayscale: PIL-exact luma, replicated to the input's channel count, to squeeze colour shortcuts."""
    _check_imageset(ds, "grayscale")
    if ds.channels == 1:
        out = _tagged(ds, ds.images.clone(), "gray")
        out.meta["note"] = "grayscale: the input was already 1-channel; images returned unchanged"
        return out
    return _tagged(ds, luma(ds.images).repeat(1, 3, 1, 1), "gray")


@register("jpeg", "ISS's JPEG compression (APBench 'JPEG'), quality 10 by default: every training image "
          "saved and reopened with PIL at that quality (1-channel images as grayscale JPEG); removes "
          "high-frequency shortcuts (TAP, SEP, AR, OPS)")
def jpeg(ds: ImageSet, *, quality: int = 10) -> ImageSet:
    """ISS JPEG: PIL save(quality=`quality`, an int in 1..100) + open of every image, to squeeze fine patterns.

    Quality 0 is refused (libjpeg silently treats it as 1); above 95 libjpeg nearly stops quantising
    (PIL advises against it) but it is allowed for quality sweeps.
    """
    _check_imageset(ds, "jpeg")
    quality = check_count(quality, "quality", "jpeg", lo=JPEG_QUALITY_RANGE[0], hi=JPEG_QUALITY_RANGE[1])  # ISS: 10
    hwc = ds.images.permute(0, 2, 3, 1).numpy()
    out = np.empty_like(hwc)
    for i, img in enumerate(hwc):
        out[i] = jpeg_roundtrip(img, quality).reshape(img.shape)
    return _tagged(ds, torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), f"jpeg{quality}")


@register("bdr", "bit-depth reduction (APBench 'BDR', part of ISS's study), 2 bits by default: "
          "torchvision RandomPosterize(bits, p=1), keep the top `bits` bits of each 8-bit value")
def bdr(ds: ImageSet, *, bits: int = 2) -> ImageSet:
    """Bit-depth reduction: keep the top `bits` (1..8) bits of every value, to squeeze small-amplitude noise."""
    _check_imageset(ds, "bdr")
    bits = check_count(bits, "bits", "bdr", lo=1, hi=8)  # APBench uses 2; 8 keeps the images as they are
    mask = (0xFF << (8 - bits)) & 0xFF
    return _tagged(ds, ds.images & mask, f"bdr{bits}")


@register("iss-gray", "ISS's grayscale recipe under its paper's name: the same as 'grayscale'")
def iss_gray(ds: ImageSet) -> ImageSet:
    """ISS-Gray (alias of `grayscale`), named as in the ISS paper."""
    return grayscale(ds)


@register("iss-jpeg", "ISS's JPEG recipe under its paper's name: the same as 'jpeg' (quality 10 by default)")
def iss_jpeg(ds: ImageSet, *, quality: int = 10) -> ImageSet:
    """ISS-JPEG (alias of `jpeg`), named as in the ISS paper."""
    return jpeg(ds, quality=quality)


@register("iss-gray-jpeg", "ISS's combination: grayscale then JPEG (quality 10 by default), in APBench's "
          "order BDR -> Gray -> JPEG; the JPEG of a 3-channel set is a colour JPEG of the 3 gray channels")
def iss_gray_jpeg(ds: ImageSet, *, quality: int = 10) -> ImageSet:
    """ISS Gray + JPEG: grayscale, then JPEG at `quality`, to squeeze colour and high-frequency shortcuts at once."""
    _check_imageset(ds, "iss-gray-jpeg")
    check_count(quality, "quality", "iss-gray-jpeg", lo=JPEG_QUALITY_RANGE[0], hi=JPEG_QUALITY_RANGE[1])
    return jpeg(grayscale(ds), quality=quality)
