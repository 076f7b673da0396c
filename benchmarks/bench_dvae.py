"""D-VAE speed: training images/s per stage and the whole two-stage purification time.

Runs `uel_helpers.defenses.dvae.run_stages(..., cache=False)` on synthetic class-structured data of the given
shape (the speed does not depend on the pixel values) at a profile's settings, and reports per stage the
training time, training images/s (images × epochs / seconds) and the purification pass, then the total.

    .venv/bin/python benchmarks/bench_dvae.py --record                     # CPU: quick profile, 5,000 28x28 RGB
    python benchmarks/bench_dvae.py --profile paper --shape 3 32 --n 50000 --device cuda --record   # a GPU
"""

from __future__ import annotations

import argparse
import time

from bench_common import emit, load_average, section_header

from uel_helpers.data import synthetic_dataset
from uel_helpers.defenses.dvae import PROFILE_SETTINGS, run_stages
from uel_helpers.device import pick_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="quick", choices=sorted(PROFILE_SETTINGS))
    p.add_argument("--shape", nargs=2, type=int, default=(3, 28), metavar=("CHANNELS", "SIZE"),
                   help="image channels and side (default 3 28: Fashion-MNIST as RGB)")
    p.add_argument("--n", type=int, default=5000, help="training images (10 classes)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per stage (default: the profile's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="float32 on a GPU instead of mixed precision")
    p.add_argument("--record", action="store_true", help="append the results to RESULTS.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dev = pick_device(args.device)
    channels, size = args.shape
    if args.n < 10 or args.n % 10:
        raise SystemExit(f"--n must be a positive multiple of 10 (10 balanced classes), got {args.n}")
    data = synthetic_dataset(n_per_class=args.n // 10, num_classes=10, channels=channels, size=size, seed=0)
    load_before = load_average()
    t0 = time.perf_counter()
    res = run_stages(data, profile=args.profile, epochs=args.epochs, device=dev, cache=False, quiet=False,
                     amp=not args.no_amp)
    total = time.perf_counter() - t0
    cfg = res.info["config"]
    rows = []
    for st in res.info["stages"]:
        train_s = st["train_seconds"]
        rows.append(f"| {st['stage']} | {st['kl_cap']} | {train_s:.1f} | {len(data) * cfg['epochs'] / train_s:,.0f} |")
    purify_s = total - sum(st["train_seconds"] for st in res.info["stages"])
    lines = [
        *section_header("bench_dvae.py", dev, load_before),
        "",
        f"`run_stages` (both D-VAE stages, fresh models, no cache) on {len(data):,} synthetic {channels}x{size}x{size} "
        f"images, profile `{args.profile}`: {cfg['epochs']} epochs per stage, width {cfg['width']}, latent "
        f"{cfg['latent_dim']}, batch {cfg['batch_size']}, mixed precision {cfg['amp']}.",
        "",
        "| stage | KL cap | training (s) | training images/s |",
        "|---:|---:|---:|---:|",
        *rows,
        "",
        f"Both purification passes: {purify_s:.1f} s. **Whole two-stage purification: {total:.1f} s "
        f"({total / 60:.1f} min).**",
        "",
    ]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
