"""Poison generation speed: images/s of every attack at CIFAR-10 size and at Fashion-MNIST size.

Each attack runs through `make_poison(..., cache=False)` on synthetic data of the given shape (the
speed of these attacks does not depend on the pixel values), so the time includes building the
uint8 poisoned set. AR's 1-channel row uses processes found with `coefficients="find"`; the finder's
own time is reported separately. A second table times the cache as a user meets it (first and second
`make_poison` call with the cache on). EM and TAP are dominated by surrogate training: with `--surrogates`
they run at `--surrogate-profile` (default `quick`) on `--surrogate-n` images, and the table reports
their whole time (surrogate, noise and rounds) rather than a rate.

    .venv/bin/python benchmarks/bench_poisons.py                    # CPU: ~2 minutes (with the cache table)
    .venv/bin/python benchmarks/bench_poisons.py --surrogates --record
    python benchmarks/bench_poisons.py --device cuda --surrogates --surrogate-profile paper --record
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import RESULTS, emit, load_average, section_header

from uel_helpers.data import synthetic_dataset
from uel_helpers.device import pick_device
from uel_helpers.poisons import make_poison
from uel_helpers.poisons.ar import find_ar_coefficients

FAST_ATTACKS = ("ar", "ar-linf", "cuda", "random-noise-classwise", "random-noise-samplewise", "regions", "lsp",
                "ops")
SURROGATE_ATTACKS = ("em-classwise", "em-samplewise", "tap")
SHAPES = {"CIFAR-10 (3x32x32)": (3, 32), "Fashion-MNIST (1x28x28)": (1, 28)}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_attack(name: str, data, dev: torch.device, repeats: int, **params) -> float:
    """Best wall time of `repeats` runs (the first run also warms up kernels and caches)."""
    best = float("inf")
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        make_poison(name, data, seed=0, device=dev, quiet=True, cache=False, **params)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def fast_table(args: argparse.Namespace, dev: torch.device) -> list[str]:
    """Images/s of the surrogate-free attacks at both shapes."""
    lines = [f"| attack | {' | '.join(f'{s}: s / img/s' for s in SHAPES)} |", "|---|" + "---:|" * len(SHAPES)]
    data = {label: synthetic_dataset(n_per_class=args.n // 10, num_classes=10, channels=c, size=size, seed=0)
            for label, (c, size) in SHAPES.items()}
    found = find_ar_coefficients(10, channels=1, seed=0)  # grayscale processes, found once
    for name in args.attacks:
        cells = []
        for label, ds in data.items():
            params = {"coefficients": found} if name.startswith("ar") and ds.channels == 1 else {}
            print(f"  {name} on {label} ...", file=sys.stderr, flush=True)
            seconds = time_attack(name, ds, dev, args.repeats, **params)
            cells.append(f"{seconds:.2f} / {len(ds) / seconds:,.0f}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def finder_line() -> str:
    t0 = time.perf_counter()
    find_ar_coefficients(10, channels=1, seed=1)
    return (f"Finding 10 grayscale AR processes with the paper's acceptance rules "
            f"(`find_ar_coefficients(10, channels=1)`, CPU): {time.perf_counter() - t0:.2f} s.")


def surrogate_table(args: argparse.Namespace, dev: torch.device) -> list[str]:
    """Whole-attack wall time of EM and TAP at a profile (surrogate training included)."""
    lines = [f"EM and TAP at profile `{args.surrogate_profile}` on {args.surrogate_n:,} synthetic "
             "Fashion-MNIST-shaped RGB images (3x28x28; surrogate training included):", "",
             "| attack | wall time (s) | what ran |", "|---|---:|---|"]
    data = synthetic_dataset(n_per_class=args.surrogate_n // 10, num_classes=10, channels=3, size=28, seed=0)
    for name in SURROGATE_ATTACKS:
        print(f"  {name} at {args.surrogate_profile} ...", file=sys.stderr, flush=True)
        sync(dev)
        t0 = time.perf_counter()
        p = make_poison(name, data, seed=0, device=dev, quiet=True, cache=False, profile=args.surrogate_profile)
        sync(dev)
        notes = "; ".join(p.info.get("notes", [])) or "paper settings"
        lines.append(f"| {name} | {time.perf_counter() - t0:.1f} | {notes} |")
    return lines


CACHE_ATTACKS = ("ar", "lsp", "random-noise-classwise")


def cache_table(args: argparse.Namespace, dev: torch.device) -> list[str]:
    """What the cache costs, called the way a user calls it: `make_poison(name, data)` with the cache on.

    Per attack on `args.n` CIFAR-shaped images: the uncached run, the first cached call (attack + write + content
    hash) and the second (read + hash check; a lazily recomputed δ is not touched), in a fresh temporary cache.
    """
    data = synthetic_dataset(n_per_class=args.n // 10, num_classes=10, channels=3, size=32, seed=0)
    lines = [f"Cache cost on {len(data):,} CIFAR-shaped images (fresh `UEL_CACHE`; seconds):", "",
             "| attack | cache=False | first call (compute + write) | second call (load) | entry size (MB) |",
             "|---|---:|---:|---:|---:|"]
    for name in CACHE_ATTACKS:
        print(f"  {name} with the cache ...", file=sys.stderr, flush=True)
        off = time_attack(name, data, dev, 1)
        with tempfile.TemporaryDirectory() as root:
            os.environ["UEL_CACHE"] = root
            try:
                calls = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    make_poison(name, data, seed=0, device=dev, quiet=True)
                    calls.append(time.perf_counter() - t0)
                size = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()) / 1e6
            finally:
                os.environ.pop("UEL_CACHE")
        lines.append(f"| {name} | {off:.2f} | {calls[0]:.2f} | {calls[1]:.2f} | {size:,.0f} |")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--n", type=int, default=50_000, help="images per shape for the fast attacks")
    p.add_argument("--repeats", type=int, default=2, help="runs per cell; the best is reported")
    p.add_argument("--attacks", nargs="+", default=list(FAST_ATTACKS), choices=FAST_ATTACKS)
    p.add_argument("--surrogates", action="store_true", help="also time EM and TAP (minutes on a CPU)")
    p.add_argument("--surrogate-profile", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--surrogate-n", type=int, default=10_000, help="images for EM and TAP")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    args = p.parse_args(argv)
    if args.n < 10 or args.surrogate_n < 10 or args.repeats < 1:
        p.error("--n and --surrogate-n must be >= 10 (10 classes), --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure, print the markdown report and optionally append it to RESULTS.md."""
    args = parse_args(argv)
    try:
        dev = pick_device(args.device)
    except ValueError as err:
        sys.exit(str(err))
    load_before = load_average()
    print(f"bench_poisons on {dev}: {args.n:,} images per shape", file=sys.stderr, flush=True)
    lines = [
        *section_header("bench_poisons.py", dev, load_before),
        "",
        f"Poison generation with `make_poison(..., cache=False)` on {args.n:,} synthetic images per shape "
        f"(best of {args.repeats}); seconds / images per second. Goals: AR ≤ 5 s and CUDA ≤ 1 s for 50,000 "
        "CIFAR-size images on 2 CPU cores; the reference AR generator takes ~100 ms per image on one thread.",
        "",
        *fast_table(args, dev),
        "",
        finder_line(),
        "",
        *cache_table(args, dev),
        "",
    ]
    if args.surrogates:
        lines += [*surrogate_table(args, dev), ""]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
