"""Encoder-attack iterations per second (notebook 08; PhotoGuard's encoder attack, arXiv 2302.06588 §3).

Rows:
* the proxy VAE (`ProxyVAE`, randomly initialised at the `quick` width; the speed does not depend on training) on a
  batch of 3 x 32 x 32 images: PhotoGuard's attack, and the adaptive one through kornia's differentiable JPEG
  (`RandomJPEG`);
* Stable Diffusion v1.x's VAE encoder (`random_vae()`: SD's architecture, randomly initialised, no download) on one
  image of `--sd-size` px, fp16 under autocast on CUDA (as PhotoGuard), fp32 on a CPU. Goal (issue 19): PhotoGuard's
  1,000 iterations on one 512 x 512 image in <= 60 s on one H100-class GPU; on a CPU only a small size is timed and
  the goal is not judged.

    .venv/bin/python benchmarks/bench_editing.py --record                     # CPU: proxy + SD VAE at 64 px
    .venv/bin/python benchmarks/bench_editing.py --sd-size 512 --record       # on a GPU: the goal's setting
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch
from bench_common import emit, load_average, section_header

from uel_helpers.device import pick_device
from uel_helpers.editing import AttackSettings, ProxyVAE, RandomJPEG, SDEncoder, encoder_attack, random_vae

GOAL_S = 60.0  # 1,000 iterations, one 512 x 512 image, H100-class GPU, fp16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--n", type=int, default=50, help="proxy images per batch (the quick effect test's 50)")
    p.add_argument("--size", type=int, default=32, help="proxy image side (a multiple of 4)")
    p.add_argument("--iters", type=int, default=None, help="timed proxy iterations (default 200 on CUDA, 20 on CPU)")
    p.add_argument("--sd-size", type=int, default=None,
                   help="SD VAE image side, a multiple of 8; 0 skips the row (default 512 on CUDA, 64 on CPU)")
    p.add_argument("--sd-iters", type=int, default=None, help="timed SD iterations (default 50 on CUDA, 2 on CPU)")
    p.add_argument("--record", action="store_true")
    return p.parse_args(argv)


def _rate(encoder, images: torch.Tensor, iters: int, transform=None, device=None) -> tuple[float, float]:
    """(iterations per second, seconds) of `iters` attack iterations after a 1-iteration warm-up."""
    s = AttackSettings(eps=0.03, step=0.01, iters=1)
    encoder_attack(encoder, images, s, transform=transform, quiet=True, device=device)  # warm-up
    if images.device.type == "cuda" or (device is not None and torch.device(device).type == "cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    encoder_attack(encoder, images, s.with_(iters=iters), transform=transform, quiet=True, device=device,
                   batch_size=len(images))
    seconds = time.perf_counter() - t0
    return iters / seconds, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    dev = pick_device(args.device)
    cuda = dev.type == "cuda"
    iters = args.iters or (200 if cuda else 20)
    rows = []
    torch.manual_seed(0)
    model = ProxyVAE(3, width=32, latent_channels=4).to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    images = torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8)
    rate, sec = _rate(model.encode_mean, images, iters)
    rows.append(f"| proxy VAE, PhotoGuard attack, {args.n} images of 3x{args.size}x{args.size} | {iters} | "
                f"{rate:.1f} it/s ({rate * args.n:,.0f} image-it/s) | 200 iterations (quick): {200 / rate:.1f} s; "
                f"1,000: {1000 / rate:.1f} s |")
    if importlib.util.find_spec("kornia") is not None:
        rate_a, _ = _rate(model.encode_mean, images, iters, transform=RandomJPEG())
        rows.append(f"| proxy VAE, adaptive (RandomJPEG, kornia), same batch | {iters} | {rate_a:.1f} it/s | "
                    f"200 iterations: {200 / rate_a:.1f} s ({rate / rate_a:.1f}x slower) |")
    else:
        rows.append("| proxy VAE, adaptive | — | kornia not installed (the `editing` extra) | — |")
    sd_size = args.sd_size if args.sd_size is not None else (512 if cuda else 64)
    if sd_size and importlib.util.find_spec("diffusers") is not None:
        sd_iters = args.sd_iters or (50 if cuda else 2)
        dtype = torch.float16 if cuda else torch.float32
        vae = random_vae(dtype=dtype, device=dev)
        vae.requires_grad_(False)
        photo = torch.randint(0, 256, (1, 3, sd_size, sd_size), dtype=torch.uint8)
        rate_sd, sec_sd = _rate(SDEncoder(vae), photo, sd_iters, device=dev)
        t1000 = 1000 / rate_sd
        verdict = (f" (≤ {GOAL_S:.0f} s: {'met' if t1000 <= GOAL_S else 'missed'})" if cuda and sd_size == 512
                   else " (goal judged only at 512 px on a GPU)")
        rows.append(f"| SD v1.x VAE encoder (random weights), 1 image of 3x{sd_size}x{sd_size}, "
                    f"{'fp16 autocast' if cuda else 'fp32'} | {sd_iters} | {rate_sd:.2f} it/s | "
                    f"PhotoGuard's 1,000 iterations: {t1000:.0f} s{verdict} |")
    elif sd_size:
        rows.append("| SD VAE encoder | — | diffusers not installed (the `editing` extra) | — |")
    lines = [*section_header("bench_editing.py", dev, load_before), "",
             "Encoder attack (`encoder_attack`: forward + backward through the encoder, sign step, projection), "
             "random uint8 images; iterations per second after a 1-iteration warm-up.", "",
             "| what | timed iterations | rate | implied |", "|---|---:|---:|---|", *rows, ""]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
