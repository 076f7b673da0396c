"""Episodes per second of (Auto)ProtoNet training and evaluation (notebook 07, arXiv:2204.00929).

Data: synthetic class-structured uint8 images made on the host and moved to the device once (no download, no
per-episode image decoding: the sampler draws index tensors on the device). Two presets:

* `paper` (default): CIFAR-FS's shape, 64 base classes x 600 images of 3 x 32 x 32, 20-way 5-shot 15-query
  training, 8 episodes per step; the paper's schedule is 30 epochs x 1,000 steps x 8 episodes = 240,000 episodes.
  Goal (issue 15): <= 30 minutes on one H100-class GPU; the extrapolated time is printed (on a CPU it only
  says how far off a CPU is).
* `quick`: the Fashion-MNIST proxy's shape, 5 base classes x 600 images of 1 x 32 x 32, 5-way 5-shot 15-query,
  2 episodes per step (the quick profile's episodes).

Evaluation: 5-way 5-shot 15-query test episodes, `--eval-batch` episodes per forward pass.

    .venv/bin/python benchmarks/bench_protonet.py --record                 # paper preset
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_protonet.py --preset quick --record
"""

from __future__ import annotations

import argparse
import time

from bench_common import emit, load_average, section_header

from uel_helpers.data import synthetic_dataset
from uel_helpers.device import pick_device
from uel_helpers.protonet import evaluate_episodes, protonet_settings, train_protonet

PRESETS = {  # classes, images per class, channels, way, episodes per step
    "paper": dict(classes=64, per_class=600, channels=3, way=20, episodes=8),
    "quick": dict(classes=5, per_class=600, channels=1, way=5, episodes=2),
}
GOAL_S = 30 * 60  # paper preset on one H100-class GPU


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    p.add_argument("--per-class", type=int, default=None, help="images per class (default: the preset's)")
    p.add_argument("--size", type=int, default=32, help="image side (>= 16)")
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default: 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps first (allocation, cuDNN)")
    p.add_argument("--eval-episodes", type=int, default=None, help="default: 1000 on CUDA, 20 on CPU")
    p.add_argument("--eval-batch", type=int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--record", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    dev = pick_device(args.device)
    pre = PRESETS[args.preset]
    per_class = args.per_class or pre["per_class"]
    steps = args.steps or (50 if dev.type == "cuda" else 3)
    n_eval = args.eval_episodes or (1000 if dev.type == "cuda" else 20)
    data = synthetic_dataset(n_per_class=per_class, num_classes=pre["classes"], channels=pre["channels"],
                             size=args.size, seed=0)
    way = min(pre["way"], pre["classes"])
    base = protonet_settings("paper").with_(epochs=1, train_way=way, episodes_per_step=pre["episodes"],
                                            val_episodes=0)
    sched = protonet_settings(args.preset)  # the schedule whose length the rate implies
    sched_episodes = sched.epochs * sched.steps_per_epoch * sched.episodes_per_step
    rows = []
    for lam in (0.0, 1.0):
        name = "AutoProtoNet" if lam else "ProtoNet"
        s = base.with_(lambda_r=lam)
        if args.warmup:
            train_protonet(data, s.with_(steps_per_epoch=args.warmup), device=dev, quiet=True, cache=False)
        t0 = time.perf_counter()
        run = train_protonet(data, s.with_(steps_per_epoch=steps), device=dev, quiet=True, cache=False)
        train_s = run.history.seconds[0]
        total = time.perf_counter() - t0
        eps = steps * pre["episodes"] / train_s
        sched_min = sched_episodes / eps / 60
        verdict = "" if dev.type != "cuda" or args.preset != "paper" else (
            " (≤ 30 min: met)" if sched_min * 60 <= GOAL_S else " (≤ 30 min: missed)")
        rows.append(f"| train {name}, {way}-way 5-shot 15-query, {pre['episodes']} episodes/step, {steps} steps | "
                    f"{eps:.2f} episodes/s ({train_s / steps:.3f} s/step; {total:.1f} s with setup) | "
                    f"`{args.preset}` schedule ({sched_episodes:,} episodes): {sched_min:.1f} min{verdict} |")
        t0 = time.perf_counter()
        evaluate_episodes(run, data, 5, 5, 15, n_eval, device=dev, batch=args.eval_batch)
        ev = time.perf_counter() - t0
        rows.append(f"| evaluate {name}, 5-way 5-shot 15-query, {n_eval} episodes, batch {args.eval_batch} | "
                    f"{n_eval / ev:.1f} episodes/s ({ev:.2f} s) | 1,000 test episodes: {1000 / (n_eval / ev):.1f} s |")
    lines = [*section_header("bench_protonet.py", dev, load_before), "",
             f"Data: synthetic, {pre['classes']} classes x {per_class} images of {pre['channels']} x {args.size} x "
             f"{args.size} (preset `{args.preset}`), on the device.", "",
             "| what | rate | implied |", "|---|---:|---|", *rows, ""]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
