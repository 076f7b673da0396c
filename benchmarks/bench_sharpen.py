"""RSK+FF speed: the paper's per-image transform on one CPU thread vs the batched one (CPU, and CUDA if present).

The reference applies RSK+FF inside the DataLoader, one image at a time: a kernel drawn with numpy, a conv2d
with no padding (32x32 -> 30x30), clamp, a 2-D DCT, a numpy mask, the inverse DCT, clamp (paper sheet 04:
1.64 ms per image on one thread, ~82 s of CPU per CIFAR-10 epoch). The per-image row here is written that
way; its DCT is the same cached matrix product as the batched version (the reference's torch_dct runs FFTs
and is not a dependency), so if anything it flatters the reference. The batched rows run
`sharpen_filter(x, "rsk", 2.5, 30)` on batches of `--batch` images (the paper's 512): one grouped conv per
batch and two matrix products. Inputs are float CIFAR-shaped images already in [0, 1] (no PIL, no
ToTensor); crop and flip are not included in either. Goal: the batched version >= 50x the per-image one.

    .venv/bin/python benchmarks/bench_sharpen.py                  # 50,000 images (reference on 2,000)
    .venv/bin/python benchmarks/bench_sharpen.py --n 512          # a quick check that it runs
    python benchmarks/bench_sharpen.py --device cuda --record
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from bench_common import RESULTS, emit, load_average, section_header

from uel_helpers.defenses.sharpen import dct_matrix, sharpen_filter
from uel_helpers.device import pick_device

CENTER, PERCENT, STD = 2.5, 30.0, 0.1
PAPER_MS_PER_IMAGE = 1.64  # the reference's rsk_ff transform on one CPU thread (paper sheet 04, §8)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reference_rsk_ff(img: torch.Tensor, rng: np.random.RandomState) -> torch.Tensor:
    """One image (C, H, W) through RSK+FF as the reference does it: numpy kernel, conv2d, DCT, numpy mask."""
    c = rng.normal(CENTER, STD)
    n = rng.normal((c - 1) / 4, STD, size=4)
    kernel = torch.tensor([[0.0, -n[0], 0.0], [-n[1], c, -n[2]], [0.0, -n[3], 0.0]], dtype=torch.float32)
    channels = img.shape[0]
    x = F.conv2d(img[None], kernel.repeat(channels, 1, 1, 1), groups=channels)[0].clamp(0, 1)
    h, w = x.shape[-2:]
    ch, cw = dct_matrix(h), dct_matrix(w)
    y = ch @ x @ cw.T
    mask = np.zeros_like(y.numpy())
    mask[:, :math.floor(h * PERCENT / 100), :math.floor(w * PERCENT / 100)] = 1
    y = y * torch.from_numpy(mask)
    return (ch.T @ y @ cw).clamp(0, 1)


def time_reference(images: torch.Tensor, repeats: int) -> float:
    """Best seconds of `repeats` passes of the per-image reference over `images` on one CPU thread."""
    best = float("inf")
    for _ in range(repeats):
        rng = np.random.RandomState(0)
        t0 = time.perf_counter()
        for img in images:
            reference_rsk_ff(img, rng)
        best = min(best, time.perf_counter() - t0)
    return best


def time_batched(images: torch.Tensor, batch: int, dev: torch.device, repeats: int) -> float:
    """Best seconds of `repeats` passes of the batched RSK+FF over `images` (already on `dev`) in batches."""
    gen = torch.Generator(device=dev).manual_seed(0)
    run: Callable[[torch.Tensor], torch.Tensor] = lambda xb: sharpen_filter(xb, "rsk", CENTER, PERCENT, gen)
    run(images[:batch])  # warm-up: kernels, caches, the DCT matrices on the device
    best = float("inf")
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        for xb in images.split(batch):
            run(xb)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda: adds a CUDA row when it is cuda")
    p.add_argument("--n", type=int, default=50_000, help="images for the batched rows (one CIFAR-10 epoch)")
    p.add_argument("--ref-n", type=int, default=2_000, help="images for the per-image reference (at most --n)")
    p.add_argument("--batch", type=int, default=512, help="batch size of the batched rows (the paper's 512)")
    p.add_argument("--repeats", type=int, default=2, help="passes per row; the best is reported")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    args = p.parse_args(argv)
    if args.n < 1 or args.ref_n < 1 or args.batch < 1 or args.repeats < 1:
        p.error("--n, --ref-n, --batch and --repeats must be >= 1")
    args.ref_n = min(args.ref_n, args.n)
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure, print the markdown report and optionally append it to RESULTS.md."""
    args = parse_args(argv)
    try:
        dev = pick_device(args.device)
    except ValueError as err:
        sys.exit(str(err))
    load_before = load_average()
    threads = torch.get_num_threads()
    images = torch.rand(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    print(f"bench_sharpen: {args.n:,} images, reference on {args.ref_n:,}", file=sys.stderr, flush=True)

    rows: list[tuple[str, int, float]] = []  # (what, images, seconds)
    torch.set_num_threads(1)
    try:
        print("  per-image reference, 1 thread ...", file=sys.stderr, flush=True)
        rows.append(("per-image reference (numpy kernel, conv2d, DCT), CPU, 1 thread", args.ref_n,
                     time_reference(images[:args.ref_n], args.repeats)))
        print("  batched, CPU, 1 thread ...", file=sys.stderr, flush=True)
        rows.append((f"batched `sharpen_filter`, CPU, 1 thread, batch {args.batch}", args.n,
                     time_batched(images, args.batch, torch.device("cpu"), args.repeats)))
    finally:
        torch.set_num_threads(threads)
    if threads > 1:
        print(f"  batched, CPU, {threads} threads ...", file=sys.stderr, flush=True)
        rows.append((f"batched `sharpen_filter`, CPU, {threads} threads, batch {args.batch}", args.n,
                     time_batched(images, args.batch, torch.device("cpu"), args.repeats)))
    if dev.type == "cuda":
        print("  batched, CUDA ...", file=sys.stderr, flush=True)
        rows.append((f"batched `sharpen_filter`, CUDA, batch {args.batch}", args.n,
                     time_batched(images.to(dev), args.batch, dev, args.repeats)))

    ref_rate = rows[0][1] / rows[0][2]
    paper_rate = 1000 / PAPER_MS_PER_IMAGE
    table = ["| transform | images | seconds | images/s | x per-image row | x paper's 1.64 ms/img |",
             "|---|---:|---:|---:|---:|---:|"]
    for what, n, seconds in rows:
        rate = n / seconds
        table.append(f"| {what} | {n:,} | {seconds:.3f} | {rate:,.0f} | {rate / ref_rate:,.1f}x "
                     f"| {rate / paper_rate:,.1f}x |")
    lines = [
        *section_header("bench_sharpen.py", dev, load_before),
        "",
        f"RSK+FF (centre {CENTER}, std {STD}, {PERCENT:g}% of the DCT frequencies per side) on random 3x32x32 float "
        f"images, best of {args.repeats}; no crop/flip. The paper's reference takes {PAPER_MS_PER_IMAGE} ms per image "
        f"on one thread (~{1000 / PAPER_MS_PER_IMAGE:,.0f} images/s, with PIL/ToTensor and torch_dct); the per-image "
        "row here is leaner (cached DCT matrix, float input). Goal: batched >= 50x the per-image reference.",
        "",
        *table,
        "",
    ]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
