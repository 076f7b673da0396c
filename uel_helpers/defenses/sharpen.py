"""Sharpening + DCT low-pass filtering (RSK+FF; Kim & Sandoval-Segura, 2024), a training-time defense against CUDA.

CUDA poisons blur every training image with a class-wise 3x3 kernel, so a network learns "which blur" instead
of the object. Sharpening each training image with a plus-shaped kernel undoes part of that blur, and keeping
only the lowest DCT frequencies then removes what the sharpening amplified (noise, and the fine part of the
class-wise shortcut); together they give a large share of the clean accuracy back (paper sheet 04, §3-§5).

- `ssk_kernel`: the static sharpening kernel, centre c and side taps -(c-1)/4 (the taps sum to 1);
- `rsk_kernels`: random sharpening kernels, one per image, drawn from a torch generator on the device (the
  reference draws them with numpy inside DataLoader workers, bug §7.2);
- `sharpen`: all images of a batch at once, each with its own kernel, as one grouped convolution with no
  padding (H x W -> H-2 x W-2, as the reference), then clamp to [0, 1];
- `dct_matrix`, `dct2`, `idct2`, `dct_lowpass`: the orthonormal 2-D DCT-II as two matrix products and the hard
  low-pass filter that keeps the top-left floor(H p/100) x floor(W p/100) block of coefficients (computing
  only that block);
- `sharpen_filter`: the whole RSK+FF / SSK+FF / FF / RSK / SSK transform on a batch.

The defenses `rsk+ff`, `ssk+ff`, `ff`, `rsk` and `ssk` are kind "train": they set `Protocol.sharpen`,
`sharpen_center` and `lowpass_percent`, and the trainer applies the transform to every training batch on the
device, before crop/flip (`uel_helpers.training.augment`). They cannot be a one-off purification: RSK draws a
new kernel for every image at every epoch. The test set is never sharpened or filtered.

The three with a low-pass (`rsk+ff`, `ssk+ff`, `ff`) also turn off the FastNet judges' patch-whitening layer
(`Protocol.whiten = False`; the paper's ResNet-18 has none). That layer is fitted on training patches and
scales each 2x2-patch direction by 1/sqrt(variance + eps); the low-pass removes the high-frequency directions
from every training batch, so the network never learns to use them, and on the unfiltered test images they
arrive amplified (up to ~45x). Measured (500 Fashion-MNIST images/class as RGB, quick judge): clean data +
RSK+FF 25.9% with whitening, 72.7% without; fitting the whitening on filtered images instead gave 24.4%.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
import torch.nn.functional as F

from ..data import ImageSet
from .registry import register

DEFAULT_CENTER = 2.5    # --sharp_center of the reference
DEFAULT_PERCENT = 30.0  # --ff_percentage of the reference
RSK_STD = 0.1           # standard deviation of every RSK tap
MODES = ("none", "ssk", "rsk")


# --- argument checks ---------------------------------------------------------------------------------------

def check_center(center: float) -> float:
    """`center` as a float; it must be a finite real number > 1 (TypeError / ValueError otherwise)."""
    if isinstance(center, bool) or not isinstance(center, numbers.Real):
        raise TypeError(f"sharpening: center must be a real number > 1 (the paper uses 2.5), "
                        f"got {type(center).__name__} {center!r}")
    if not math.isfinite(center) or center <= 1:
        raise ValueError(f"a kernel centre <= 1 does not sharpen (c = 1 is the identity and the side taps "
                         f"-(c-1)/4 turn positive, i.e. blurring, below it); expected center > 1, e.g. 2.5, "
                         f"got {center}")
    return float(center)


def check_percent(percent: float) -> float:
    """`percent` as a float; it must be a real number in (0, 100] (TypeError / ValueError otherwise)."""
    if isinstance(percent, bool) or not isinstance(percent, numbers.Real):
        raise TypeError(f"frequency filter: percent must be a real number in (0, 100] (the paper uses 30), "
                        f"got {type(percent).__name__} {percent!r}")
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise ValueError(f"frequency filter: percent must be in (0, 100] (the share of DCT frequencies kept along "
                         f"each side; the paper uses 30, 100 keeps the image), got {percent}")
    return float(percent)


def kept_block(height: int, width: int, percent: float) -> tuple[int, int]:
    """The (rows, cols) of the low-frequency DCT block that `dct_lowpass` keeps: floor(H p/100), floor(W p/100).

    A block with no row or no column would zero the whole image: that is a ValueError saying the smallest
    percent that keeps something.
    """
    percent = check_percent(percent)
    kh, kw = math.floor(height * percent / 100), math.floor(width * percent / 100)
    if kh < 1 or kw < 1:
        need = 100 / min(height, width)
        raise ValueError(f"frequency filter: percent={percent} keeps no DCT coefficient of a {height}x{width} image "
                         f"(floor(side * percent / 100) = 0); use percent >= {need:.4g} for this size")
    return kh, kw


def _check_batch(x: torch.Tensor, what: str, min_side: int = 1) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a float tensor (N, C, H, W) in [0, 1], got {type(x).__name__}")
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor (N, C, H, W) in [0, 1], "
                         f"got shape {tuple(x.shape)} and dtype {x.dtype}")
    if min(x.shape[-2:]) < min_side:
        raise ValueError(f"{what}: images must be at least {min_side}x{min_side}, got {tuple(x.shape[-2:])}")


def _check_planes(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor (..., H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


# --- sharpening kernels ------------------------------------------------------------------------------------

def _plus_kernels(center: torch.Tensor, sides: torch.Tensor) -> torch.Tensor:
    """(n,) centres and (n, 4) side taps n1..n4 -> (n, 3, 3) kernels [[0,-n1,0], [-n2,c,-n3], [0,-n4,0]]."""
    k = torch.zeros(center.shape[0], 3, 3, dtype=center.dtype, device=center.device)
    k[:, 1, 1] = center
    k[:, 0, 1], k[:, 1, 0], k[:, 1, 2], k[:, 2, 1] = (-sides).unbind(1)
    return k


def ssk_kernel(center: float = DEFAULT_CENTER, *, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The static sharpening kernel (3, 3): centre c, the four side taps -(c-1)/4, corners 0; the taps sum to 1.

    Summing to 1 keeps a flat region's brightness; c = 2.5 (the paper's) gives side taps -0.375.
    """
    c = check_center(center)
    center_t = torch.tensor([c], dtype=torch.float64)
    return _plus_kernels(center_t, ((center_t - 1) / 4).expand(1, 4))[0].to(device=device, dtype=dtype)


