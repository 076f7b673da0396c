"""The engines' overhead: a 4 x 3 grid (`run_matrix`) with the local executor and with Ray, from an empty cache each.

Both runs use the same seeds; the script checks that they give the same numbers (every cell's curves) and reports
the wall time of each, Ray's start-up apart, and each cell's seconds (poison, defense, training: the per-cell
figures of docs/scaling.md). With a GPU, `--gpu-training` adds one paper-profile training (ResNet-18, the AR paper's
recipe) on 1 GPU: the per-cell figure the plan in docs/scaling.md scales.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py --record            # CPU: quick, digits as RGB
    python benchmarks/bench_scale.py --gpu-training --record                         # a GPU machine
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
from bench_common import RESULTS, emit, load_average, section_header

from uel_helpers.device import pick_device
from uel_helpers.experiments import DataSpec, format_results, run_matrix
from uel_helpers.training import PROTOCOLS, get_protocol, protocol_for_profile, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--rgb", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--attacks", nargs="+", default=["random-noise-classwise", "random-noise-samplewise", "ar", "cuda"])
    p.add_argument("--defenses", nargs="+", default=["none", "grayscale", "jpeg"])
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOLS), help="overrides --profile")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--executors", nargs="+", default=["local", "ray"], choices=["local", "ray", "slurm"],
                   help="slurm runs submitit's local executor (jobs as local processes)")
    p.add_argument("--num-cpus", type=int, default=None, help="the local Ray cluster's CPUs (default: all)")
    p.add_argument("--gpu-training", action="store_true",
                   help="also time one paper-profile training on 1 GPU (Fashion-MNIST padded to 32, RGB)")
    p.add_argument("--device", default="auto")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    return p.parse_args(argv)


def _numbers(results) -> list:
    return [(r.attack, r.defense, r.error, r.test_acc, r.train_loss, r.train_acc) for r in results]


def run_grid(args, spec: DataSpec, protocol, executor: str) -> tuple[list, float, float]:
    """The grid on `executor` from an empty cache: (results, seconds of the grid, seconds to start the engine)."""
    os.environ["UEL_CACHE"] = tempfile.mkdtemp(prefix=f"bench-scale-{executor}-")
    options, started = None, 0.0
    if executor == "ray":
        import ray

        for attempt in range(3):  # Ray gives its node 30 s to register: a loaded machine can miss that
            t0 = time.perf_counter()
            try:
                ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
                break
            except Exception as err:  # noqa: BLE001 - "The current node timed out during startup"
                ray.shutdown()
                print(f"  ray.init failed ({err}); {'retrying' if attempt < 2 else 'giving up'}", file=sys.stderr)
                if attempt == 2:
                    raise
        started = time.perf_counter() - t0
    elif executor == "slurm":
        options = {"cluster": "local", "poll": 0.5}
    t0 = time.perf_counter()
    try:
        results = run_matrix(args.attacks, args.defenses, spec, protocol, args.seeds, include_clean=False,
                             include_control=False, device=args.device, executor=executor, executor_options=options)
    finally:
        if executor == "ray":
            ray.shutdown()
    return results, time.perf_counter() - t0, started


def gpu_training(dev: torch.device) -> list[str]:
    """One paper-profile training (ResNet-18, 100 epochs) on 50,000 CIFAR-shaped images, timed per epoch."""
    from uel_helpers.data import load_dataset, pad, to_rgb

    train_set = to_rgb(pad(load_dataset("fashion-mnist", "train"), 32)).take_per_class(5000, seed=0)
    test_set = to_rgb(pad(load_dataset("fashion-mnist", "test"), 32))
    protocol = protocol_for_profile("paper")
    hist = train(train_set, test_set, protocol, seed=0, device=dev, quiet=True)
    per_epoch = sorted(hist.epoch_time[1:])[len(hist.epoch_time[1:]) // 2] if len(hist.epoch_time) > 1 else \
        hist.epoch_time[0]
    return [f"One `{protocol.name}` training ({protocol.model}, {len(hist.test_acc)} epochs, batch "
            f"{protocol.batch_size}) on {len(train_set):,} Fashion-MNIST images padded to 32x32 RGB, 1 GPU: "
            f"**{hist.wall_time / 60:.1f} min** ({per_epoch:.1f} s per epoch, median after the first, test included); "
            f"final test accuracy {100 * hist.test_acc[-1]:.2f}%."]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dev = pick_device(args.device)
    protocol = get_protocol(args.protocol) if args.protocol else protocol_for_profile(args.profile)
    spec = DataSpec(args.dataset, n_per_class=args.n_per_class, as_rgb=args.rgb)
    os.environ["UEL_PROFILE"] = args.profile
    load_before = load_average()
    runs = {}
    for executor in args.executors:
        print(f"{executor}: {len(args.attacks)} x {len(args.defenses)} grid ...", file=sys.stderr, flush=True)
        runs[executor] = run_grid(args, spec, protocol, executor)
        print(f"  {runs[executor][1]:.1f} s", file=sys.stderr, flush=True)
    first, (reference, base, _) = args.executors[0], runs[args.executors[0]]
    rows = []
    for executor, (results, seconds, started) in runs.items():
        same = "reference" if executor == first else ("yes" if _numbers(results) == _numbers(reference) else "**NO**")
        rows.append(f"| {executor} | {seconds:.1f} | {started:.1f} | {seconds / base:.2f}x | {same} |")
    cells = []
    for r in reference:
        s = r.seconds
        cells.append(f"| {r.attack} | {r.defense} | {100 * r.mean:.2f} | {s.get('poison', 0):.1f} | "
                     f"{s.get('defense', 0):.1f} | {s.get('train', 0):.1f} |")
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [
        *section_header("bench_scale.py", dev, load_before),
        "",
        f"`run_matrix` on {spec.label}, protocol `{protocol.name}` ({protocol.model}), {args.seeds} seed(s), "
        f"{len(args.attacks)} attacks x {len(args.defenses)} defenses = {len(reference)} cells (plus the clean "
        f"baseline task), each executor from an empty cache; OMP_NUM_THREADS={threads}; Ray: a local cluster "
        f"(`ray.init(num_cpus={args.num_cpus})`), one CPU per task. Grid seconds exclude the engine's start-up "
        "(its own column); \"same\": every cell's curves equal the first executor's, number for number.",
        "",
        "| executor | grid (s) | start-up (s) | vs first | same numbers |",
        "|---|---:|---:|---:|---|",
        *rows,
        "",
        f"Per cell ({first}; a row's poison is made once by its row task, a purifier's output once per row):",
        "",
        "| attack | defense | acc (%) | poison (s) | defense (s) | training (s) |",
        "|---|---|---:|---:|---:|---:|",
        *cells,
        "",
        "```",
        format_results(reference),
        "```",
    ]
    if args.gpu_training:
        lines += ["", *(gpu_training(dev) if dev.type == "cuda" else ["--gpu-training: no GPU here, not measured."])]
    emit([*lines, ""], args.record)


if __name__ == "__main__":
    main()
