"""Autoregressive (AR) perturbations: Sandoval-Segura et al., "Autoregressive Perturbations for Data
Poisoning", NeurIPS 2022 (arXiv 2206.03693).

Every class k owns a causal AR process b_k, one 3×3 filter per channel whose bottom-right tap is 0 and
whose other 8 taps sum to 1. A perturbation is made by drawing a fresh N(0,1) start signal for each
image, running the class's recursion over the pixels (rows top to bottom, columns left to right)

    x[c, i+2, j+2] = Σ_{u,v} b_k[c, u, v] · x[c, i+u, j+v]        (cross-correlation, b[c,2,2] = 0)

cropping the top-left `crop` rows and columns, and scaling to an exact Lp norm (L2 = 1 for 32×32×3 in
the paper, or L∞ = 8/255). Each class's "matching filter" (b_k with the bottom-right tap set to −1)
then answers ~0 on its own class's noise and strongly on every other class's: a shortcut a network
learns at once.

Registered attacks: `ar` (L2, ε = 1 for 3×32×32, the paper's recommended threat model) and `ar-linf`
(L∞, ε = 8/255). `generate_ar` is the batched generator, `find_ar_coefficients` the coefficient search
of the paper, `matching_filter`/`filter_response` the detector used by both and by the notebook.
Diverging processes are refused by a scale-free guard (NaN/Inf, growth per recursion step, own-filter
response; see `_guard`), so the paper's larger settings (96 px, 224 px) run with the defaults.

Licence of the shipped data: AR coefficients from psandovalsegura/autoregressive-poisoning,
Sandoval-Segura et al., NeurIPS 2022. They are MIT-licensed, "Copyright (c) 2022 Pedro Sandoval"; the
full notice ships beside them in `uel_helpers/resources/AR_COEFFICIENTS_LICENSE.txt`. The CIFAR-100 set
is the fixed one (process 9 replaced upstream in commit 424cc2e; the old one diverges).

Speed: the reference generates one image at a time with a Python loop over pixels (~0.1 s per CIFAR
image). Here all images of a chunk are generated at once, and the pixel loop runs over anti-diagonals:
every tap of pixel (r, c) lies at a smaller r + c, so all pixels of one anti-diagonal depend only on
earlier anti-diagonals and are computed together. The arithmetic per pixel is exactly the sequential
recursion (same 8-term sum), only the order of independent pixels changes. The field is kept as
(rows, cols, images·channels) so that each tap of an anti-diagonal is one strided view and one
multiply-add over all images; on a CPU, independent chunks run on separate threads. 50,000 CIFAR images
take about 2.3 s of CPU time, i.e. ~1.2-1.5 s of wall time on two free cores (4-5 s were measured on a
2-core machine shared with other jobs, load ~5).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import check_choice, check_count, check_number, check_rate, check_seed, check_size
from ..data import ImageSet
from ..device import make_generator, pick_device
from .base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from .registry import register

RELEASED_SETS = ("cifar10", "cifar100")
COEFFICIENT_CHOICES = ("auto", "cifar10", "cifar100", "find")
MAX_GROWTH = 1.15  # growth per recursion step above which a process counts as diverging; see _guard
GROWTH_SLACK = 10.0  # allowance for the first steps' transient (a 3x3 field can amplify its start values x2.2)
OWN_OTHER_LIMIT = 1e-2  # median own/other filter response of a class's generated noise above which it is refused
DIAGNOSTIC_IMAGES = 256  # images on which the attack measures the own/other diagnostic
_DIAG_BYTES = 128 * 2**20  # temporaries of the own/other diagnostic per chunk (see _diagnostic_chunks)
FINDER_NORM_BOUND = 50.0  # the finder's --gen_norm_upper_bound: raw L2 norm limit of an acceptable process
DRAW_BLOCK = 256  # images whose start signals are drawn in one call: the bytes do not depend on the chunk size
_CPU_FIELD_FLOATS = 8 * 2**20  # ~32 MB working field per chunk on CPU (stays in cache-friendly sizes)
_GPU_FIELD_FLOATS = 64 * 2**20  # ~256 MB per chunk on a GPU (fits a free Colab T4 with room to spare)
_TAPS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1))  # the 8 causal taps, (2,2) excluded


# --- coefficients -----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _released() -> dict[str, np.ndarray]:
    path = resources.files("uel_helpers") / "resources" / "ar_coefficients.npz"
    with resources.as_file(path) as real, np.load(real, allow_pickle=False) as z:
        return {name: np.array(z[name], dtype=np.float64) for name in RELEASED_SETS}


def released_coefficients(name: str) -> np.ndarray:
    """The AR processes released with the paper: "cifar10" (10, 3, 3, 3) or "cifar100" (100, 3, 3, 3).

    A float64 copy (the caller may modify it). The CIFAR-10 set also served SVHN and STL-10, the
    CIFAR-100 set ImageNet-100. Source and MIT licence: see this module's docstring.
    """
    key = str(name).lower().replace("-", "")
    if key not in RELEASED_SETS:
        raise ValueError(f"no released AR coefficient set {name!r}; expected one of {RELEASED_SETS}")
    return _released()[key].copy()


def check_coefficients(coefficients, channels: int | None = None) -> torch.Tensor:
    """Validate AR coefficients and return them as a float64 tensor of shape (K, C, 3, 3).

    Each process needs a zero bottom-right tap (the recursion never reads the pixel it writes) and
    finite values. Channel sums of 1 are the paper's convention but are not required here.
    """
    if isinstance(coefficients, str):
        raise TypeError("check_coefficients takes an array; use released_coefficients(name) for a named set")
    if isinstance(coefficients, torch.Tensor):
        b = coefficients.detach().cpu()
    else:
        try:
            b = torch.from_numpy(np.array(coefficients, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"AR coefficients must be an array of shape (K, C, 3, 3), got "
                            f"{type(coefficients).__name__}") from err
    if b.dtype.is_complex or b.dtype == torch.bool:
        raise TypeError(f"AR coefficients must be real numbers, got dtype {b.dtype}")
    b = b.to(torch.float64)
    if b.ndim != 4 or tuple(b.shape[2:]) != (3, 3) or b.shape[0] < 1:
        raise ValueError(f"AR coefficients must have shape (K, C, 3, 3) (one 3×3 filter per class and channel), "
                         f"got {tuple(b.shape)}")
    if channels is not None and b.shape[1] != channels:
        raise ValueError(f"AR coefficients have {b.shape[1]} channel(s) but the images have {channels}; "
                         f"find matching ones with find_ar_coefficients(K, channels={channels})")
    if not torch.isfinite(b).all():
        bad = sorted({int(k) for k in torch.nonzero(~torch.isfinite(b))[:, 0]})
        raise ValueError(f"AR coefficients of class(es) {bad} contain NaN or Inf")
    if (b[:, :, 2, 2] != 0).any():
        bad = sorted({int(k) for k in torch.nonzero(b[:, :, 2, 2] != 0)[:, 0]})
        raise ValueError(f"AR coefficients of class(es) {bad} have a non-zero bottom-right tap b[c,2,2]; "
                         "it must be 0 (that pixel is the one the recursion writes)")
    return b


def matching_filter(b) -> torch.Tensor:
    """The matching filter of AR process(es) `b`: a copy with the bottom-right tap set to −1.

    b: (C, 3, 3) for one process or (K, C, 3, 3) for K. Returns (1, C, 3, 3) or (K, C, 3, 3), float64
    (conv2d weights, one output channel per process). Its taps sum to 0 per channel, and its
    convolution with noise of the same process is 0 wherever the 3×3 window was generated.
    """
    t = torch.as_tensor(b) if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b, dtype=np.float64))
    t = t.detach().to(torch.float64).clone()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or tuple(t.shape[2:]) != (3, 3):
        raise ValueError(f"AR coefficients must have shape (C, 3, 3) or (K, C, 3, 3), got {tuple(t.shape)}")
    t[:, :, 2, 2] = -1.0
    return t


def filter_response(f: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """R(f, s) = Σ ReLU(conv2d_valid(s, f)) over all output positions; the conv sums over channels.

    f: (C, 3, 3) or (K, C, 3, 3) matching filter(s); signal: (C, H, W) or (N, C, H, W).
    Returns (N, K), with the N and/or K axis dropped where that input had no batch axis.
    The response of a class's own filter on its noise is ~0; other filters respond strongly.
    """
    f = torch.as_tensor(f)
    signal = torch.as_tensor(signal)
    f_single, s_single = f.ndim == 3, signal.ndim == 3
    f4 = f[None] if f_single else f
    s4 = signal[None] if s_single else signal
    if f4.ndim != 4 or s4.ndim != 4 or f4.shape[1] != s4.shape[1]:
        raise ValueError(f"filter_response needs filters (K, C, 3, 3) and signals (N, C, H, W) with the same C; "
                         f"got {tuple(f.shape)} and {tuple(signal.shape)}")
    dtype = torch.promote_types(torch.promote_types(f4.dtype, s4.dtype), torch.float32)
    out = F.conv2d(s4.to(dtype), f4.to(device=s4.device, dtype=dtype)).clamp_min_(0).sum((2, 3))
    if f_single:
        out = out[:, 0]
    if s_single:
        out = out[0]
    return out


# --- batched generation -------------------------------------------------------------------------------

class ARNoise(NamedTuple):
    """Output of `generate_ar`: δ (N, C, H, W) float32 on the CPU, scaled to ‖δ‖_p = eps; the raw norms
    before scaling, `raw_norm` in the chosen p and `raw_l2` in L2 (what the finder uses); `linf`, each
    scaled δ's max |value| (for L2 = 1 on CIFAR, ≈ 0.09: about 23/255); and `growth`, each pattern's growth per
    recursion step, (max |raw pattern| / max |start values|)^(1 / steps) (what the divergence guard uses;
    the released processes stay below 1.05 at every size measured, 8 to 448 px; see `_guard`)."""

    delta: torch.Tensor
    raw_norm: torch.Tensor
    raw_l2: torch.Tensor
    linf: torch.Tensor
    growth: torch.Tensor


def _run_recursion(field: torch.Tensor, taps: torch.Tensor) -> None:
    """Run the AR recursion in place over a field (Sh, Sw, M) whose first two rows and columns hold the
    start values; `taps` (3, 3, M) holds each column's (image·channel's) coefficients.

    Pixels are visited by anti-diagonal d = (r−2) + (c−2): each of the 8 taps of (r, c) lies on an earlier
    anti-diagonal, so one diagonal is computed at once, exactly as the sequential loop would.
    """
    sh, sw, m = field.shape
    s0, s1, s2 = field.stride()
    base = field.storage_offset()
    step = (s0 - s1, s2)  # one anti-diagonal step (one row down, one column left); then the M columns
    for d in range((sh - 2) + (sw - 2) - 1):
        r_lo, r_hi = max(0, d - (sw - 3)), min(d, sh - 3)
        shape = (r_hi - r_lo + 1, m)
        # the pixels (r_lo + t + du, d - r_lo - t + dv), t = 0..len-1, of tap (du, dv): a strided view
        corner = base + r_lo * s0 + (d - r_lo) * s1
        out = field.as_strided(shape, step, corner + 2 * s0 + 2 * s1)
        for t, (u, v) in enumerate(_TAPS):
            src = field.as_strided(shape, step, corner + u * s0 + v * s1)
            if t == 0:
                torch.mul(src, taps[u, v], out=out)
            else:
                out.addcmul_(src, taps[u, v])


def _draw_seeds(gen: torch.Generator, n: int, channels: int, sh: int, sw: int,
                device: torch.device) -> torch.Tensor:
    """The N(0,1) start values of n images: (2·Sw + 2·(Sh−2), n·C), drawn in fixed blocks of DRAW_BLOCK images.

    Only the first two rows and columns are drawn: the rest of the start signal is overwritten by the
    recursion before it is ever read (b[c,2,2] = 0), so drawing it would change nothing but the time.
    """
    n_seed = 2 * sw + 2 * (sh - 2)
    parts = [torch.randn(n_seed, min(DRAW_BLOCK, n - i) * channels, generator=gen, device=device)
             for i in range(0, n, DRAW_BLOCK)]
    return torch.cat(parts, 1) if len(parts) > 1 else parts[0]


def _chunk_images(device: torch.device, channels: int, sh: int, sw: int) -> int:
    """Images per chunk: a multiple of DRAW_BLOCK whose field fits the per-device working-memory target."""
    target = _CPU_FIELD_FLOATS if device.type == "cpu" else _GPU_FIELD_FLOATS
    return max(1, target // (sh * sw * channels * DRAW_BLOCK)) * DRAW_BLOCK


def _norms(d: torch.Tensor, n: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image raw L2 and L∞ norms of a cropped field (H, W, n·C), overflow-safe."""
    linf = d.abs().amax((0, 1)).view(n, channels).amax(1)
    l2 = d.square().sum((0, 1)).view(n, channels).sum(1).sqrt_()
    bad = torch.nonzero(~torch.isfinite(l2) & torch.isfinite(linf))[:, 0]
    if len(bad):  # squares overflow float32 long before the values do: redo those images in float64
        cols = (bad[:, None] * channels + torch.arange(channels, device=d.device)).reshape(-1)
        l2[bad] = d[:, :, cols].double().square().sum((0, 1)).view(-1, channels).sum(1).sqrt_().float()
    return l2, linf


