"""The quick judge: what candidate victims cost per epoch, and what one judge trained to fit costs in all.

The honest-judge issue asks for a victim that behaves like the papers' (a ResNet trained until it fits the
given set, no whitening) and fits one judge in <= 2 minutes on 2 quiet CPU cores. This script times each
candidate for a few epochs on the effect setting (Fashion-MNIST as RGB, 500 per class, 2,000 test images),
then trains the chosen `quick` protocol in full on clean data and on the sample-wise noise control.

    .venv/bin/python benchmarks/bench_judge.py --record
"""

from __future__ import annotations

import argparse
import time

from bench_common import RESULTS, emit, load_average, section_header

from uel_helpers.data import load_dataset, synthetic_dataset, to_rgb
from uel_helpers.device import pick_device
from uel_helpers.models import build_model, count_parameters
from uel_helpers.poisons import make_poison
from uel_helpers.training import get_protocol, train

CANDIDATES = ("resnet10-w16", "fastnet-small", "smallcnn", "resnet18")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-per-class", type=int, default=500)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2, help="epochs timed per candidate")
    p.add_argument("--models", nargs="+", default=list(CANDIDATES))
    p.add_argument("--full", nargs="*", default=["none", "random-noise-samplewise"],
                   help="training sets on which the full quick judge runs (empty: skip)")
    p.add_argument("--synthetic", action="store_true", help="generated 28x28 data instead of Fashion-MNIST")
    p.add_argument("--device", default="cpu")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    return p.parse_args(argv)


def load(args: argparse.Namespace):
    if args.synthetic:
        ds = synthetic_dataset(n_per_class=args.n_per_class, num_classes=10, channels=3, size=28, seed=0)
        return ds, synthetic_dataset(n_per_class=max(1, args.n_test // 10), num_classes=10, channels=3, size=28,
                                     seed=1)
    train_set = to_rgb(load_dataset("fashion-mnist").take_per_class(args.n_per_class, seed=0))
    test_set = to_rgb(load_dataset("fashion-mnist", "test").take_per_class(args.n_test // 10, seed=0))
    return train_set, test_set


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dev = pick_device(args.device)
    load_before = load_average()
    train_set, test_set = load(args)
    quick = get_protocol("quick")
    c, h, w = train_set.shape
    rows = []
    for name in args.models:
        proto = quick.with_(model=name, epochs=args.epochs, fit_extra=1)
        params = count_parameters(build_model(name, c, 10, (h, w)))
        t0 = time.perf_counter()
        hist = train(train_set, test_set, proto, seed=0, device=dev, quiet=True)
        per_epoch = (time.perf_counter() - t0) / hist.epochs
        rows.append(f"| {name} | {params / 1e6:.2f} M | {per_epoch:.1f} | {quick.epochs * per_epoch / 60:.1f} | "
                    f"{100 * hist.final_acc:.1f} |")
    full = []
    for attack in args.full:
        data = train_set if attack == "none" else make_poison(attack, train_set, seed=0, cache=False).poisoned
        t0 = time.perf_counter()
        hist = train(data, test_set, quick, seed=0, device=dev, quiet=True)
        full.append(f"| {attack} | {hist.epochs} | {hist.fit_epoch or 'not reached'} | "
                    f"{100 * hist.train_acc[-1]:.1f} | {100 * hist.final_acc:.2f} | {100 * hist.peak_acc:.2f} "
                    f"@{hist.peak_epoch} | {time.perf_counter() - t0:.0f} |")
    what = "generated 28x28 RGB" if args.synthetic else "Fashion-MNIST as RGB"
    lines = [
        *section_header("bench_judge.py", dev, load_before),
        "",
        f"Candidate victims on {what}, {len(train_set)} training and {len(test_set)} test images, the quick recipe "
        f"(batch {quick.batch_size}, SGD lr {quick.lr}, crop {quick.crop_padding} + flip, no whitening), "
        f"{args.epochs} epochs timed (test evaluation included); `cap` = {quick.epochs} epochs at that pace:",
        "",
        "| model | parameters | s / epoch | cap (min) | test acc after the timed epochs (%) |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ]
    if full:
        lines += [
            "",
            f"The `quick` judge in full ({quick.model}, fit criterion {quick.fit_acc:.0%} training accuracy, then "
            f"{quick.fit_extra} annealing epochs, at most {quick.epochs}), seed 0:",
            "",
            "| training set | epochs | fitted at epoch | train acc (%) | final test acc (%) | peak (%) | seconds |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *full,
        ]
    lines.append("")
    emit(lines, args.record)


if __name__ == "__main__":
    main()
