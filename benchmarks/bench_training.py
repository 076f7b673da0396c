"""Training throughput: our on-device uint8 loader vs. a torchvision DataLoader, for ResNet-18 and FastNet.

(a) "on-device": the whole split lives on the device as uint8; each step indexes a batch, converts it
    to float and augments it with `uel_helpers.training.augment` (the per-step work of `training.train`).
(b) "DataLoader": a torch DataLoader over a Dataset that builds a PIL image per sample and applies
    RandomCrop(32, padding=4), RandomHorizontalFlip and ToTensor, as the papers' repositories train.

Both feed the same model (normalisation inside it, as `train` does), batch size and optimiser
(SGD lr 0.1, momentum 0.9, weight decay 5e-4); mixed precision and channels_last on CUDA for both.
Throughput is images/s over `--steps` steps after `--warmup` steps. A pipeline-only row (no model)
shows the loader's own cost. With `--gpu-extras` on CUDA it also times a ResNet-18 epoch on 50,000
CIFAR-shaped images and FastNet's time to its accuracy plateau on Fashion-MNIST.

    .venv/bin/python benchmarks/bench_training.py                  # CPU defaults: a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_training.py --record         # also append the results to RESULTS.md
    python benchmarks/bench_training.py --num-workers 8 --gpu-extras --record   # on a GPU machine
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
from bench_common import RESULTS, emit, load_average, section_header
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from uel_helpers.data import ImageSet, load_dataset, synthetic_dataset
from uel_helpers.device import amp_dtype, autocast, make_generator, pick_device, seed_everything
from uel_helpers.models import FastNet, build_model
from uel_helpers.training import Normalize, augment, channel_stats, get_protocol, train

MODEL_CHOICES = ("resnet18", "fastnet", "fastnet-small", "smallcnn")
# Crop 4 + flip: the augmentation of the papers' ResNet-18 recipe, and of the torchvision pipeline below.
AUG = get_protocol("paper-resnet18")

Batch = tuple[torch.Tensor, torch.Tensor]


# --- the two data pipelines -------------------------------------------------------------------------


class TorchvisionStyleSet(Dataset):
    """Per-sample PIL transforms on HWC uint8 arrays, as torchvision.datasets.CIFAR10 + transforms do."""

    def __init__(self, data: ImageSet) -> None:
        self.images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # N, H, W, C like CIFAR10.data
        self.labels = data.labels.tolist()
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i])
        return self.transform(img), self.labels[i]


def dataloader_batches(data: ImageSet, batch_size: int, num_workers: int, dev: torch.device
                       ) -> Iterator[Batch]:
    """Endless augmented batches from a torch DataLoader (workers persist across epochs), moved to `dev`."""
    loader = DataLoader(TorchvisionStyleSet(data), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=num_workers, pin_memory=dev.type == "cuda",
                        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(0))
    while True:
        for xb, yb in loader:
            yield xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)


def device_batches(data: ImageSet, batch_size: int, dev: torch.device, seed: int = 0) -> Iterator[Batch]:
    """Endless augmented batches from uint8 data on `dev`: the per-step data work of `training.train`."""
    x, y = data.images.to(dev), data.labels.to(dev)
    gen = make_generator(seed, dev if dev.type == "cuda" else "cpu")
    order_gen = torch.Generator().manual_seed(seed)
    n = len(data)
    while True:
        perm = torch.randperm(n, generator=order_gen).to(dev)
        for i in range(n // batch_size):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            yield augment(x[idx].float().div_(255.0), AUG, gen), y[idx]


# --- model and step ---------------------------------------------------------------------------------


def make_model(name: str, data: ImageSet, dev: torch.device) -> nn.Module:
    """The model as `train` builds it: FastNet whitening fitted, Normalize in front, channels_last on CUDA."""
    seed_everything(0)
    net = build_model(name, data.channels, data.num_classes, data.image_size)
    if isinstance(net, FastNet):
        net.fit_whitening(data.images[:5000].float() / 255.0)
    net = nn.Sequential(Normalize(*channel_stats(data.images)), net).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net.train()


def make_train_step(net: nn.Module, dev: torch.device) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """An SGD step (lr 0.1, momentum 0.9, wd 5e-4) with autocast and grad scaling where `train` has them."""
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype(dev) == torch.float16 else None
    loss_fn = nn.CrossEntropyLoss()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        if dev.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(dev):
            loss = loss_fn(net(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return step


def sync(dev: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures the work and not just its launch."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def images_per_second(batches: Iterator[Batch], step: Callable[[torch.Tensor, torch.Tensor], None] | None,
                      warmup: int, steps: int, dev: torch.device) -> float:
    """Steady-state images/s: run `warmup` steps untimed, then time `steps` steps (step=None: data only)."""
    def one() -> int:
        xb, yb = next(batches)
        if step is not None:
            step(xb, yb)
        return len(xb)

    for _ in range(warmup):
        one()
    sync(dev)
    t0 = time.perf_counter()
    n = sum(one() for _ in range(steps))
    sync(dev)
    return n / (time.perf_counter() - t0)


# --- the comparison table ----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: images/s of both pipelines for one model (or for the data alone)."""

    what: str
    on_device: float
    dataloader: float
    loads: tuple[float, float]  # 1-minute load average after each measurement, a flag for a busy machine