def _raw_chunk(w: torch.Tensor, sh: int, sw: int, crop: int, seeds: torch.Tensor | None = None,
               start: torch.Tensor | None = None) -> torch.Tensor:
    """Generate the raw (unscaled) field of one chunk and return its crop as (H, W, n·C).

    w: per-image coefficients (n, C, 3, 3) float32 on the compute device; start values from `seeds`
    (see _draw_seeds) or from an explicit start signal `start` (n, C, Sh, Sw).
    """
    n, c = w.shape[:2]
    m = n * c
    field = torch.empty(sh, sw, m, dtype=torch.float32, device=w.device)
    if start is not None:
        field[:2] = start[:, :, :2, :].permute(2, 3, 0, 1).reshape(2, sw, m)
        field[2:, :2] = start[:, :, 2:, :2].permute(2, 3, 0, 1).reshape(sh - 2, 2, m)
    else:
        assert seeds is not None
        field[:2] = seeds[: 2 * sw].view(2, sw, m)
        field[2:, :2] = seeds[2 * sw:].view(sh - 2, 2, m)
    taps = w.permute(2, 3, 0, 1).reshape(3, 3, m).contiguous()
    _run_recursion(field, taps)
    return field[crop:, crop:]


def _as_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    return check_size(image_size, "image_size")


