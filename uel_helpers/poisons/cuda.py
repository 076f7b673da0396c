"""CUDA: Convolution-based Unlearnable DAtasets (Sadasivan, Soltanolkotabi, Feizi, CVPR 2023, arXiv 2303.04278).

Every class k gets its own random non-negative 3×3 kernel; each training image is blurred with its
class's kernel (depthwise, zero padding 1) and rescaled so that its brightest value is 1. A network
learns the class-wise blur instead of the image content. Reference code: the authors'
`vinusankars/Convolution-based-Unlearnability:final_filter_unlearnable.py@ff58b1c`
(`get_filter_unlearnable`; the same function is in `aseriesof-tubes/RSK:util.py@911680e`).

Re-implemented from a description of that algorithm; nothing is copied from the reference code, whose UMD
non-commercial licence forbids copying ("Recipient will not copy the Software", its README.md).

What matches the reference (`get_filter_unlearnable`) exactly:

- The random stream: numpy's legacy `RandomState(seed)` (the same generator `np.random.seed(seed)`
  seeds), consumed in the reference order: per class k = 0..K−1, 27 draws `uniform(0, bp)` of shape
  (3, 1, 3, 3), then `randint(3)` → r, `randint(3)` → s, and `w[0, 0, r, s] = 1`; channel 0 is copied
  to every channel. Then one `random()` per training image, in dataset order, *also when mix = 1*
  (`random_sample(N)` yields the same N numbers as N successive `np.random.random()` calls).
- Image i is convolved when its draw u_i < mix; otherwise it is kept. z ← z / max(z), the max over the
  whole image (all channels and pixels). Weights and images are float32 as in the reference.
- Storage truncates, `floor(255·z)`, the reference's rule (`clip(x·255, 0, 255).astype(uint8)`); hence
  `rounding="truncate"` is this attack's default, unlike the package-wide "round". Untouched images keep
  their bytes (a uint8 → /255 → ·255 → floor round trip is exact in float32 for all 256 values, so this
  equals the reference).

Package choices (stated):

- Grayscale (1-channel) images use the channel-0 kernel; the RNG still draws all 27 values per class,
  so the kernels are the same ones a 3-channel dataset gets.
- An all-black image (max z = 0) stays black; the reference would divide 0 by 0.
- The convolution is batched (a grouped conv2d with one kernel per image and channel), not one conv
  per image as in the reference; float32 results may differ from it in the last bit, which can move a
  truncated pixel by 1 (the reference's own float32 GPU and CPU results can differ in the same way).
- CUDA has no norm budget and is not additive: the Poison's perturbation is None.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_choice, check_count, check_rate, check_seed
from ..data import ImageSet, quantize
from .base import Poison, check_uint8_imageset, poison_from_images
from .registry import register

_ATTACK = "cuda"


def _check_blur(blur: float) -> float:
    """The blur parameter, under the reference's name bp: a finite number >= 0 (`checks.check_rate`)."""
    return check_rate(blur, "blur (the reference's bp)", _ATTACK, lo=0.0)


def _draw_kernels(rs: np.random.RandomState, num_classes: int, blur: float, channels: int) -> np.ndarray:
    """Draw K kernels from `rs` in the reference's order (`get_filter_unlearnable`); float64 (K, channels, 3, 3)."""
    out = np.empty((num_classes, channels, 3, 3), dtype=np.float64)
    for k in range(num_classes):
        w = rs.uniform(0.0, blur, size=(3, 1, 3, 3))  # 27 draws; channels 1 and 2 are overwritten below
        r = rs.randint(3)
        s = rs.randint(3)
        w[0, 0, r, s] = 1.0
        out[k] = w[0, 0]  # the same kernel on every channel
    return out


def cuda_kernels(num_classes: int, seed: int = 0, blur: float = 0.3, channels: int = 3) -> np.ndarray:
    """The K class-wise CUDA kernels for `seed` and blur parameter bp = `blur`, shape (K, channels, 3, 3).

    `kernels[k, c]` is the 3×3 kernel applied to channel c of class-k images (identical for every c).
    Seed 0, bp 0.3 and K = 10 give the ten CIFAR-10 kernels the reference code draws by default
    (`get_filter_unlearnable` in
    `vinusankars/Convolution-based-Unlearnability:final_filter_unlearnable.py@ff58b1c`; float64, as numpy
    draws them; the convolution casts to float32 like the reference).
    """
    num_classes = check_count(num_classes, "num_classes", _ATTACK)
    check_choice(channels, "channels", (1, 3), _ATTACK)
    rs = np.random.RandomState(check_seed(seed, "seed", _ATTACK, bits=32))
    return _draw_kernels(rs, int(num_classes), _check_blur(blur), channels)