def compare(args: argparse.Namespace, dev: torch.device) -> list[Row]:
    """Images/s of both pipelines, data only and then with each model's training step."""
    bs = args.batch_size
    n_needed = (max(args.steps, args.pipeline_steps) + args.warmup) * bs
    n_images = min(50_000, max(5_000, n_needed))  # one epoch covers the timed steps where it can
    data = synthetic_dataset(n_per_class=-(-n_images // 10), num_classes=10, channels=3, size=32, seed=0)
    rows = []

    def measure(what: str, model: str | None, steps: int) -> Row:
        rates, loads = [], []
        for make_batches in (lambda: device_batches(data, bs, dev),
                             lambda: dataloader_batches(data, bs, args.num_workers, dev)):
            batches = make_batches()
            step = make_train_step(make_model(model, data, dev), dev) if model else None
            rates.append(images_per_second(batches, step, args.warmup, steps, dev))
            loads.append(load_average())
            batches.close()  # shuts the DataLoader's workers down before the next measurement
        row = Row(what, *rates, tuple(loads))
        print(f"  {what}: on-device {row.on_device:,.1f} img/s, DataLoader {row.dataloader:,.1f} img/s",
              file=sys.stderr, flush=True)
        return row

    rows.append(measure("data pipeline only (no model)", None, args.pipeline_steps))
    for name in args.models:
        rows.append(measure(name, name, args.steps))
    return rows


def fmt_rate(x: float) -> str:
    """Images/s to three or so significant figures."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def table(rows: list[Row], num_workers: int) -> list[str]:
    """The markdown table of `rows`."""
    lines = [
        f"| model | on-device loader (img/s) | DataLoader + torchvision, {num_workers} workers (img/s) "
        "| on-device / DataLoader | load avg after each |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.what} | {fmt_rate(r.on_device)} | {fmt_rate(r.dataloader)} "
                     f"| {r.on_device / r.dataloader:.2f}x | {r.loads[0]:.1f} / {r.loads[1]:.1f} |")
    return lines


# --- GPU extras --------------------------------------------------------------------------------------


def resnet18_epoch(dev: torch.device) -> list[str]:
    """One epoch of protocol paper-resnet18 on 50,000 CIFAR-shaped images via `train` (amp, channels_last)."""
    data = synthetic_dataset(n_per_class=5_100, seed=0)
    train_set, test_set = data.subset(slice(0, 50_000)), data.subset(slice(50_000, 51_000))
    hist = train(train_set, test_set, get_protocol("paper-resnet18", epochs=1), device=dev, quiet=True)
    t = hist.epoch_time[0]
    return [
        "ResNet-18 epoch (`train`, protocol `paper-resnet18`, epochs=1, 50,000 synthetic 3x32x32 images, "
        f"batch 128, autocast {amp_dtype(dev)}, channels_last; test set 1,000): **{t:.1f} s** "
        f"({50_000 / t:,.0f} img/s incl. the first-epoch warm-up and the 1,000-image evaluation)."
    ]


def fastnet_plateau(dev: torch.device) -> list[str]:
    """FastNet (protocol `fast`) on Fashion-MNIST as 32x32 RGB: per-epoch accuracy and time to its plateau."""
    try:
        train_set = load_dataset("fashion-mnist", "train", rgb=True, size=32)
        test_set = load_dataset("fashion-mnist", "test", rgb=True, size=32)
    except FileNotFoundError as err:
        return [f"FastNet plateau: skipped, Fashion-MNIST is not available offline ({err})."]
    proto = get_protocol("fast")
    hist = train(train_set, test_set, proto, device=dev, quiet=True)
    elapsed = list(itertools.accumulate(hist.epoch_time))
    best = hist.peak_acc
    at = next(i for i, a in enumerate(hist.test_acc) if a >= best - 0.005)
    lines = [
        f"FastNet (`train`, protocol `fast`, {hist.epochs} epochs, batch {proto.batch_size}) on "
        f"Fashion-MNIST as 32x32 RGB ({len(train_set):,} train / {len(test_set):,} test): best test accuracy "
        f"{100 * best:.2f}%; within 0.5 points of it after epoch {at + 1}, **{elapsed[at]:.1f} s** "
        f"(training + per-epoch evaluation); all {hist.epochs} epochs {elapsed[-1]:.1f} s.",
        "",
        "| epoch | test acc (%) | elapsed (s) |",
        "|---:|---:|---:|",
    ]
    for i, (acc, t) in enumerate(zip(hist.test_acc, elapsed, strict=True)):
        lines.append(f"| {i + 1} | {100 * acc:.2f} | {t:.1f} |")
    return lines


# --- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (step counts default by device: short on CPU, longer on CUDA)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per measurement (default: 10 CPU, 200 CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 2 CPU, 20 CUDA)")
    p.add_argument("--pipeline-steps", type=int, default=None,
                   help="timed batches for the data-only row (default: 50 CPU, 200 CUDA)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--models", nargs="+", default=["resnet18", "fastnet", "fastnet-small"],
                   choices=MODEL_CHOICES)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--gpu-extras", action="store_true",
                   help="on CUDA: ResNet-18 epoch time and FastNet time to plateau on Fashion-MNIST")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Measure, print the markdown report and optionally append it to RESULTS.md."""
    args = parse_args(argv)
    try:
        dev = pick_device(args.device)
    except ValueError as err:  # --device cuda on a machine without CUDA
        sys.exit(str(err))
    if dev.type not in ("cpu", "cuda"):
        dev = torch.device("cpu")  # MPS under "auto": this benchmark compares CPU and CUDA only
    on_gpu = dev.type == "cuda"
    defaults = {"steps": (10, 200), "warmup": (2, 20), "pipeline_steps": (50, 200)}  # (CPU, CUDA)
    for name, (cpu_default, gpu_default) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, gpu_default if on_gpu else cpu_default)
    if min(args.steps, args.pipeline_steps, args.batch_size) < 1 or args.warmup < 0 or args.num_workers < 0:
        sys.exit("steps, pipeline-steps and batch-size must be >= 1; warmup and num-workers >= 0")

    print(f"bench_training on {dev}: batch {args.batch_size}, warm-up {args.warmup}, "
          f"{args.steps} timed steps ({args.pipeline_steps} for the data-only row)",
          file=sys.stderr, flush=True)
    load_before = load_average()
    if dev.type == "cpu" and load_before > 0.5:
        print(f"  note: load average {load_before:.2f} before starting; others will slow the timings",
              file=sys.stderr)
    rows = compare(args, dev)
    lines = [
        *section_header("bench_training.py", dev, load_before),
        "",
        f"Training throughput, CIFAR-shaped synthetic data (3x32x32, 10 classes), batch {args.batch_size}, "
        f"SGD 0.1/0.9/5e-4, crop 4 + flip; images/s over {args.steps} steps after {args.warmup} warm-up "
        f"steps (data-only row: {args.pipeline_steps} batches).",
        "",
        *table(rows, args.num_workers),
        "",
    ]
    if args.gpu_extras and on_gpu:
        print("  GPU extras: ResNet-18 epoch, FastNet plateau ...", file=sys.stderr, flush=True)
        lines += [*resnet18_epoch(dev), "", *fastnet_plateau(dev), ""]
    elif args.gpu_extras:
        lines += ["GPU extras (ResNet-18 epoch time, FastNet time to plateau) skipped: they need CUDA "
                  f"and the device is {dev.type}.", ""]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