def _check_crop(crop: int, h: int, w: int) -> int:
    crop = check_count(crop, "crop (the paper uses 4 for CIFAR)", lo=0)
    if min(h, w) + crop < 3:
        raise ValueError(f"the generated field {h + crop}×{w + crop} is too small for a 3×3 AR process; "
                         "use a larger crop or larger images")
    return crop


def _check_limit(value, name: str, who: str, lo: float) -> float:
    """A guard limit: a number above `lo`, or inf (no limit)."""
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return check_rate(value, name, who, lo=lo, lo_open=True)


def _check_p(p) -> float:
    if p in ("inf", "linf") or p == math.inf or p == 0:  # the reference uses --p_norm 0 for L∞
        return math.inf
    if p == 2 or p == "l2":
        return 2.0
    raise ValueError(f"p must be 2 or inf (float('inf')), got {p!r}")


def _class_label(k: int, class_names: Sequence[str] | None) -> str:
    return f"class {k} ({class_names[k]!r})" if class_names is not None and k < len(class_names) else f"class {k}"


def recursion_steps(sh: int, sw: int) -> int:
    """The depth of the AR recursion on an Sh × Sw field: the number of anti-diagonals it computes, one after the
    other ((Sh − 2) + (Sw − 2) − 1; every tap of a pixel lies on an earlier anti-diagonal)."""
    return max(1, (sh - 2) + (sw - 2) - 1)


def growth_per_step(linf: torch.Tensor, start_max: torch.Tensor, steps: int) -> torch.Tensor:
    """Each pattern's growth per recursion step: (max |raw pattern| / max |start values|)^(1 / steps), float64.

    A linear recursion multiplies its values by about ρ per step, ρ being a property of the process alone, so this
    does not depend on the image size (the released processes: 0.97-1.05 from 8 to 448 px). NaN where the pattern
    is not finite.
    """
    ratio = linf.double() / start_max.double().clamp_min(torch.finfo(torch.float64).tiny)
    return ratio.clamp_min(torch.finfo(torch.float64).tiny).log().div(steps).exp()


