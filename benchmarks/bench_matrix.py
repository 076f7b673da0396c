"""Wall time of an attack × defense matrix (`experiments.run_matrix`), cell by cell, from an empty cache.

Every cell's time is split into poison generation, defense and judge training (the poison of a row is
made once and reused by its other cells). The printed table is also what `uel matrix` would produce.

    .venv/bin/python benchmarks/bench_matrix.py --n-per-class 500 --rgb --record       # CPU, quick profile
    python benchmarks/bench_matrix.py --dataset cifar10 --protocol fast --record        # a GPU machine
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from bench_common import RESULTS, emit, load_average, section_header

from uel_helpers.device import pick_device
from uel_helpers.experiments import DataSpec, format_results, run_matrix
from uel_helpers.poisons import REGISTRY as ATTACKS
from uel_helpers.training import PROTOCOLS, get_protocol, protocol_for_profile


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--rgb", action="store_true")
    p.add_argument("--attacks", nargs="+", default=sorted(ATTACKS))
    p.add_argument("--defenses", nargs="+", default=["none", "grayscale", "jpeg", "adversarial-training"])
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOLS), help="overrides --profile")
    p.add_argument("--seeds", type=int, default=3, help="judge seeds per cell (headline tables: 3)")
    p.add_argument("--max-test", type=int, default=None, help="class-balanced test images (default: all)")
    p.add_argument("--cache", default=None,
                   help="reuse this cache folder (default: a new, empty one); cached cells then cost ~0 s")
    p.add_argument("--device", default="auto")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dev = pick_device(args.device)
    protocol = get_protocol(args.protocol) if args.protocol else protocol_for_profile(args.profile)
    if args.max_test:
        protocol = protocol.with_(max_test=args.max_test)
    spec = DataSpec(args.dataset, n_per_class=args.n_per_class, as_rgb=args.rgb)
    load_before = load_average()
    os.environ["UEL_CACHE"] = args.cache or tempfile.mkdtemp(prefix="bench-matrix-")  # empty unless --cache
    os.environ["UEL_PROFILE"] = args.profile  # EM/TAP settings follow the profile
    cell_times: list[float] = []
    last = [time.perf_counter()]

    def tick(result, done: int, total: int) -> None:
        now = time.perf_counter()
        cell_times.append(now - last[0])
        last[0] = now
        print(f"  [{done}/{total}] {result.attack} + {result.defense}: {cell_times[-1]:.1f}s", file=sys.stderr,
              flush=True)

    t0 = time.perf_counter()
    results = run_matrix(args.attacks, args.defenses, spec, protocol, args.seeds, on_result=tick,
                         device=args.device)
    total = time.perf_counter() - t0
    rows = []
    for r, t in zip(results, cell_times, strict=True):
        s = r.summary()
        rows.append(f"| {r.attack} | {r.defense} | {100 * r.mean:.2f} ± {100 * r.std:.2f} | "
                    f"{100 * s['peak']:.2f} @{s['peak_epoch']:.1f} | {100 * (s['train_acc'] or 0):.1f} | "
                    f"{s['epochs']:.1f} | {r.seconds.get('poison', 0):.1f} | {r.seconds.get('defense', 0):.1f} | "
                    f"{r.seconds.get('train', 0):.1f} | {t:.1f} |")
    lines = [
        *section_header("bench_matrix.py", dev, load_before),
        "",
        f"`run_matrix` on {spec.label}, protocol `{protocol.name}` ({protocol.model}), profile `{args.profile}`, "
        f"{args.seeds} judge seed(s) per cell (one poison), {protocol.max_test or 'all'} test images, "
        f"{'cache ' + repr(args.cache) + ' (cells already there cost ~0 s)' if args.cache else 'empty cache'}: "
        f"{len(results)} cells in "
        f"**{total / 60:.1f} min**. Final clean test accuracy mean ± std over seeds; peak @ its mean epoch; "
        "training accuracy at the last epoch; epochs trained (the quick judge stops 8 epochs after fitting). Seconds "
        "per cell (poison: made once per row, the other cells of the row read it from the cache):",
        "",
        "| attack | defense | final acc (%) | peak (%) | train acc (%) | epochs | poison (s) | defense (s) | "
        "training (s) | cell (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "```",
        format_results(results),
        "```",
        "",
    ]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
