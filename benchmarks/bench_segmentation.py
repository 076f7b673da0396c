"""Training images per second of standard vs SAT vs AdvProp segmenters, and inpainting optimiser steps per second
(notebook 09, Sandoval-Segura, arXiv 2204.01099).

SAT and AdvProp craft BIM examples (3 steps, eps 0.03) for half of every batch before the SGD step, so each of their
steps costs about 1 + 3/2 forward-backward passes of a batch: the cost factor over standard training is printed.
Data: random uint8 images and label maps made on the host and moved to the device once (no dataset needed; speed
does not depend on the content). Two presets:

* `quick` (default): the CPU profile's shape, 32 x 32 scenes, 5 classes, UNet-lite width 12, batch 32;
* `paper`: a paper-size model, torchvision's DeepLabV3-ResNet50 (in place of upstream's PSPNet-50) on 21 classes,
  batch 16 at `--size` px (default 128; upstream crops 473 px). Meant for a GPU.

Inpainting: `--fill-images` images, L2 PGD steps of the per-pixel loss (forward + backward of the model, one batch).

    .venv/bin/python benchmarks/bench_segmentation.py --record
    .venv/bin/python benchmarks/bench_segmentation.py --preset paper --size 473 --record    # on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_common import emit, load_average, section_header

from uel_helpers.device import pick_device
from uel_helpers.segmentation import (
    METHODS,
    InpaintSettings,
    SegScenes,
    inpaint,
    masks_on_objects,
    scaled_patch,
    seg_settings,
    train_segmenter,
)

PRESETS = {
    "quick": dict(model="unet-lite", width=12, classes=5, size=32, batch=32, profile="quick"),
    "paper": dict(model="deeplabv3-resnet50", width=16, classes=21, size=128, batch=16, profile="paper"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--size", type=int, default=None, help="image side (default: the preset's)")
    p.add_argument("--batch", type=int, default=None, help="training batch (even; default: the preset's)")
    p.add_argument("--steps", type=int, default=None, help="timed SGD steps (default: 20 on CUDA, 4 on CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed SGD steps first")
    p.add_argument("--fill-images", type=int, default=32, help="images inpainted together")
    p.add_argument("--fill-steps", type=int, default=None, help="timed inpainting steps (default: 100 CUDA, 20 CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--record", action="store_true")
    return p.parse_args(argv)


def random_scenes(n: int, size: int, classes: int, seed: int = 0) -> SegScenes:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n, size, size), generator=gen).to(torch.uint8)
    return SegScenes(images, labels, tuple(f"class {k}" for k in range(classes)), name="random")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    dev = pick_device(args.device)
    pre = PRESETS[args.preset]
    size, batch = args.size or pre["size"], args.batch or pre["batch"]
    steps = args.steps or (20 if dev.type == "cuda" else 4)
    fill_steps = args.fill_steps or (100 if dev.type == "cuda" else 20)
    base = seg_settings(pre["profile"]).with_(model=pre["model"], width=pre["width"], batch_size=batch, epochs=1,
                                              pretrained=False, flip=True)
    rows, rates = [], {}
    for method in METHODS:
        if args.warmup:
            warm = random_scenes(args.warmup * batch, size, pre["classes"])
            train_segmenter(warm, method, base, device=dev, quiet=True, cache=False)
        scenes = random_scenes(steps * batch, size, pre["classes"], seed=1)
        run = train_segmenter(scenes, method, base, device=dev, quiet=True, cache=False)
        rates[method] = steps * batch / run.history.seconds[0]
        factor = rates["standard"] / rates[method]
        rows.append(f"| train {method}, {pre['model']}, batch {batch}, {steps} steps | {rates[method]:.1f} images/s "
                    f"({run.history.seconds[0] / steps:.3f} s/step) | {factor:.2f}x standard's cost |")
    model = run.model  # the AdvProp network, clean route: inpainting runs the evaluated network
    scenes = random_scenes(args.fill_images, size, pre["classes"], seed=2)
    mask = masks_on_objects(scenes, scaled_patch(size))
    x, y = scenes.to_float(), scenes.labels.long()
    inpaint(model, x, y, mask, InpaintSettings(steps=1), device=dev)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    inpaint(model, x, y, mask, InpaintSettings(steps=fill_steps), device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    fill_s = time.perf_counter() - t0
    rate = fill_steps / fill_s
    rows.append(f"| inpaint {args.fill_images} images, {pre['model']}, {fill_steps} steps | {rate:.2f} steps/s "
                f"({rate * args.fill_images:.0f} image-steps/s) | 150 steps (quick): {150 / rate:.1f} s; 720 "
                f"(upstream's peer recipe): {720 / rate:.1f} s |")
    lines = [*section_header("bench_segmentation.py", dev, load_before), "",
             f"Data: random uint8 images and label maps, {pre['classes']} classes, {size} x {size} px (preset "
             f"`{args.preset}`), on the device. SAT/AdvProp: BIM 3 x 0.01 (eps 0.03) on half of each batch.", "",
             "| what | rate | cost |", "|---|---:|---|", *rows, ""]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