def _convolve_normalise(x_u8: torch.Tensor, kernels: torch.Tensor, rounding: str) -> torch.Tensor:
    """uint8 (n, C, H, W) images and float32 (n, 3, 3) per-image kernels → uint8 blurred, max-normalised."""
    n, c, h, w = x_u8.shape
    x = x_u8.float().div_(255.0)  # ToTensor's float32 image
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # (n·C, 1, 3, 3): one group per image channel
    z = F.conv2d(x.reshape(1, n * c, h, w), weight, padding=1, groups=n * c).reshape(n, c, h, w)
    m = z.amax(dim=(1, 2, 3), keepdim=True)
    z = z.div_(torch.where(m > 0, m, torch.ones_like(m)))  # an all-black image stays black
    return quantize(z.clamp_(0.0, 1.0), rounding)


@register(_ATTACK, "CUDA: class-wise random 3x3 blur, max-normalised (Sadasivan et al., CVPR 2023)",
          "none (class-wise blur)")
def cuda(
    train_set: ImageSet,
    *,
    seed: int = 0,
    blur: float = 0.3,
    mix: float = 1.0,
    rounding: str = "truncate",
    device: torch.device | None = None,
) -> Poison:
    """Poison `train_set` with CUDA (arXiv 2303.04278; `get_filter_unlearnable` of the reference code at
    `vinusankars/Convolution-based-Unlearnability@ff58b1c`): blur each image with its class's kernel.

    seed: the "private key" (numpy legacy RNG); blur: bp, the upper end of the uniform kernel taps;
    mix: the fraction of images poisoned (image i is poisoned when its uniform draw u_i < mix; the
    draw is consumed for every image, also at mix = 1, as in the reference); rounding: "truncate"
    (the reference's storage rule, the default here) or "round" (the package's rule); device: where
    the convolutions run (CPU when None). Returns a Poison whose perturbation is None (not additive);
    `info["kernels"]` holds the (K, 3, 3) kernels and `info["poisoned"]` the number of images changed.
    """
    check_uint8_imageset(train_set, _ATTACK)
    seed = check_seed(seed, "seed", _ATTACK, bits=32)
    blur = _check_blur(blur)
    mix = check_rate(mix, "mix (the fraction of images to poison)", _ATTACK, lo=0.0, hi=1.0)
    rounding = check_choice(rounding, "rounding", ("truncate", "round"), _ATTACK)
    dev = torch.device("cpu") if device is None else torch.device(device)

    n, k = len(train_set), train_set.num_classes
    rs = np.random.RandomState(seed)
    kernels64 = _draw_kernels(rs, k, blur, train_set.channels)
    u = rs.random_sample(n)  # one draw per image, in dataset order (consumed even when mix = 1)
    chosen = torch.from_numpy(u < mix)

    kernels = torch.from_numpy(kernels64[:, 0]).float().to(dev)  # (K, 3, 3) float32, as the reference casts
    images = train_set.images.clone() if not bool(chosen.all()) else torch.empty_like(train_set.images)
    chunk = 8192 if dev.type == "cuda" else 128  # measured on a 2-core CPU: small chunks stay in cache
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        sel = chosen[part]
        if not bool(sel.any()):
            continue
        whole = bool(sel.all())
        x = train_set.images[part] if whole else train_set.images[part][sel]
        y = train_set.labels[part] if whole else train_set.labels[part][sel]
        out = _convolve_normalise(x.to(dev), kernels[y.to(dev)], rounding).cpu()
        if whole:
            images[part] = out
        else:
            images[part][sel] = out  # images[part] is a view: writes in place

    params = {"blur": blur, "mix": float(mix), "rounding": rounding}
    info = {"kernels": kernels64[:, 0].tolist(), "poisoned": int(chosen.sum()), "device": dev.type}
    return poison_from_images(_ATTACK, train_set, images, params, seed, perturbation=None, rounding=rounding,
                              info=info, classwise=True)