# Why the guard looks at the growth per step and not at the raw norm. The recursion is linear: after d anti-diagonal
# steps a process's values have grown like ρ^d, where ρ depends on its coefficients only. The released processes are
# marginal, ρ ≈ 1.00-1.05, so their raw norms legitimately grow with the field: raw L2 median 37 at 32 px, ~350 at
# 96 px, ~2e4 at 224 px, up to ~1e9 (all measured), and their noise is still exact (own/other response ~6e-8).
# Any fixed norm limit (the former 1e3) is therefore a guess about the image size. A diverging process (taps summing
# to 2, random taps without the finder's test, the old CIFAR-100 process 9 with a tap of 2.35e7) grows by ρ >= 1.3 per
# step at every size: its pattern is all in the last few anti-diagonals (no longer a texture), and it overflows
# float32 within a few hundred steps. So the guard refuses (1) any NaN/Inf (overflow: the recursion ran away), and
# (2) a growth above `max_growth` per step (default 1.15, x1.1 above the largest released rate; x1.15 per step is
# x1e6 over 100 steps), after allowing a constant factor GROWTH_SLACK for the first steps' transient, and
# (3) in the registered attacks, noise that no longer answers ~0 to its own matching filter (`_check_separable`:
# the recursion lost its precision, so the classes are no longer told apart by their filters). An optional
# `max_raw_norm` keeps the old absolute test for whoever wants one (e.g. the finder's 50 at 36×36).
def _guard(raw_l2: torch.Tensor, linf: torch.Tensor, start_max: torch.Tensor, labels: torch.Tensor, steps: int,
           max_growth: float, max_raw_norm: float | None, class_names: Sequence[str] | None) -> torch.Tensor:
    """Refuse diverging or non-finite processes, naming the class (see the comment above); returns the growth per
    step of every pattern (float32)."""
    growth = growth_per_step(linf, start_max, steps)
    finite = torch.isfinite(raw_l2) & torch.isfinite(linf)
    allowed = GROWTH_SLACK ** (1.0 / steps) * max_growth  # (ratio / slack)^(1/steps) > max_growth, rearranged
    fast = finite & (growth > allowed)
    big = finite & (raw_l2 > max_raw_norm) if max_raw_norm is not None else torch.zeros_like(finite)
    bad = ~finite | fast | big
    if not bad.any():
        return growth.float()
    i = int(torch.nonzero(bad)[0, 0])
    k = int(labels[i])
    classes = sorted({int(c) for c in labels[bad].tolist()})
    failing = f"classes failing in this chunk: {classes[:10]}{' ...' if len(classes) > 10 else ''}"
    cause = ("Its coefficients are unstable (like the old CIFAR-100 process 9, b[1,0,0] ≈ 2.35e7, or taps that sum "
             "to much more than 1); use the released sets or find_ar_coefficients(...)")
    if not finite[i]:
        raise ValueError(
            f"the AR process of {_class_label(k, class_names)} diverges: its pattern overflows to NaN or Inf in "
            f"float32 before scaling ({failing}). {cause}; released processes overflow only on fields of about a "
            "thousand pixels a side, so for such images generate smaller noise and upsample it")
    if fast[i]:
        raise ValueError(
            f"the AR process of {_class_label(k, class_names)} diverges: its pattern grows by ×{float(growth[i]):.3g} "
            f"per recursion step ({float(linf[i] / start_max[i].clamp_min(1e-30)):.3g}× over {steps} steps; limit "
            f"×{max_growth:g} per step, the released processes grow by at most ×1.05; {failing}). {cause}, or raise "
            "max_growth if you mean to use it")
    raise ValueError(
        f"the AR process of {_class_label(k, class_names)} exceeds max_raw_norm: its pattern has a raw L2 norm of "
        f"{float(raw_l2[i]):.3g} before scaling (limit {max_raw_norm:g}; {failing}). Raw norms grow with the image "
        "size for stable processes too; leave max_raw_norm=None to rely on the growth guard (max_growth)")