def rsk_kernels(n: int, center: float = DEFAULT_CENTER, std: float = RSK_STD, *,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`n` random sharpening kernels (n, 3, 3), one per image: c ~ N(center, std), n1..n4 ~ N((c-1)/4, std).

    The four side taps are drawn independently around that kernel's own (c-1)/4, so the taps sum to 1 only in
    expectation. The draws come from `generator` (on its device; the default torch generator when None) and
    the kernels are returned on `device` (the generator's when None): a seeded generator gives the same
    kernels, and every call draws new ones, as the reference's per-image, per-epoch redraw.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"rsk_kernels: n must be an int >= 0 (one kernel per image), got {n!r}")
    c = check_center(center)
    if isinstance(std, bool) or not isinstance(std, numbers.Real) or not math.isfinite(std) or std < 0:
        raise ValueError(f"rsk_kernels: std must be a real number >= 0 (the paper uses 0.1), got {std!r}")
    gen_device = generator.device if generator is not None else torch.device(device or "cpu")
    z = torch.randn(int(n), 5, generator=generator, device=gen_device, dtype=torch.float32)
    centers = c + std * z[:, 0]
    sides = (centers[:, None] - 1) / 4 + std * z[:, 1:]
    return _plus_kernels(centers, sides).to(device=device if device is not None else gen_device, dtype=dtype)


def sharpen(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Sharpen a batch (N, C, H, W) in [0, 1]: image i with kernels[i] (or one (3, 3) kernel for all), no padding.

    Every channel of an image gets the same kernel. The whole batch is ONE grouped convolution: the batch is
    viewed as (1, N*C, H, W) with N*C groups and weights (N*C, 1, 3, 3), which equals N separate conv2d calls.
    As the reference, there is no padding (the result is (N, C, H-2, W-2)) and the result is clamped to [0, 1].
    Values of `x` are not checked (that would cost a device sync per batch).
    """
    _check_batch(x, "sharpen", min_side=3)
    if not isinstance(kernels, torch.Tensor):
        raise TypeError(f"sharpen: kernels must be a tensor (3, 3) or (N, 3, 3), got {type(kernels).__name__}")
    n, ch, h, w = x.shape
    if kernels.shape == (3, 3):
        kernels = kernels.expand(n, 3, 3)
    if kernels.shape != (n, 3, 3):
        raise ValueError(f"sharpen: kernels must be (3, 3) or (N, 3, 3) with N = {n} images, "
                         f"got {tuple(kernels.shape)}")
    if n == 0:
        return x.new_empty(0, ch, h - 2, w - 2)
    weight = kernels.to(device=x.device, dtype=x.dtype)[:, None].expand(n, ch, 3, 3).reshape(n * ch, 1, 3, 3)
    out = F.conv2d(x.reshape(1, n * ch, h, w), weight, groups=n * ch)
    return out.reshape(n, ch, h - 2, w - 2).clamp_(0.0, 1.0)


# --- DCT low-pass filter -----------------------------------------------------------------------------------
#
# torch has no DCT (torch.fft has only Fourier transforms); PyPI's torch-dct (0.1.6, last released 2022-11) and
# dctorch (0.1.2, 2023-09) are unmaintained, and torchjpeg only does JPEG's 8x8 blocks. For images of a few
# dozen pixels a side, the DCT as a matrix product is exact, fast on any device and needs no dependency.

@functools.lru_cache(maxsize=64)
def _dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * m + 1) * k / (2 * n)) * math.sqrt(2 / n)
    c[0] = math.sqrt(1 / n)
    return c.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
def _dct_rows(n: int, keep: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The first `keep` rows of the DCT matrix (the lowest frequencies), contiguous, cached."""
    return _dct_matrix(n, torch.device("cpu"), torch.float64)[:keep].contiguous().to(device=device, dtype=dtype)


def dct_matrix(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix (n, n): C[k, m] = a_k cos(pi (2m+1) k / (2n)), a_0 = sqrt(1/n), else sqrt(2/n).

    The 2-D DCT of an n x n channel X is C X C^T and its inverse C^T Y C (C is orthogonal). This matrix form
    replaces a library DCT: torch has none (torch.fft has only Fourier transforms) and the torch DCT packages on
    PyPI are unmaintained (torch-dct 0.1.6, last released 2022-11). Built in float64, cached per
    (n, device, dtype): do not modify the returned tensor in place.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"dct_matrix: n must be an int >= 1 (the side of the image), got {n!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dct_matrix: dtype must be a floating torch dtype, got {dtype!r}")
    return _dct_matrix(int(n), torch.device(device if device is not None else "cpu"), dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II of every channel of (..., H, W): C_H X C_W^T (scipy's dctn(norm="ortho") on H, W)."""
    _check_planes(x, "dct2")
    h, w = x.shape[-2:]
    return dct_matrix(h, x.device, x.dtype) @ x @ dct_matrix(w, x.device, x.dtype).T


def idct2(y: torch.Tensor) -> torch.Tensor:
    """Inverse of `dct2`: C_H^T Y C_W on the last two axes."""
    _check_planes(y, "idct2")
    h, w = y.shape[-2:]
    return dct_matrix(h, y.device, y.dtype).T @ y @ dct_matrix(w, y.device, y.dtype)


def dct_lowpass(x: torch.Tensor, percent: float = DEFAULT_PERCENT) -> torch.Tensor:
    """Keep the lowest DCT frequencies of every channel of a batch (N, C, H, W) in [0, 1], then clamp to [0, 1].

    Y = C X C^T, keep Y's top-left floor(H p/100) x floor(W p/100) block (zero the rest), X' = C^T Y C: the
    reference's `get_dct_image` (p = 30 keeps 9 x 9 of a 30 x 30 or a 32 x 32 image). Only the kept block is
    computed: with K_H = C_H[:kh] and K_W = C_W[:kw] (the lowest-frequency rows), Y_kept = K_H X K_W^T and
    X' = K_H^T Y_kept K_W, four batched matrix products that skip the coefficients the mask would zero (about
    2.5x fewer operations than the full transforms at p = 30); `idct2(mask * dct2(x))` gives the same up to
    float rounding.
    """
    _check_batch(x, "dct_lowpass")
    h, w = x.shape[-2:]
    kh, kw = kept_block(h, w, percent)
    rows_h, rows_w = _dct_rows(h, kh, x.device, x.dtype), _dct_rows(w, kw, x.device, x.dtype)
    return (rows_h.T @ (rows_h @ x @ rows_w.T) @ rows_w).clamp_(0.0, 1.0)


# --- the whole transform -------------------------------------------------------------------------------------

def sharpen_filter(x: torch.Tensor, mode: str = "rsk", center: float = DEFAULT_CENTER,
                   percent: float | None = DEFAULT_PERCENT, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSK / SSK sharpening (`mode`, or "none") then the DCT low-pass (`percent`, or None for none) on a batch.

    The reference's order (§5): sharpen (H x W -> H-2 x W-2, clamp), then filter the smaller image (clamp).
    With mode "none" the filter runs on the full-size image (FF alone). RSK kernels are drawn from `generator`
    (moved to the batch's device). Padding back to H x W and the random crop are the trainer's
    (`uel_helpers.training.augment`).
    """
    if mode not in MODES:
        raise ValueError(f"sharpen_filter: unknown mode {mode!r}; expected one of {MODES}")
    if mode == "none" and percent is None:
        raise ValueError("sharpen_filter: nothing to do (mode 'none' and percent None); "
                         "give a sharpening mode or a percent")
    if mode != "none":
        _check_batch(x, "sharpen_filter", min_side=3)
        if mode == "ssk":
            kernels = ssk_kernel(center, device=x.device, dtype=x.dtype)
        else:
            kernels = rsk_kernels(x.shape[0], center, generator=generator, device=x.device, dtype=x.dtype)
        x = sharpen(x, kernels)
    return x if percent is None else dct_lowpass(x, percent)


# --- registry -------------------------------------------------------------------------------------------------

def _changes(train_set: ImageSet, mode: str, center: float, percent: float | None, name: str) -> dict:
    """The Protocol fields for one variant, after checking that it can run on `train_set`'s image size."""
    if not isinstance(train_set, ImageSet):
        raise TypeError(f"{name}: expected an ImageSet training set, got {type(train_set).__name__}")
    center = check_center(center)
    h, w = train_set.image_size
    if mode != "none":
        if min(h, w) < 3:
            raise ValueError(f"{name}: sharpening needs images of at least 3x3 (it trims 1 pixel per side), "
                             f"got {h}x{w}")
        h, w = h - 2, w - 2
    percent = 0.0 if percent is None else float(percent)
    changes = {"sharpen": mode, "sharpen_center": center, "lowpass_percent": percent}
    if percent:
        kept_block(h, w, percent)  # the filter must keep at least one coefficient at this size
        changes["whiten"] = False  # a whitening layer fitted on training patches breaks with a low-pass (docstring)
    return changes


_TRAIN_ONLY = ("applied by the trainer to every training batch, before crop/flip; the test set is never touched")
_NO_WHITEN = ("; the judge is trained without FastNet's patch-whitening layer, which breaks with a low-pass "
              "(see uel_helpers.defenses.sharpen)")


@register("rsk+ff", "RSK+FF (Kim & Sandoval-Segura 2024) against CUDA: a random 3x3 plus-shaped sharpening kernel "
          "per image and epoch (centre c ~ N(2.5, 0.1), side taps -n with n ~ N((c-1)/4, 0.1)), no padding, then a DCT "
          f"low-pass keeping 30% of the frequencies per side; {_TRAIN_ONLY}{_NO_WHITEN}", kind="train",
          protocol_changes={"sharpen": "rsk", "sharpen_center": DEFAULT_CENTER, "lowpass_percent": DEFAULT_PERCENT,
                            "whiten": False})
def rsk_ff(train_set: ImageSet, *, center: float = DEFAULT_CENTER, percent: float = DEFAULT_PERCENT) -> dict:
    """Protocol changes for RSK+FF: random sharpening around `center`, then keep `percent`% of the DCT per side."""
    return _changes(train_set, "rsk", center, check_percent(percent), "rsk+ff")


@register("ssk+ff", "SSK+FF: the static sharpening kernel (centre 2.5, side taps -(c-1)/4, taps sum to 1), no "
          f"padding, then a DCT low-pass keeping 30% of the frequencies per side; {_TRAIN_ONLY}{_NO_WHITEN}",
          kind="train", protocol_changes={"sharpen": "ssk", "sharpen_center": DEFAULT_CENTER,
                                          "lowpass_percent": DEFAULT_PERCENT, "whiten": False})
def ssk_ff(train_set: ImageSet, *, center: float = DEFAULT_CENTER, percent: float = DEFAULT_PERCENT) -> dict:
    """Protocol changes for SSK+FF: static sharpening with `center`, then keep `percent`% of the DCT per side."""
    return _changes(train_set, "ssk", center, check_percent(percent), "ssk+ff")


@register("ff", "FF: the DCT low-pass alone (keep the top-left 30% x 30% block of orthonormal DCT-II "
          f"coefficients, full-size image, clamp); {_TRAIN_ONLY}{_NO_WHITEN}", kind="train",
          protocol_changes={"sharpen": "none", "lowpass_percent": DEFAULT_PERCENT, "whiten": False})
def ff(train_set: ImageSet, *, percent: float = DEFAULT_PERCENT) -> dict:
    """Protocol changes for FF alone: keep `percent`% of the DCT frequencies per side of every training image."""
    changes = _changes(train_set, "none", DEFAULT_CENTER, check_percent(percent), "ff")
    del changes["sharpen_center"]  # not used without sharpening
    return changes


@register("rsk", "RSK alone: random sharpening kernels per image and epoch, no frequency filter (the reference "
          f"crashes on this option, bug §7.1; here it runs); {_TRAIN_ONLY}", kind="train",
          protocol_changes={"sharpen": "rsk", "sharpen_center": DEFAULT_CENTER, "lowpass_percent": 0.0})
def rsk(train_set: ImageSet, *, center: float = DEFAULT_CENTER) -> dict:
    """Protocol changes for RSK alone: random sharpening around `center`, no frequency filter."""
    return _changes(train_set, "rsk", center, None, "rsk")


@register("ssk", "SSK alone: the static sharpening kernel (centre 2.5), no frequency filter (the reference "
          f"crashes on this option, bug §7.1; here it runs); {_TRAIN_ONLY}", kind="train",
          protocol_changes={"sharpen": "ssk", "sharpen_center": DEFAULT_CENTER, "lowpass_percent": 0.0})
def ssk(train_set: ImageSet, *, center: float = DEFAULT_CENTER) -> dict:
    """Protocol changes for SSK alone: static sharpening with `center`, no frequency filter."""
    return _changes(train_set, "ssk", center, None, "ssk")
