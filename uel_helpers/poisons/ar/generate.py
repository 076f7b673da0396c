"""The fast AR generator: every image of a batch at once, the recursion run over anti-diagonals, with a divergence
guard.

Each image i gets a fresh N(0,1) start signal and the process b_k of its class k; the recursion (rows top to bottom,
columns left to right, cross-correlation, b[c, 2, 2] = 0)

    x[c, i+2, j+2] = Σ_{u,v} b_k[c, u, v] · x[c, i+u, j+v]

fills the (H + crop) × (W + crop) field, the top-left `crop` rows and columns are dropped, and δ is scaled to an
exact Lp norm: upstream `ARProcessPerturb3Channel.generate` in
psandovalsegura/autoregressive-poisoning:autoregressive.py@bf350b0 (Sandoval-Segura et al., NeurIPS 2022,
arXiv 2206.03693), written one pixel at a time in `reference.generate_ar_reference`.

Speed: upstream generates one image at a time with a Python loop over pixels (~0.1 s per CIFAR image, measured here
on one CPU core). Here all images of a chunk are generated at once, and the pixel loop runs over anti-diagonals:
every tap of pixel (r, c) lies at a smaller r + c, so all pixels of one anti-diagonal depend only on earlier
anti-diagonals and are computed together. The arithmetic per pixel is exactly the sequential recursion (same 8-term
sum), only the order of independent pixels changes. The field is kept as (rows, cols, images·channels) so that each
tap of an anti-diagonal is one strided view and one multiply-add over all images; on a CPU, independent chunks run
on separate threads. 50,000 CIFAR images take about 2.3 s of CPU time, i.e. ~1.2-1.5 s of wall time on two free
cores (4-5 s were measured on a 2-core machine shared with other jobs, load ~5).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ...checks import check_count, check_rate, check_seed, check_size
from ...device import make_generator, pick_device
from .coefficients import _class_label, check_coefficients

MAX_GROWTH = 1.15  # growth per recursion step above which a process counts as diverging; see _guard
GROWTH_SLACK = 10.0  # allowance for the first steps' transient (a 3x3 field can amplify its start values x2.2)
DRAW_BLOCK = 256  # images whose start signals are drawn in one call: the bytes do not depend on the chunk size
_CPU_FIELD_FLOATS = 8 * 2**20  # ~32 MB working field per chunk on CPU (stays in cache-friendly sizes)
_GPU_FIELD_FLOATS = 64 * 2**20  # ~256 MB per chunk on a GPU (fits a free Colab T4 with room to spare)
_TAPS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1))  # the 8 causal taps, (2,2) excluded


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
    """Batched AR perturbations: one fresh start signal per image, driven by its class's process (upstream
    `ARProcessPerturb3Channel.generate`, autoregressive.py@bf350b0, for all images at once; same δ as
    `generate_ar_reference` from the same start signal, up to float32 rounding).

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