def generate_ar(
    coefficients,
    labels,
    image_size: int | Sequence[int] = 32,
    *,
    crop: int = 4,
    eps: float = 1.0,
    p: float = 2,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    start: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    max_growth: float = MAX_GROWTH,
    max_raw_norm: float | None = None,
    class_names: Sequence[str] | None = None,
    quiet: bool = True,
) -> ARNoise:
    """Batched AR perturbations: one fresh start signal per image, driven by its class's process (§2.3, §2.5).

    coefficients: (K, C, 3, 3) processes (see check_coefficients); labels: (N,) ints in [0, K).
    image_size: H or (H, W) of the result; the field generated is (H + crop) × (W + crop), and the top-left
    `crop` rows and columns are dropped (the first 2 are the i.i.d. start values, the rest burn-in).
    eps, p: each δ_i is scaled to ‖δ_i‖_p = eps exactly (p = 2 or inf), before any clipping.
    Randomness: `generator` (on `device`), or a new one from `seed`, or an explicit `start` signal
    (N, C, H + crop, W + crop) whose first two rows and columns are used (for tests and figures).
    The same seed gives the same bytes on the same device, whatever the chunk size.
    Divergence guard (ValueError naming the class): a pattern with NaN/Inf (float32 overflow), or one growing by
    more than `max_growth` per recursion step (default 1.15; the released processes grow by at most ~1.05 at any
    size, diverging ones by 1.3 and more; inf turns this test off), or, when given, a raw L2 norm above
    `max_raw_norm` (default None: no absolute limit, since raw norms of stable processes grow with the field:
    ~40 at 32 px, ~1e9 at 224 px). Scale-free, so the paper's 96 px and 224 px settings run with the defaults.
    Returns ARNoise(delta (N, C, H, W) float32 on the CPU, raw p-norms (N,), raw L2 norms (N,), max |δ| (N,),
    growth per step (N,)).
    """
    dev = pick_device(device if device is not None else "auto")
    b = check_coefficients(coefficients)
    k_count, channels = b.shape[:2]
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).cpu()
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer array, got {tuple(labels.shape)} of {labels.dtype}")
    labels = labels.to(torch.int64)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= k_count):
        raise ValueError(f"labels must lie in [0, {k_count}) for {k_count} AR processes, "
                         f"got [{int(labels.min())}, {int(labels.max())}]")
    h, w = _as_size(image_size)
    crop = _check_crop(crop, h, w)
    pnorm = _check_p(p)
    eps = check_rate(eps, "eps", "generate_ar", lo=0.0, lo_open=True)
    max_growth = _check_limit(max_growth, "max_growth", "generate_ar", lo=1.0)
    if max_raw_norm is not None:
        max_raw_norm = _check_limit(max_raw_norm, "max_raw_norm", "generate_ar", lo=0.0)
    if seed is not None:
        seed = check_seed(seed, "seed", "generate_ar")
    sh, sw = h + crop, w + crop
    steps = recursion_steps(sh, sw)
    n = len(labels)
    if start is not None:
        start = torch.as_tensor(start)
        if tuple(start.shape) != (n, channels, sh, sw):
            raise ValueError(f"start must have shape {(n, channels, sh, sw)} (N, C, H + crop, W + crop), "
                             f"got {tuple(start.shape)}")
        if not torch.isfinite(start).all():
            raise ValueError("start contains NaN or Inf")
    elif generator is None:
        generator = make_generator(0 if seed is None else seed, dev)

    delta = torch.empty(n, channels, h, w, dtype=torch.float32)
    raw_l2 = torch.empty(n, dtype=torch.float32)
    raw_p = torch.empty(n, dtype=torch.float32)
    out_linf = torch.empty(n, dtype=torch.float32)
    out_growth = torch.empty(n, dtype=torch.float32)
    b32 = b.to(device=dev, dtype=torch.float32)

    def work(i0: int, i1: int, seeds: torch.Tensor | None) -> None:
        nb, lab = i1 - i0, labels[i0:i1]
        chunk_start = None if start is None else start[i0:i1].to(device=dev, dtype=torch.float32)
        d = _raw_chunk(b32[lab.to(dev)], sh, sw, crop, seeds=seeds, start=chunk_start)
        l2, linf = _norms(d, nb, channels)
        if chunk_start is not None:
            start_max = torch.maximum(chunk_start[:, :, :2].abs().amax((1, 2, 3)),
                                      chunk_start[:, :, 2:, :2].abs().amax((1, 2, 3)))
        else:
            assert seeds is not None
            start_max = seeds.abs().amax(0).view(nb, channels).amax(1)
        growth = _guard(l2.cpu(), linf.cpu(), start_max.cpu(), lab, steps, max_growth, max_raw_norm, class_names)
        norm = l2 if pnorm == 2 else linf
        scale = (eps / norm.double()).float()  # one rounding for eps/n, then one per value
        d = d.reshape(h, w, nb, channels).mul_(scale.view(1, 1, nb, 1))
        delta[i0:i1] = d.permute(2, 3, 0, 1).contiguous().cpu()
        raw_l2[i0:i1] = l2.cpu()
        raw_p[i0:i1] = norm.cpu()
        out_linf[i0:i1] = (linf * scale).cpu()
        out_growth[i0:i1] = growth

    chunk = _chunk_images(dev, channels, sh, sw)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and threads > 1:  # at least one chunk per thread
        chunk = min(chunk, -(-n // (threads * DRAW_BLOCK)) * DRAW_BLOCK)
    bounds = [(i0, min(i0 + chunk, n)) for i0 in range(0, n, chunk)]
    with tqdm(total=n, desc="AR noise", unit="img", disable=quiet or None, leave=False) as bar:
        if dev.type == "cpu":
            _run_pool(work, bounds, min(threads, len(bounds)), bar,
                      None if start is not None else lambda nb: _draw_seeds(generator, nb, channels, sh, sw, dev))
        else:
            for i0, i1 in bounds:
                work(i0, i1, None if start is not None else _draw_seeds(generator, i1 - i0, channels, sh, sw, dev))
                bar.update(i1 - i0)
    return ARNoise(delta, raw_p, raw_l2, out_linf, out_growth)


@contextmanager
def _single_threaded_ops() -> Iterator[None]:
    """Run torch CPU ops single-threaded for a while (restored afterwards).

    The recursion is thousands of small ops; per-op OpenMP teams stall whenever another process holds a
    core (measured 2-15x slower on a shared 2-core machine), so the CPU work is split into independent
    chunks instead, one per thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_pool(work: Callable[[int, int, torch.Tensor | None], None], bounds: list[tuple[int, int]], workers: int,
              bar: tqdm, draw: Callable[[int], torch.Tensor] | None) -> None:
    """Run work(i0, i1, seeds) for every chunk on `workers` threads (CPU), each op single-threaded.

    The start values are drawn here, in chunk order, so the bytes equal those of a sequential loop.
    """
    with _single_threaded_ops(), ThreadPoolExecutor(max(1, workers)) as pool:
        pending: deque = deque()
        for i0, i1 in bounds:
            pending.append((pool.submit(work, i0, i1, None if draw is None else draw(i1 - i0)), i1 - i0))
            while len(pending) > 2 * workers or (pending and pending[0][0].done()):
                fut, size = pending.popleft()
                fut.result()
                bar.update(size)
        while pending:
            fut, size = pending.popleft()
            fut.result()
            bar.update(size)


# --- coefficient search (§2.2) -------------------------------------------------------------------------

_FINDER_BATCH = 256  # candidates drawn per step (fixed: the result depends on it through the random stream)


def default_required_response(num_classes: int, channels: int = 3, image_size: int | Sequence[int] = 32) -> float:
    """The finder's default minimum response: the paper's value (10 for up to 10 classes, 3 beyond: the
    "mr" of the released sets, made for 3×32×32) times sqrt(C·(H−2)·(W−2) / (3·30·30)).

    A unit-L2 pattern's response shrinks with fewer channels and fewer filter positions, so the paper's
    threshold is unreachable elsewhere (10 grayscale 28×28 processes at R ≥ 10: not found in 2·10⁶ tries;
    the scaled R = 5: 803 tries). The scaling is this package's choice (measured medians of the pairwise
    responses: 5.4 for 3×32×32, 3.5 for 1×28×28), equal to the paper's value on its geometry.
    """
    h, w = _as_size(image_size)
    base = 10.0 if num_classes <= 10 else 3.0
    return base * math.sqrt(channels * max(h - 2, 1) * max(w - 2, 1) / (3 * 30 * 30))


def _find(num_classes: int, channels: int, required_response: float | None, max_tries: int, seed: int,
          size: int | Sequence[int], crop: int, quiet: bool) -> tuple[np.ndarray, int]:
    who = "find_ar_coefficients"
    num_classes = check_count(num_classes, "num_classes", who)
    channels = check_count(channels, "channels", who)
    max_tries = check_count(max_tries, "max_tries", who)
    seed = check_seed(seed, "seed", who)
    sh, sw = _as_size(size)
    crop = check_count(crop, "crop (the paper uses 4 for CIFAR)", who, lo=0)
    if sh - crop < 3 or sw - crop < 3:
        raise ValueError(f"size {sh}×{sw} with crop {crop} leaves no 3×3 window to test the matching filter")
    if required_response is None:
        required_response = default_required_response(num_classes, channels, (sh - crop, sw - crop))
    required_response = check_number(required_response, "required_response", who)
    gen = torch.Generator().manual_seed(seed)
    accepted: list[torch.Tensor] = []
    tries = 0
    bar = tqdm(total=num_classes, desc="AR processes", disable=quiet or None, leave=False)
    trial_labels = torch.arange(_FINDER_BATCH).repeat_interleave(3)  # 3 patterns per candidate
    while len(accepted) < num_classes:
        if tries >= max_tries:
            bar.close()
            raise ValueError(
                f"find_ar_coefficients found only {len(accepted)} of {num_classes} processes in {max_tries} tries "
                f"(required_response={required_response:g}, size {sh}×{sw}); raise max_tries, or lower "
                "required_response (the paper used 10 for 10 classes and 3 for 100)")
        b = torch.randn(_FINDER_BATCH, channels, 3, 3, generator=gen, dtype=torch.float64)
        b[:, :, 2, 2] = 0.0
        b = b / b.sum((2, 3), keepdim=True)
        ok = torch.isfinite(b).all(dim=(1, 2, 3))
        b_safe = torch.where(ok.view(-1, 1, 1, 1), b, torch.zeros_like(b))  # keep NaN out of the field
        seeds = _draw_seeds(gen, 3 * _FINDER_BATCH, channels, sh, sw, torch.device("cpu"))
        d = _raw_chunk(b_safe.float()[trial_labels], sh, sw, crop, seeds=seeds)
        l2, _ = _norms(d, 3 * _FINDER_BATCH, channels)
        pats = d.reshape(d.shape[0], d.shape[1], 3 * _FINDER_BATCH, channels).permute(2, 3, 0, 1)
        # cheap vectorised rejections first: NaN/overflow anywhere, or an exploding process (raw L2 > 50)
        norms = l2.view(_FINDER_BATCH, 3)
        last = pats[2::3]
        finite = ok & torch.isfinite(norms).all(1)  # a NaN/Inf value anywhere makes its L2 norm non-finite
        passing = torch.nonzero(finite & (norms <= FINDER_NORM_BOUND).all(1))[:, 0].tolist()
        budget = min(_FINDER_BATCH, max_tries - tries)
        filters = matching_filter(torch.stack(accepted)) if accepted else None
        examined = budget
        for i in passing:
            if i >= budget:
                break
            if filters is not None:
                resp = filter_response(filters, last[i].double() / norms[i, 2].double())
                if float(resp.min()) < required_response:
                    continue  # too close to an accepted process: their filters would not tell them apart
            accepted.append(b[i])
            filters = matching_filter(torch.stack(accepted))
            bar.update(1)
            if len(accepted) == num_classes:
                examined = i + 1
                break
        tries += examined
    bar.close()
    return torch.stack(accepted).numpy(), tries


def find_ar_coefficients(
    num_classes: int,
    channels: int = 3,
    required_response: float | None = None,
    max_tries: int = 200_000,
    seed: int = 0,
    size: int | Sequence[int] = 36,
    crop: int = 4,
    quiet: bool = True,
) -> np.ndarray:
    """Search `num_classes` AR processes with `channels` channels, as the paper's finder does (§2.2).

    Each candidate: taps b ~ N(0,1), bottom-right tap 0, each channel divided by its sum (taps sum to 1).
    It generates 3 patterns of `size` (the field, before `crop`) and is rejected if any has NaN/Inf or a
    raw L2 norm above 50 (an exploding process), or if, once the last pattern is scaled to L2 = 1, the
    smallest response of an already accepted matching filter on it is below `required_response`
    (default: default_required_response, the released sets' 10 for up to 10 classes and 3 beyond on
    3×32×32, scaled for other channel counts and sizes). Deterministic given `seed`.
    Returns float64 (num_classes, channels, 3, 3); raises ValueError after `max_tries` candidates.
    """
    with _single_threaded_ops():
        coeffs, _ = _find(num_classes, channels, required_response, max_tries, seed, size, crop, quiet)
    return coeffs


# --- the registered attacks ------------------------------------------------------------------------------

def default_l2_eps(shape: tuple[int, int, int]) -> float:
    """The default L2 budget: 1.0 for 3×32×32 (the paper), and the same per-value RMS (1/√3072 ≈ 4.6/255)
    for other shapes: eps = sqrt(C·H·W / 3072). This gives 3.0 for 3×96×96, the paper's STL-10 budget."""
    return math.sqrt(math.prod(shape) / 3072.0)


def _resolve_coefficients(spec, num_classes: int, channels: int, size: tuple[int, int], crop: int, seed: int,
                          quiet: bool) -> tuple[torch.Tensor, str, dict]:
    """The (num_classes, C, 3, 3) processes to use, a description of where they came from, and extra info."""
    hint = (f"coefficients='find' (find_ar_coefficients({num_classes}, channels={channels}))")
    if isinstance(spec, str):
        key = spec.lower().replace("-", "")
        if key not in COEFFICIENT_CHOICES:
            raise ValueError(f"coefficients must be one of {COEFFICIENT_CHOICES} or an array (K, C, 3, 3), "
                             f"got {spec!r}")
        if key == "find":
            with _single_threaded_ops():
                found, tries = _find(num_classes, channels, None, 200_000, seed, (size[0] + crop, size[1] + crop),
                                     crop, quiet)
            return torch.from_numpy(found), "find", {"finder_tries": tries, "found_coefficients": found.tolist()}
        if channels != 3:
            raise ValueError(
                f"the released AR coefficients are for 3-channel (RGB) images, but this dataset has {channels} "
                f"channel(s). Pass {hint} to search processes for {channels} channel(s), or convert the images "
                "to RGB with load_dataset(..., rgb=True) (or uel_helpers.data.to_rgb)")
        if key == "auto":
            if num_classes > 100:
                raise ValueError(f"the released AR coefficients cover at most 100 classes, this dataset has "
                                 f"{num_classes}; pass {hint} to search {num_classes} processes")
            key = "cifar10" if num_classes <= 10 else "cifar100"
        full = released_coefficients(key)
        if num_classes > len(full):
            raise ValueError(f"the released {key!r} AR set has {len(full)} processes but this dataset has "
                             f"{num_classes} classes; use coefficients='cifar100' (up to 100) or {hint}")
        return torch.from_numpy(full[:num_classes]), key, {}
    b = check_coefficients(spec, channels=channels)
    if len(b) < num_classes:
        raise ValueError(f"{len(b)} AR processes given for {num_classes} classes; pass at least one per class "
                         f"(the first {num_classes} are used), or {hint}")
    return b[:num_classes], "explicit", {}


def _ar_attack(attack: str, train_set: ImageSet, norm: str, *, seed: int, eps: float, crop: int,
               coefficients, rounding: str, max_growth: float, max_raw_norm: float | None,
               device: torch.device | None, quiet: bool) -> Poison:
    check_uint8_imageset(train_set, attack)
    seed = check_seed(seed, "seed", attack)
    check_choice(rounding, "rounding", ("round", "truncate"), attack)
    eps = check_eps(eps, norm, attack, train_set.shape)
    channels, h, w = train_set.shape
    crop = _check_crop(crop, h, w)
    max_growth = _check_limit(max_growth, "max_growth", attack, lo=1.0)
    if max_raw_norm is not None:
        max_raw_norm = _check_limit(max_raw_norm, "max_raw_norm", attack, lo=0.0)
    dev = pick_device(device if device is not None else "auto")
    t0 = time.perf_counter()
    b, source, extra = _resolve_coefficients(coefficients, train_set.num_classes, channels, (h, w), crop, seed, quiet)
    t1 = time.perf_counter()
    noise = generate_ar(b, train_set.labels, (h, w), crop=crop, eps=eps, p=2 if norm == "l2" else math.inf,
                        generator=make_generator(seed, dev), device=dev, max_growth=max_growth,
                        max_raw_norm=max_raw_norm, class_names=train_set.classes, quiet=quiet)
    t2 = time.perf_counter()
    # the third guard, on a sample: the generated noise must still answer ~0 to its own matching filter
    m = min(len(train_set), DIAGNOSTIC_IMAGES)
    labels = train_set.labels[:m]
    r_delta = filter_responses(matching_filter(b), lambda i0, i1: noise.delta[i0:i1], m, (channels, h, w))
    _check_separable(r_delta, labels, train_set.classes, attack)
    coeff_param = coefficients if isinstance(coefficients, str) else check_coefficients(coefficients).tolist()
    params = {"eps": eps, "crop": crop, "coefficients": coeff_param, "rounding": rounding, "max_growth": max_growth,
              "max_raw_norm": max_raw_norm}
    raw = noise.raw_l2
    info = {
        "norm": norm, "coefficients": source, "generated_size": [h + crop, w + crop], "device": str(dev),
        "raw_l2_min": float(raw.min()) if len(raw) else None,
        "raw_l2_median": float(raw.median()) if len(raw) else None,
        "raw_l2_max": float(raw.max()) if len(raw) else None,
        "growth_per_step_max": float(noise.growth.max()) if len(raw) else None,
        "delta_linf_median": float(noise.linf.median()) if len(raw) else None,
        "seconds_coefficients": t1 - t0, "seconds_generate": t2 - t1, **extra,
    }
    poison = poison_from_delta(attack, train_set, noise.delta, params, seed, rounding, info, classwise=False)
    stored, clean = poison.poisoned.images, train_set.images

    def effective(i0: int, i1: int) -> torch.Tensor:  # what the stored poison adds, one chunk at a time
        return stored[i0:i1].float().div_(255).sub_(clean[i0:i1].float().div_(255))

    r_stored = filter_responses(matching_filter(b), effective, m, (channels, h, w))
    poison.info["own_other_ratio_delta"] = _ratio(r_delta, labels)
    poison.info["own_other_ratio_stored"] = _ratio(r_stored, labels)
    poison.info["seconds_total"] = time.perf_counter() - t0
    return poison


def _diagnostic_bytes(images: int, filters: int, channels: int, h: int, w: int) -> int:
    """Bytes of the own/other diagnostic's temporaries for one chunk of `images` × `filters`: the images as float32
    and as float64 (C·H·W values each), conv2d's unfolded input (9·C values per output position, float64) and its
    output (one (H−2)·(W−2) map per image and filter, float64)."""
    positions = max(h - 2, 0) * max(w - 2, 0)
    return images * (channels * h * w * (4 + 8) + 9 * channels * positions * 8 + filters * positions * 8)


def _diagnostic_chunks(num_filters: int, channels: int, h: int, w: int, budget: int = _DIAG_BYTES) -> tuple[int, int]:
    """(images, filters) per chunk of `filter_responses`, so that `_diagnostic_bytes` stays within `budget` (at
    least one image and one filter: ~13 MB for one 3×224×224 image and one filter)."""
    per_map = max(1, 8 * max(h - 2, 0) * max(w - 2, 0))
    filters = max(1, min(num_filters, budget // 2 // per_map))
    return max(1, budget // max(1, _diagnostic_bytes(1, filters, channels, h, w))), filters


def filter_responses(filters: torch.Tensor, signal: Callable[[int, int], torch.Tensor], n: int,
                     shape: tuple[int, int, int], budget: int = _DIAG_BYTES) -> torch.Tensor:
    """R(f_k, s_i) for n signals and K filters, (n, K) float64 on the CPU: `filter_response` computed in chunks.

    signal(i0, i1) gives the signals i0..i1−1 (C, H, W each, any float dtype), fetched one chunk at a time so that
    the float64 temporaries stay within `budget` bytes (`_diagnostic_chunks`; ~128 MB by default, whatever the
    size: the whole (n, K, H−2, W−2) response map of 256 ImageNet-size images and 100 filters would be ~10 GB).
    The result equals `filter_response(filters, all signals)` up to float64 rounding.
    """
    filters = torch.as_tensor(filters).to(torch.float64)
    k = filters.shape[0]
    out = torch.zeros(n, k, dtype=torch.float64)
    c, h, w = shape
    if h < 3 or w < 3:  # no 3×3 window: no response
        return out
    n_chunk, k_chunk = _diagnostic_chunks(k, c, h, w, budget)
    for i0 in range(0, n, n_chunk):
        i1 = min(n, i0 + n_chunk)
        s = signal(i0, i1).to(torch.float64)
        for k0 in range(0, k, k_chunk):
            out[i0:i1, k0:k0 + k_chunk] = filter_response(filters[k0:k0 + k_chunk].to(s.device), s).cpu()
        del s
    return out


def _own_and_other(r: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The own-filter response of every image, and the responses of every other filter (flattened)."""
    rows = torch.arange(len(labels))
    mask = torch.ones_like(r, dtype=torch.bool)
    mask[rows, labels] = False
    return r[rows, labels], r[mask]


def _ratio(r: torch.Tensor, labels: torch.Tensor) -> float | None:
    """median own response / median other response; None when undefined (no images, one filter, no response)."""
    if len(r) == 0 or r.shape[1] < 2:
        return None
    own, other = _own_and_other(r, labels.cpu())
    other_median = other.median()
    return float(own.median() / other_median) if other_median > 0 else None


def _check_separable(r: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None, who: str,
                     limit: float = OWN_OTHER_LIMIT) -> None:
    """Refuse AR noise that no longer answers ~0 to its own class's matching filter (§2.6): the generated noise of
    a sound process gives a median own/other response ratio of ~1e-7 (float32 rounding) at any size; a ratio above
    `limit` (1e-2) means the recursion lost its precision (huge cancelling taps) and the classes are no longer told
    apart by their filters. r: (n, K) responses of the generated δ (filter_responses)."""
    if len(r) == 0 or r.shape[1] < 2:
        return
    labels = labels.cpu()
    own, other = _own_and_other(r, labels)
    if not (torch.isfinite(own).all() and torch.isfinite(other).all()):
        raise ValueError(f"{who}: the AR noise gives NaN or Inf filter responses; its processes diverge (use the "
                         "released sets or find_ar_coefficients(...))")
    other_median = float(other.median())
    if other_median <= 0:
        return
    bad = []
    for k in labels.unique().tolist():
        ratio = float(own[labels == k].median()) / other_median
        if ratio > limit:
            bad.append((k, ratio))
    if bad:
        k, ratio = bad[0]
        raise ValueError(
            f"{who}: the AR noise of {_class_label(k, class_names)} no longer answers ~0 to its own matching filter "
            f"(median own/other response ratio {ratio:.3g}, limit {limit:g}; sound processes give ~1e-7; classes "
            f"failing: {[c for c, _ in bad][:10]}{' ...' if len(bad) > 10 else ''}): the recursion lost its "
            "precision in float32, so the classes are not separable by their filters. Its coefficients are "
            "unstable; use the released sets or find_ar_coefficients(...)")


def own_other_ratio(delta: torch.Tensor, labels: torch.Tensor, coefficients) -> float | None:
    """median R(f_own, δ) / median R(f_other, δ) (§2.6): ~0 for the generated δ, larger once clipping and
    quantisation have touched it (the stored poison). None when it is undefined (no images, one class, images
    smaller than 3×3). Computed in chunks (`filter_responses`): a few hundred MB at most at any image size."""
    if len(delta) == 0 or len(coefficients) < 2:
        return None
    labels = torch.as_tensor(labels).to(torch.int64).cpu()
    r = filter_responses(matching_filter(coefficients), lambda i0, i1: delta[i0:i1], len(delta),
                         tuple(delta.shape[1:]))
    return _ratio(r, labels)


@register("ar", "Autoregressive perturbations (Sandoval-Segura et al. 2022), L2", "L2 1.0 (3x32x32)",
          recompute_delta=True)
def ar(
    train_set: ImageSet,
    *,
    seed: int = 0,
    eps: float | None = None,
    crop: int = 4,
    coefficients="auto",
    rounding: str = "round",
    max_growth: float = MAX_GROWTH,
    max_raw_norm: float | None = None,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """AR poison with an L2 budget: every image gets its own AR noise, driven by its class's process.

    eps: the exact L2 norm of each δ in [0,1] pixel units, before clipping. Default (None): 1.0 for
    3×32×32 (the paper) and sqrt(C·H·W / 3072) for other shapes, which keeps the paper's per-value RMS
    (≈ 4.6/255): 3.0 for 3×96×96 (the paper's STL-10 budget), 0.505 for 1×28×28.
    crop: the field is (H + crop) × (W + crop); its top-left `crop` rows and columns are dropped (4 for
    CIFAR in the paper, 2 for ImageNet).
    coefficients: "auto" (the released CIFAR-10 set for up to 10 classes, else the CIFAR-100 set for up to
    100; RGB only), "cifar10", "cifar100", "find" (search new processes with find_ar_coefficients, e.g.
    for grayscale images), or an array (K', C, 3, 3) with K' >= K (the first K are used).
    rounding: "round" (round half up, as the AR export does) or "truncate".
    max_growth, max_raw_norm: the divergence guard of generate_ar (growth per recursion step, 1.15 by default;
    an optional absolute raw L2 limit, None by default). Scale-free: the paper's STL-10 (96 px, eps 3) and
    ImageNet-size (224 px, 100 classes) settings run with the defaults.
    Raises ValueError naming the class for a diverging process (NaN/Inf, growth above max_growth, or generated
    noise that no longer answers ~0 to its own matching filter), TypeError for a seed that is not an integer.
    info["own_other_ratio_delta"/"_stored"]: the §2.6 diagnostic on the first 256 images (~1e-7 / below 1).
    """
    check_uint8_imageset(train_set, "ar")
    l2_eps = default_l2_eps(train_set.shape) if eps is None else eps
    return _ar_attack("ar", train_set, "l2", seed=seed, eps=l2_eps, crop=crop, coefficients=coefficients,
                      rounding=rounding, max_growth=max_growth, max_raw_norm=max_raw_norm, device=device,
                      quiet=quiet)


@register("ar-linf", "Autoregressive perturbations (Sandoval-Segura et al. 2022), L-inf", "Linf 8/255",
          recompute_delta=True)
def ar_linf(
    train_set: ImageSet,
    *,
    seed: int = 0,
    eps: float = 8 / 255,
    crop: int = 4,
    coefficients="auto",
    rounding: str = "round",
    max_growth: float = MAX_GROWTH,
    max_raw_norm: float | None = None,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """AR poison with an L∞ budget: each δ is scaled so that max|δ| = eps exactly (8/255 by default).

    The paper's README warns that the released coefficients are suboptimal for L∞ and recommends
    reporting the L2 results (`ar`). Other parameters as for `ar`.
    """
    return _ar_attack("ar-linf", train_set, "linf", seed=seed, eps=eps, crop=crop, coefficients=coefficients,
                      rounding=rounding, max_growth=max_growth, max_raw_norm=max_raw_norm, device=device,
                      quiet=quiet)
