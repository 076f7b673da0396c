"""Per-batch image operations shared by the trainer and the defenses: the lowest layer above `data`.

Everything here maps images to images (or a batch to a mixed batch) and knows nothing of protocols, models,
attacks or defenses, so the trainer (`training.augment`) and the defenses (`defenses.sharpen`,
`defenses.squeeze`) both import it from below instead of importing each other.

- normalisation: `channel_stats`, `Normalize` (a model's first layer, so trained models take raw [0,1] images);
- augmentation on the device, a whole batch at once: `random_crop`, `random_flip`, `random_cutout`, and batch
  mixing `mixup` (Zhang et al., ICLR 2018, arXiv 1710.09412) and `cutmix` (Yun et al., ICCV 2019,
  arXiv 1905.04899), one mixing ratio per batch as in their reference code;
- sharpening and the DCT low-pass of RSK+FF (Kim & Sandoval-Segura, NeurIPS 2024 AdvML-Frontiers workshop,
  arXiv 2411.01742; code `aseriesof-tubes/RSK@911680e`: `augments.py` `sharpen_image`, `get_dct_image`,
  `get_transform`): `ssk_kernel`, `rsk_kernels`, `sharpen`, `dct_matrix`, `dct2`, `idct2`, `dct_lowpass`,
  `sharpen_filter`;
- the image squeezes of ISS (Liu, Zhao & Larson, ICML 2023, arXiv 2301.13838; code
  `liuzrcc/ImageShortcutSqueezing@005d653`): `luma` (PIL's exact RGB -> L) and `jpeg_roundtrip` (one image
  through PIL's JPEG codec; the codec every JPEG experiment of the package uses).
"""

from __future__ import annotations

import functools
import io
import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

# --- normalisation ---------------------------------------------------------------------------------

def channel_stats(images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (in [0,1] units) of uint8 images, computed in chunks to bound memory."""
    c = images_u8.shape[1]
    s = torch.zeros(c, dtype=torch.float64, device=images_u8.device)
    s2 = torch.zeros(c, dtype=torch.float64, device=images_u8.device)
    for chunk in images_u8.split(8192):
        x = chunk.double() / 255.0
        s += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    n = images_u8.shape[0] * images_u8.shape[2] * images_u8.shape[3]
    mean = s / n
    std = (s2 / n - mean**2).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


class Normalize(nn.Module):
    """(x - mean) / std as the model's first layer, so a trained model takes raw [0,1] images."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1).clone())
        self.register_buffer("std", std.view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# --- on-device batched augmentation ------------------------------------------------------------------

def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of a zero-padded batch (RandomCrop(size, padding) for a whole batch at once)."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # n,1,h,1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # n,1,1,w
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    mask = torch.rand(x.shape[0], generator=gen, device=gen.device).to(x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def random_cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a size x size square at a random centre of each image (DeVries & Taylor's cutout)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=gen, device=gen.device).to(x.device)
    cx = torch.randint(0, w, (n,), generator=gen, device=gen.device).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = ((ys - (cy[:, None] - size // 2)) >= 0) & ((ys - (cy[:, None] - size // 2)) < size)
    in_x = ((xs - (cx[:, None] - size // 2)) >= 0) & ((xs - (cx[:, None] - size // 2)) < size)
    mask = in_y[:, :, None] & in_x[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)


# --- batch mixing: CutMix / MixUp -----------------------------------------------------------------------
#
# One mixing ratio per batch as in the papers' reference code. APBench calls kornia's RandomCutMixV2 /
# RandomMixUpV2 with default settings instead, which draw the ratio per sample (uniformly, i.e. Beta(1, 1),
# our default mix_alpha).

MixedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]


def _host_rng(gen: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded from `gen`: Beta draws and box corners stay deterministic for the run's seed."""
    seed = torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)
    return np.random.default_rng(int(seed))  # one host sync per mixed batch


def _partner(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random permutation of the batch: sample i is mixed with sample perm[i]."""
    return torch.randperm(n, generator=gen, device=gen.device).to(device)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator) -> MixedBatch:
    """MixUp (Zhang et al. 2018): lam*x + (1-lam)*x[perm], lam ~ Beta(alpha, alpha); returns (x, y_a, y_b, lam)."""
    lam = float(_host_rng(gen).beta(alpha, alpha))
    perm = _partner(x.shape[0], gen, x.device)
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def cutmix_box(h: int, w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Yun et al.'s rand_bbox: a box of area ~(1-lam)*h*w at a uniform centre, clipped; (y1, y2, x1, x2)."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    return (min(max(cy - ch // 2, 0), h), min(max(cy + ch // 2, 0), h),
            min(max(cx - cw // 2, 0), w), min(max(cx + cw // 2, 0), w))


def cutmix(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator) -> MixedBatch:
    """CutMix (Yun et al. 2019): paste a box of x[perm] into x; lam = 1 - box area / image area; (x, y_a, y_b, lam)."""
    rng = _host_rng(gen)
    h, w = x.shape[-2:]
    y1, y2, x1, x2 = cutmix_box(h, w, float(rng.beta(alpha, alpha)), rng)
    perm = _partner(x.shape[0], gen, x.device)
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    return out, y, y[perm], 1.0 - (y2 - y1) * (x2 - x1) / (h * w)


def mixed_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits: torch.Tensor,
               y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    """lam*loss(y_a) + (1-lam)*loss(y_b), the mixing loss; exactly loss(y_a) when lam == 1."""
    if lam == 1.0:
        return loss_fn(logits, y_a)
    return lam * loss_fn(logits, y_a) + (1.0 - lam) * loss_fn(logits, y_b)


def mixed_correct(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    """Correct predictions on a mixed batch, weighted lam/(1-lam) by the two labels (the usual mixing accuracy)."""
    pred = logits.argmax(1)
    if lam == 1.0:
        return (pred == y_a).sum().float()
    return lam * (pred == y_a).sum().float() + (1.0 - lam) * (pred == y_b).sum().float()


# --- sharpening and the DCT low-pass (RSK+FF) -----------------------------------------------------------

DEFAULT_CENTER = 2.5    # --sharp_center of the reference
DEFAULT_PERCENT = 30.0  # --ff_percentage of the reference
RSK_STD = 0.1           # standard deviation of every RSK tap
MODES = ("none", "ssk", "rsk")


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


def sharpen_filter(x: torch.Tensor, mode: str = "rsk", center: float = DEFAULT_CENTER,
                   percent: float | None = DEFAULT_PERCENT, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSK / SSK sharpening (`mode`, or "none") then the DCT low-pass (`percent`, or None for none) on a batch.

    The reference's order (`get_transform` in aseriesof-tubes/RSK@911680e): sharpen (H x W -> H-2 x W-2,
    clamp), then filter the smaller image (clamp).
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


# --- ISS squeezes ----------------------------------------------------------------------------------------

LUMA_CHUNK = 4096  # images per batch: bounds the int32 temporaries of `luma` on large sets


def luma(images: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> "L" on uint8 (N, 3, H, W) -> (N, 1, H, W): (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
    for i in range(0, images.shape[0], LUMA_CHUNK):
        x = images[i:i + LUMA_CHUNK].to(torch.int32)
        y = (x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 0x8000) >> 16
        out[i:i + LUMA_CHUNK, 0] = y.to(torch.uint8)
    return out


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """One uint8 image (H, W, 3) or (H, W[, 1]) through PIL's JPEG encoder and decoder at `quality`."""
    buf = io.BytesIO()
    Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img).save(
        buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded)

