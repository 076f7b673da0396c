"""D-VAE: purify unlearnable examples with rate-constrained VAEs (Yu et al., ICML 2024, arXiv 2405.01460).

A VAE whose latent *rate* (its KL to the prior) is capped cannot transmit every detail of its input, and
the small additive perturbations of availability poisons are among the first details it drops. D-VAE adds
a second decoder that models the perturbation from a learnable class-wise embedding, so that it can be
subtracted; purification runs in two stages, each with a FRESH model (papers/03_dvae.md §1-§5, code
`yuyi-sd/D-VAE@9d62e4c`).

Model (`DVAE`; `VAE` is the same without the perturbation branch, the plain rate-constrained VAE of the
paper's first part, which the reference code does not ship in a runnable form):

    encoder  conv3x3(C->w) BN ReLU, layer1 = 2 BasicBlocks(w), layer2[0] = BasicBlock(w->2w, stride 2)   h
    latent   mu = Conv1x1(2w->d)(h), logvar = Conv1x1(2w->d)(h), z = mu + exp(logvar/2)·eps     (spatial)
             z' = Conv1x1(d->2w)(z)
    decoder  ConvT(2w->w, k4 s2 p1), ConvT(w->w, k3) IN ReLU, ConvT(w->w/2, k3) IN ReLU, ConvT(w/2->C, k3),
             Sigmoid                                                                                   x̂ = D(z')
    D_p      the same stack without the Sigmoid, fed with u_y + z', u_y = Embedding(K, 2w·h'·w')(y)    p̂
             (the shipped scripts' sample_wise, not use_y, spatial_emb configuration; N(0,1) init)

with w = 64, d = 256 in the paper (a 256×16×16 latent for CIFAR). InstanceNorm has no affine parameters.

Loss (`dvae_loss`, per batch, MSE = mean over all elements, no augmentation):

    L = MSE(x̂, x) + MSE(clamp(x̂ + p̂, 0, 1), x) + w_KL·max(KL, C) + [epoch > 10]·max(mean p̂², 0.002)

KL is the mean over (batch, latent rows, latent columns) of the KL summed over the d latent channels, so C
is a cap in nats per latent position. `max(KL, C)` is a hinge: below the cap it is the constant C and
passes NO gradient; w_KL = 0.01 if C > 0.99 else 0.5 (the reference's rule, 0.01 in both shipped stages).
`vae_loss` is MSE(x̂, x) + w_KL·max(KL, C).

Two stages (`purify`), each trained from a fresh random init (Adam 5e-3, wd 0, cosine to 0 stepped per
epoch, batch 128 shuffled with drop_last, grad-norm clip 5, 60 epochs for CIFAR-10), the model in eval mode
for purification (BatchNorm running statistics, images in a fixed order):

    stage 1 (C = 1.0):  x1 = uint8(clamp(x - p̂1(x, y), 0, 1))                      the residual, not x̂
    stage 2 (C = 3.0):  r = clamp(x1 - p̂2(x1, y), 0, 1);  x2 = uint8(clamp(x̂2(r, y), 0, 1))
                        the reconstruction of the residual-subtracted image

The reference *samples* z at purification (`sample_latent=True`, the default here); `sample_latent=False`
uses z = mu. It quantises by truncation, floor(255·x) (`rounding="truncate"`, the default here).

Image sizes and scaling (design; the reference is CIFAR-only). The network is fully convolutional, so the
same layers run at any size; only the class embedding (2w × H/2 × W/2) grows with the image. `levels` is
how many times the encoder halves the image: 1 (the CIFAR design, latent at half resolution) for images up
to 64 px, 3 above (like the reference's ImageNet configuration, `stem_end_block 15`: layer1, layer2,
layer3 and layer4[0], 8w channels at 1/8 resolution; the decoder then starts with three ConvT(k4, s2)
upsamplings, the first two followed by InstanceNorm and ReLU). Height and width must be multiples of
2**levels and at least 2·2**levels (28 and 32 px work with levels 1, 224 px with levels 3). Small images
keep the single halving (Fashion-MNIST 28 px: a 14×14 latent, 8×8 digits: 4×4), so the cap C still
counts nats per latent position: ≈ C·H·W/4 nats per image. The `quick` and `smoke` profiles make the
network narrower (w, d); see `PROFILE_SETTINGS`.

Not reproduced: the frozen poisoned classifier `model_c` of the reference, used only for logging
(§3, §7.2); the unused rest of the ResNet-18 (§2); the reference's CUDA-only and CIFAR-only code (§7).
Profile deviations are listed in `model.info["notes"]` and in the purified set's `meta["dvae"]["notes"]`.

Caching: trained models and purified sets are cached (`uel_helpers.cache.cached`) by the data's
fingerprint, every setting, the seed and the device type, never by the attack's name. While a model
trains, a checkpoint (model, optimiser, random generators, epoch) is written to the cache folder after
every epoch; an interrupted training resumes from it and gives the same weights as an uninterrupted one.

API: `purify` (registered as `dvae`), `run_stages` (the same, keeping both models and the stage-1 set),
`train_dvae` + `purify_stage` (one stage), `reconstruct` (x̂, p̂, x - p̂ and the KL of a batch, for figures),
`train_vae` + `vae_reconstruct` (the plain VAE; `vae_purify` is registered as `vae`).
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..cache import atomic_write, cache_path, cached
from ..checks import check_seed
from ..data import ImageSet, quantize
from ..device import amp_dtype, autocast, check_finite_loss, deterministic_backend, make_generator, pick_device
from ..models import BasicBlock  # the CIFAR ResNet block (kuangliu), shared with the victim
from ..poisons.base import dataset_fingerprint
from ..profiles import resolve_profile
from .registry import register

CACHE_VERSION = 1
LR = 5e-3              # Adam, weight decay 0, cosine annealing to 0 over the epochs, stepped per epoch
GRAD_CLIP = 5.0
P_FLOOR = 0.002        # max(mean p̂², 0.002): RMS ≈ 11.4/255
PAPER_FLOOR_AFTER = 10  # the floor is on for epochs > 10 (epochs count from 0), hard-coded in the reference
PAPER_EPOCHS = 60       # CIFAR-10 (100 for CIFAR-100, 20 for the ImageNet subset)
STAGE_CAPS = (1.0, 3.0)  # stage 1 and stage 2 (`--kd 3.0` of the shipped scripts; the argparse default is 2.5)
VAE_CAP = 1.0           # default cap of the plain VAE (design: the stage-1 cap; the paper's value is not known)
ROUNDINGS = ("truncate", "round")
INFER_BATCH = 256       # images per forward pass at purification (the order is fixed; no effect on BN in eval)


@dataclass(frozen=True)
class DVAESettings:
    """Per-profile defaults: epochs per stage, network width w, latent channels d, batch size."""

    epochs: int
    width: int
    latent_dim: int
    batch_size: int


PROFILE_SETTINGS: dict[str, DVAESettings] = {
    # The paper's CIFAR-10 settings (configs/cifar10/resnet18DVAE.yaml, main_vae_disentangle.py).
    "paper": DVAESettings(PAPER_EPOCHS, 64, 256, 128),
    # 2 CPU cores, 5,000 Fashion-MNIST images: both stages in 184 s (measured). With 3 epochs D-VAE recovered
    # only 40% / 56% of the accuracy AR / EM took (under-trained); with 8, 73% / 65% (tests/test_effect_dvae.py).
    "quick": DVAESettings(8, 16, 64, 128),
    # Seconds on tiny data.
    "smoke": DVAESettings(1, 8, 16, 64),
}


# --- checks ------------------------------------------------------------------------------------------------

def _check_imageset(ds: ImageSet, fn: str) -> None:
    """An ImageSet with images and valid labels (labels can be replaced after construction, so re-check)."""
    if not isinstance(ds, ImageSet):
        raise TypeError(f"{fn}: expected an ImageSet of uint8 images (load_dataset(...)), got {type(ds).__name__}")
    if len(ds) == 0:
        raise ValueError(f"{fn}: the training set is empty")
    _check_labels(ds.labels, len(ds), ds.num_classes, fn)


def _check_labels(labels, n: int, num_classes: int, fn: str) -> torch.Tensor:
    if labels is None:
        raise ValueError(f"{fn}: D-VAE needs the (possibly poisoned) training labels y: its perturbation decoder "
                         "is conditioned on a class-wise embedding u_y")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{fn}: labels must be an int64 tensor of shape ({n},), got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{fn}: labels must be integers, got {labels.dtype}")
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{fn}: expected {n} labels (one per image), got shape {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{fn}: labels must lie in [0, {num_classes}) for {num_classes} classes, got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.to(torch.int64)


def check_cap(cap: float, fn: str = "dvae", what: str = "kl_cap") -> float:
    """A KL cap C: a finite number > 0 (nats per latent position); ValueError/TypeError otherwise."""
    if isinstance(cap, bool) or not isinstance(cap, numbers.Real):
        raise TypeError(f"{fn}: {what} must be a number > 0 (nats per latent position), got {cap!r}")
    if not math.isfinite(cap) or cap <= 0:
        raise ValueError(f"{fn}: {what} must be a finite number > 0 (nats per latent position; the paper uses "
                         f"1.0 in stage 1 and 3.0 in stage 2), got {cap}")
    return float(cap)


def _check_int(value, what: str, fn: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {what} must be an int >= {lo}, got {type(value).__name__} {value!r}")
    if int(value) < lo:
        raise ValueError(f"{fn}: {what} must be an int >= {lo}, got {value}")
    return int(value)


def _check_positive(value, what: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {what} must be a number > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: {what} must be a finite number > 0, got {value}")
    return float(value)


def _check_choice(value, what: str, choices: Sequence, fn: str):
    if value not in choices:
        raise ValueError(f"{fn}: {what} must be one of {tuple(choices)}, got {value!r}")
    return value


def _check_bool(value, what: str, fn: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {what} must be True or False, got {value!r}")
    return value


def default_levels(size: tuple[int, int]) -> int:
    """How many times the encoder halves an image of `size`: 1 up to 64 px (CIFAR design), 3 above (ImageNet)."""
    return 1 if max(size) <= 64 else 3


def check_image_size(size: tuple[int, int], levels: int, fn: str = "dvae") -> None:
    """Height and width must be multiples of 2**levels and at least 2·2**levels; ValueError saying what works."""
    h, w = size
    f = 2 ** levels
    if h % f == 0 and w % f == 0 and h >= 2 * f and w >= 2 * f:
        return
    works = [lv for lv in (1, 2, 3, 4) if h % 2**lv == 0 and w % 2**lv == 0 and min(h, w) >= 2 ** (lv + 1)]
    hint = (f"; levels={works} would work for {h}x{w}" if works else
            "; no number of levels works for this size: resize the images (uel_helpers.data.resize) to even "
            "sides of at least 4 px")
    raise ValueError(
        f"{fn}: images of {h}x{w} px cannot be encoded with levels={levels}: the encoder halves the image "
        f"{levels} time(s), so height and width must be multiples of {f} and at least {2 * f} px (levels=1: even "
        f"sizes >= 4 such as 8, 16, 28, 32, 64; levels=3: multiples of 8 >= 16 such as 64, 224){hint}"
    )


def kl_weight(cap: float) -> float:
    """The reference's KL weight: 0.01 if C > 0.99 else 0.5 (so 0.01 in both shipped stages)."""
    return 0.01 if cap > 0.99 else 0.5


# --- the networks ------------------------------------------------------------------------------------------

def _encoder(channels: int, width: int, levels: int) -> nn.Sequential:
    """The truncated CIFAR ResNet-18: stem, layer1, full layers 2..levels, and the first block of the next."""
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                               BasicBlock(width, width), BasicBlock(width, width)]
    c = width
    for _ in range(1, levels):
        layers += [BasicBlock(c, 2 * c, 2), BasicBlock(2 * c, 2 * c)]
        c *= 2
    layers.append(BasicBlock(c, 2 * c, 2))
    return nn.Sequential(*layers)


def _decoder(channels: int, width: int, levels: int, sigmoid: bool) -> nn.Sequential:
    """ConvT(k4, s2) upsamplings back to full size, then the reference's k3 stack (Sigmoid for x̂ only)."""
    layers: list[nn.Module] = []
    c = width * 2**levels
    for _ in range(levels - 1):  # only for levels > 1 (design: the reference decoder has one upsampling)
        layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.InstanceNorm2d(c // 2), nn.ReLU()]
        c //= 2
    half = width // 2
    layers += [nn.ConvTranspose2d(c, width, 4, 2, 1),
               nn.ConvTranspose2d(width, width, 3, 1, 1), nn.InstanceNorm2d(width), nn.ReLU(),
               nn.ConvTranspose2d(width, half, 3, 1, 1), nn.InstanceNorm2d(half), nn.ReLU(),
               nn.ConvTranspose2d(half, channels, 3, 1, 1)]
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class VAEOutput(NamedTuple):
    """A forward pass of the plain VAE: reconstruction x̂, latent mean and log-variance (B, d, h', w')."""

    x_hat: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class DVAEOutput(NamedTuple):
    """A forward pass of D-VAE: reconstruction x̂, perturbation p̂ (unbounded), latent mean and log-variance."""

    x_hat: torch.Tensor
    p_hat: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VAE(nn.Module):
    """The plain rate-constrained VAE: D-VAE's encoder, spatial latent and main decoder, no perturbation branch.

    `arch` holds the constructor arguments (saved with the weights). forward(x) with x in [0,1], (B, C, H, W).
    """

    kind = "vae"

    def __init__(self, channels: int, size: tuple[int, int], num_classes: int, width: int = 64,
                 latent_dim: int = 256, levels: int = 1) -> None:
        super().__init__()
        check_image_size(tuple(size), levels, type(self).__name__)
        if width < 2 or width % 2:
            raise ValueError(f"{type(self).__name__}: width must be an even int >= 2 (64 in the paper), got {width}")
        self.arch = {"channels": int(channels), "size": [int(size[0]), int(size[1])], "num_classes": int(num_classes),
                     "width": int(width), "latent_dim": int(latent_dim), "levels": int(levels)}
        self.info: dict = {}
        hidden = width * 2**levels
        self.latent_shape = (latent_dim, size[0] // 2**levels, size[1] // 2**levels)
        self.hidden_shape = (hidden, *self.latent_shape[1:])
        self.encoder = _encoder(channels, width, levels)
        self.mu = nn.Conv2d(hidden, latent_dim, 1)
        self.logvar = nn.Conv2d(hidden, latent_dim, 1)
        self.post_conv = nn.Conv2d(latent_dim, hidden, 1)
        self.decoder = _decoder(channels, width, levels, sigmoid=True)

    def encode(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z', mu, logvar): mu and logvar in float32; z = mu + exp(logvar/2)·eps when `sample`, else mu."""
        h = self.encoder(x)
        mu, logvar = self.mu(h).float(), self.logvar(h).float()
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        return self.post_conv(z), mu, logvar

    def forward(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None) -> VAEOutput:
        zp, mu, logvar = self.encode(x, sample, generator)
        return VAEOutput(self.decoder(zp), mu, logvar)


class DVAE(VAE):
    """D-VAE: the VAE plus a perturbation decoder D_p fed with u_y + z' (u_y a learnable spatial class embedding).

    forward(x, y) with x in [0,1] (B, C, H, W) and labels y (B,) -> DVAEOutput(x̂, p̂, mu, logvar).
    """

    kind = "dvae"

    def __init__(self, channels: int, size: tuple[int, int], num_classes: int, width: int = 64,
                 latent_dim: int = 256, levels: int = 1) -> None:
        super().__init__(channels, size, num_classes, width, latent_dim, levels)
        self.decoder_p = _decoder(channels, width, levels, sigmoid=False)
        self.embedding = nn.Embedding(num_classes, math.prod(self.hidden_shape))  # N(0, 1) init, as the reference

    def forward(self, x: torch.Tensor, y: torch.Tensor, sample: bool = True,  # type: ignore[override]
                generator: torch.Generator | None = None) -> DVAEOutput:
        zp, mu, logvar = self.encode(x, sample, generator)
        u = self.embedding(y).view(-1, *self.hidden_shape).to(zp.dtype)
        return DVAEOutput(self.decoder(zp), self.decoder_p(u + zp), mu, logvar)


def _build(cls: type[VAE], shape: tuple[int, int, int], num_classes: int, width: int, latent_dim: int,
           levels: int | None, seed: int) -> VAE:
    c, h, w = shape
    seed = check_seed(seed, "seed", f"build_{cls.kind}")
    levels = default_levels((h, w)) if levels is None else levels
    with torch.random.fork_rng(devices=[]):  # a fresh, seeded init that leaves the global RNG alone
        torch.manual_seed(seed)
        return cls(c, (h, w), num_classes, width, latent_dim, levels)


def build_dvae(shape: tuple[int, int, int], num_classes: int, *, width: int = 64, latent_dim: int = 256,
               levels: int | None = None, seed: int = 0) -> DVAE:
    """A freshly initialised D-VAE for images of `shape` (C, H, W); the same seed gives the same weights."""
    return _build(DVAE, shape, num_classes, width, latent_dim, levels, seed)  # type: ignore[return-value]


def build_vae(shape: tuple[int, int, int], num_classes: int = 1, *, width: int = 64, latent_dim: int = 256,
              levels: int | None = None, seed: int = 0) -> VAE:
    """A freshly initialised plain rate-constrained VAE for images of `shape` (C, H, W)."""
    return _build(VAE, shape, num_classes, width, latent_dim, levels, seed)


def stage_seed(seed: int, stage: int) -> int:
    """The seed of stage `stage` of `purify` (init, data order, latent noise): distinct per stage, so fresh."""
    return int(seed) + 1_000_003 * int(stage)


# --- losses ------------------------------------------------------------------------------------------------

def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over the latent channels, averaged over batch and latent positions."""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()


def kl_hinge(kl: torch.Tensor, cap: float, weight: float | None = None) -> torch.Tensor:
    """w_KL·max(KL, C): the constant C (zero gradient) while KL < C, w_KL·KL above (w_KL = kl_weight(C))."""
    w = kl_weight(cap) if weight is None else weight
    return w * torch.clamp(kl, min=cap)


def vae_loss(x: torch.Tensor, out: VAEOutput, cap: float, weight: float | None = None) -> dict[str, torch.Tensor]:
    """The plain rate-constrained VAE's loss: MSE(x̂, x) + w_KL·max(KL, C); returns the terms and `loss`."""
    rec = F.mse_loss(out.x_hat.float(), x)
    kl = kl_divergence(out.mu, out.logvar)
    return {"loss": rec + kl_hinge(kl, cap, weight), "rec": rec, "kl": kl}


def dvae_loss(x: torch.Tensor, out: DVAEOutput, cap: float, *, floor_on: bool, weight: float | None = None,
              p_floor: float = P_FLOOR) -> dict[str, torch.Tensor]:
    """D-VAE's loss (§3): MSE(x̂,x) + MSE(clamp(x̂+p̂,0,1),x) + w_KL·max(KL,C) + [floor_on]·max(mean p̂², 0.002)."""
    x_hat, p_hat = out.x_hat.float(), out.p_hat.float()
    rec = F.mse_loss(x_hat, x)
    rec_p = F.mse_loss(torch.clamp(x_hat + p_hat, 0, 1), x)
    kl = kl_divergence(out.mu, out.logvar)
    p_energy = p_hat.pow(2).mean()
    loss = rec + rec_p + kl_hinge(kl, cap, weight)
    if floor_on:
        loss = loss + torch.clamp(p_energy, min=p_floor)
    return {"loss": loss, "rec": rec, "rec_p": rec_p, "kl": kl, "p_energy": p_energy}


# --- training ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (the cache key, with the data fingerprint, seed and device type)."""

    model: str
    kl_cap: float
    kl_weight: float
    epochs: int
    width: int
    latent_dim: int
    levels: int
    batch_size: int
    lr: float
    grad_clip: float
    p_floor: float
    floor_after: int
    amp: bool


def _cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """CosineAnnealingLR(T_max=epochs, eta_min=0) stepped per epoch, in closed form."""
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


def _resolve_config(fn: str, model: str, ds: ImageSet, cap: float, *, epochs, profile, width, latent_dim, levels,
                    batch_size, lr, weight, floor_after, amp,
                    device: torch.device) -> tuple[TrainConfig, list[str], str]:
    """Profile defaults filled in and checked; also the notes on deviations from the paper's settings."""
    prof = resolve_profile(profile)
    base = PROFILE_SETTINGS[prof]
    cap = check_cap(cap, fn)
    epochs = _check_int(base.epochs if epochs is None else epochs, "epochs", fn)
    width = _check_int(base.width if width is None else width, "width", fn, lo=2)
    if width % 2:
        raise ValueError(f"{fn}: width must be an even int >= 2 (64 in the paper), got {width}")
    latent_dim = _check_int(base.latent_dim if latent_dim is None else latent_dim, "latent_dim", fn)
    levels = _check_int(default_levels(ds.image_size) if levels is None else levels, "levels", fn)
    check_image_size(ds.image_size, levels, fn)
    batch_size = _check_int(base.batch_size if batch_size is None else batch_size, "batch_size", fn)
    lr = _check_positive(lr, "lr", fn)
    weight = kl_weight(cap) if weight is None else _check_positive(weight, "kl_weight", fn)
    if floor_after is None:
        floor_after = PAPER_FLOOR_AFTER if prof == "paper" else int(PAPER_FLOOR_AFTER * epochs / PAPER_EPOCHS)
    floor_after = _check_int(floor_after, "floor_after", fn, lo=0)
    amp = _check_bool(amp, "amp", fn) and amp_dtype(device) is not None
    cfg = TrainConfig(model, cap, weight, epochs, width, latent_dim, levels, batch_size, lr, GRAD_CLIP, P_FLOOR,
                      floor_after, amp)
    notes: list[str] = []
    if (width, latent_dim) != (64, 256):
        notes.append(f"network width w={width}, latent channels d={latent_dim} (paper: 64, 256)"
                     + (f", profile {prof!r}" if prof != "paper" else ""))
    if epochs != PAPER_EPOCHS:
        notes.append(f"{epochs} epochs per stage (paper: 60 for CIFAR-10, 100 for CIFAR-100, 20 for the ImageNet "
                     "subset)")
    if model == "dvae" and floor_after != PAPER_FLOOR_AFTER:
        notes.append(f"the perturbation-energy floor max(mean p̂², 0.002) is on for epochs > {floor_after} "
                     f"(reference: > 10, i.e. from the 12th of 60 epochs); scaled with the number of epochs")
    if model == "dvae" and floor_after >= epochs - 1:
        notes.append("the perturbation-energy floor is never switched on with this few epochs")
    if batch_size != 128:
        notes.append(f"batch size {batch_size} (paper: 128)")
    if len(ds) < batch_size:
        notes.append(f"fewer images ({len(ds)}) than a batch: one batch of all of them per epoch")
    if lr != LR:
        notes.append(f"Adam lr {lr} (paper: 5e-3)")
    if weight != kl_weight(cap):
        notes.append(f"KL weight {weight} (reference rule: {kl_weight(cap)} for C={cap})")
    if ds.shape != (3, 32, 32):
        notes.append(f"images {ds.shape}: latent {latent_dim}x{ds.image_size[0] // 2**levels}x"
                     f"{ds.image_size[1] // 2**levels} with {levels} halving(s) (paper: CIFAR 3x32x32 -> 256x16x16)")
    if cfg.amp:
        notes.append(f"mixed precision ({amp_dtype(device)}) on {device.type}; losses in float32")
    return cfg, notes, prof


def _save_model(model: VAE, path: Path) -> None:
    torch.save({"kind": model.kind, "arch": model.arch, "state": model.state_dict(), "info": model.info}, path)


def _load_model(path: Path) -> VAE:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cls = {"vae": VAE, "dvae": DVAE}[blob["kind"]]
    a = blob["arch"]
    model = cls(a["channels"], tuple(a["size"]), a["num_classes"], a["width"], a["latent_dim"], a["levels"])
    model.load_state_dict(blob["state"])
    model.info = dict(blob["info"])
    return model


def _load_checkpoint(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or stale checkpoint: start again, loudly
        warnings.warn(f"checkpoint {path} could not be read ({err}); training from the start", stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def _fit(model: VAE, x_u8: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int, device: torch.device,
         checkpoint: Path | None, quiet: bool, desc: str,
         on_epoch: Callable[[int, dict], None] | None) -> dict:
    """Train `model` in place (Adam, cosine, clip, drop_last); checkpoint every epoch; returns the history."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    order_gen = torch.Generator().manual_seed(int(seed))           # data order, on the CPU
    noise_gen = make_generator(int(seed) + 1, device)              # latent noise, on the device
    use_scaler = cfg.amp and amp_dtype(device) == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if device.type == "cuda" else None
    keys = ("loss", "rec", "rec_p", "kl", "p_energy") if isinstance(model, DVAE) else ("loss", "rec", "kl")
    history: dict = {k: [] for k in keys}
    history["epoch_seconds"] = []
    start = 0
    state = _load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        order_gen.set_state(state["order_gen"])
        noise_gen.set_state(state["noise_gen"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = {k: list(v) for k, v in state["history"].items()}
        start = int(state["epoch"])
    history["resumed_from_epoch"] = start if state is not None else None

    n = len(x_u8)
    bs = min(cfg.batch_size, n)
    steps = n // bs  # drop_last, as the reference's loader; n < batch gives one batch of all n
    params = list(model.parameters())
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=quiet or None, initial=start, total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(cfg.lr, epoch, cfg.epochs)
        perm = torch.randperm(n, generator=order_gen).to(device)
        sums = torch.zeros(len(keys), device=device)
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            xb, yb = x_u8[idx].float().div_(255.0), y[idx]
            with autocast(device, cfg.amp):
                if isinstance(model, DVAE):
                    out = model(xb, yb, generator=noise_gen)
                else:
                    out = model(xb, generator=noise_gen)
            if isinstance(model, DVAE):
                terms = dvae_loss(xb, out, cfg.kl_cap, floor_on=epoch > cfg.floor_after, weight=cfg.kl_weight,
                                  p_floor=cfg.p_floor)
            else:
                terms = vae_loss(xb, out, cfg.kl_cap, cfg.kl_weight)
            opt.zero_grad(set_to_none=True)
            if scaler is not None and use_scaler:
                scaler.scale(terms["loss"]).backward()
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
            else:
                terms["loss"].backward()
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
            sums += torch.stack([terms[k].detach() for k in keys])
        means = (sums / steps).tolist()
        # stop before a NaN/inf epoch is recorded or checkpointed (a resumed run would start from NaN weights)
        check_finite_loss(means[0], desc, where=f"in epoch {epoch + 1} (lr {cfg.lr:g})",
                          fix=f"lower lr (now {cfg.lr:g}), or turn mixed precision off (amp=False)")
        for k, v in zip(keys, means, strict=True):
            history[k].append(float(v))
        history["epoch_seconds"].append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{means[0]:.4f}", kl=f"{history['kl'][-1]:.3f}")
        if checkpoint is not None:
            ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "order_gen": order_gen.get_state(),
                    "noise_gen": noise_gen.get_state(), "scaler": scaler.state_dict() if use_scaler else {},
                    "history": {k: v for k, v in history.items() if isinstance(v, list)}, "epoch": epoch + 1}
            atomic_write(checkpoint, lambda tmp, c=ckpt: torch.save(c, tmp))
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    model.eval()
    return history


def _train(fn: str, cls: type[VAE], train_set: ImageSet, kl_cap: float, *, epochs, profile, width, latent_dim,
           levels, batch_size, lr, weight, floor_after, amp, seed, device, quiet, cache, on_epoch) -> VAE:
    _check_imageset(train_set, fn)
    seed = check_seed(seed, "seed", fn)
    _check_bool(cache, "cache", fn)
    dev = pick_device(device)
    cfg, notes, prof = _resolve_config(
        fn, cls.kind, train_set, kl_cap, epochs=epochs, profile=profile, width=width, latent_dim=latent_dim,
        levels=levels, batch_size=batch_size, lr=lr, weight=weight, floor_after=floor_after, amp=amp, device=dev)
    key = {"kind": f"{cls.kind}-model", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "shape": list(train_set.shape), "num_classes": train_set.num_classes, "config": asdict(cfg), "seed": seed,
           "device": dev.type}
    checkpoint = cache_path(f"{cls.kind}-checkpoint", key, ".ckpt") if cache else None

    built: list[bool] = []

    def build() -> VAE:
        built.append(True)
        t0 = time.perf_counter()
        model = _build(cls, train_set.shape, train_set.num_classes, cfg.width, cfg.latent_dim, cfg.levels, seed)
        with deterministic_backend(dev):
            history = _fit(model, train_set.images.to(dev), train_set.labels.to(dev), cfg, seed, dev, checkpoint,
                           quiet, f"{fn} C={cfg.kl_cap:g}", on_epoch)
        model.info = {"model": cls.kind, "profile": prof, "config": asdict(cfg), "seed": seed, "device": str(dev),
                      "train_set": train_set.name, "n_train": len(train_set), "history": history,
                      "seconds": time.perf_counter() - t0, "notes": notes}
        return model.cpu()

    model = cached(f"{cls.kind}-model", key, build, _save_model, _load_model, suffix=".pt", enabled=cache)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    model.info.setdefault("notes", notes)
    model.info["from_cache"] = not built
    return model.to(dev).eval()


def train_dvae(
    train_set: ImageSet,
    kl_cap: float,
    *,
    epochs: int | None = None,
    profile: str | None = None,
    width: int | None = None,
    latent_dim: int | None = None,
    levels: int | None = None,
    batch_size: int | None = None,
    lr: float = LR,
    kl_weight: float | None = None,
    floor_after: int | None = None,
    amp: bool = True,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> DVAE:
    """Train one fresh D-VAE on `train_set` with KL cap `kl_cap` (one stage of `purify`); returns it in eval mode.

    Settings left as None take the profile's (`PROFILE_SETTINGS`); `kl_weight` None = the reference rule,
    `floor_after` None = 10 at `paper`, scaled with the epochs otherwise. The model is cached by the data's
    fingerprint, the settings, `seed` and the device type; with `cache` a checkpoint is written after every
    epoch and an interrupted run resumes from it. `on_epoch(epoch, history)` is called after each epoch.
    `model.info` has the per-epoch losses ("history"), the settings and the deviations ("notes").
    Raises NonFiniteLossError (device.py; a FloatingPointError) as soon as an epoch's loss is NaN or infinite,
    before that epoch is checkpointed (lower lr, or amp=False); TypeError for a seed that is not an integer.
    """
    return _train("train_dvae", DVAE, train_set, kl_cap, epochs=epochs, profile=profile, width=width,  # type: ignore
                  latent_dim=latent_dim, levels=levels, batch_size=batch_size, lr=lr, weight=kl_weight,
                  floor_after=floor_after, amp=amp, seed=seed, device=device, quiet=quiet, cache=cache,
                  on_epoch=on_epoch)


def train_vae(
    train_set: ImageSet,
    kl_cap: float = VAE_CAP,
    *,
    epochs: int | None = None,
    profile: str | None = None,
    width: int | None = None,
    latent_dim: int | None = None,
    levels: int | None = None,
    batch_size: int | None = None,
    lr: float = LR,
    kl_weight: float | None = None,
    amp: bool = True,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> VAE:
    """Train the plain rate-constrained VAE (loss MSE(x̂, x) + w_KL·max(KL, C)) with the D-VAE's recipe.

    Same settings, caching and resuming as `train_dvae`; labels are not used. Returns the model in eval mode.
    Raises NonFiniteLossError as `train_dvae` does when the loss diverges.
    """
    return _train("train_vae", VAE, train_set, kl_cap, epochs=epochs, profile=profile, width=width,
                  latent_dim=latent_dim, levels=levels, batch_size=batch_size, lr=lr, weight=kl_weight,
                  floor_after=0, amp=amp, seed=seed, device=device, quiet=quiet, cache=cache, on_epoch=on_epoch)


# --- inference ---------------------------------------------------------------------------------------------

@dataclass
class DVAEOutputs:
    """A model's outputs on a batch, on the CPU in [0,1] units: x̂, p̂ (None for the plain VAE), the residual
    clamp(x - p̂, 0, 1) (stage 1's output before quantisation; x for the plain VAE) and the KL per image."""

    x_hat: torch.Tensor
    p_hat: torch.Tensor | None
    residual: torch.Tensor
    kl: torch.Tensor
    info: dict = field(default_factory=dict)


def _as_float_images(images, model: VAE, fn: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{fn}: images must be a tensor (N, C, H, W) or an ImageSet, got {type(images).__name__}")
    want = (model.arch["channels"], *model.arch["size"])
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(want):
        raise ValueError(f"{fn}: the model was trained on images of shape {tuple(want)}, got {tuple(images.shape)} "
                         "(expected (N, C, H, W))")
    if images.dtype == torch.uint8:
        return images.float().div(255.0)
    if not images.dtype.is_floating_point:
        raise TypeError(f"{fn}: images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    if len(images) and (float(images.min()) < 0 or float(images.max()) > 1):
        raise ValueError(f"{fn}: float images must lie in [0, 1], got [{float(images.min()):.4f}, "
                         f"{float(images.max()):.4f}]")
    return images.float()


def _model_device(model: VAE, device) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    return pick_device(device)


@torch.no_grad()
def reconstruct(model: VAE, images, labels: torch.Tensor | None = None, *, sample_latent: bool = True, seed: int = 0,
                batch_size: int = INFER_BATCH, device: str | torch.device | None = None,
                amp: bool = True) -> DVAEOutputs:
    """Run a trained (D-)VAE in eval mode on a batch and return x̂, p̂, clamp(x - p̂, 0, 1) and the KL per image.

    images: an ImageSet (its labels are used) or a tensor (N, C, H, W), uint8 or float in [0,1]; labels are
    required for a D-VAE. `sample_latent` samples z (as the reference's purification) with `seed`; False
    uses z = mu. `device` None = where the model is.
    """
    fn = "reconstruct"
    if not isinstance(model, VAE):
        raise TypeError(f"{fn}: expected a model from train_dvae/train_vae, got {type(model).__name__}")
    if isinstance(images, ImageSet):
        labels = images.labels if labels is None else labels
        images = images.images
    x = _as_float_images(images, model, fn)
    is_dvae = isinstance(model, DVAE)
    if is_dvae:
        y = _check_labels(labels, len(x), model.arch["num_classes"], fn)
    _check_bool(sample_latent, "sample_latent", fn)
    batch_size = _check_int(batch_size, "batch_size", fn)
    seed = check_seed(seed, "seed", fn)
    dev = _model_device(model, device)
    model.to(dev).eval()
    amp = amp and amp_dtype(dev) is not None
    gen = make_generator(seed, dev)
    xs, ps, rs, kls = [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        with autocast(dev, amp):
            out = model(xb, y[i:i + batch_size].to(dev), sample_latent, gen) if is_dvae else model(xb, sample_latent,
                                                                                                 gen)
        x_hat = out.x_hat.float()
        kl_map = -0.5 * (1 + out.logvar - out.mu.pow(2) - out.logvar.exp()).sum(1)
        kls.append(kl_map.flatten(1).mean(1).cpu())
        xs.append(x_hat.cpu())
        if is_dvae:
            p_hat = out.p_hat.float()
            ps.append(p_hat.cpu())
            rs.append(torch.clamp(xb - p_hat, 0, 1).cpu())
        else:
            rs.append(xb.cpu())
    empty = torch.empty(0, *x.shape[1:])
    cat = lambda parts: torch.cat(parts) if parts else empty.clone()
    return DVAEOutputs(cat(xs), cat(ps) if is_dvae else None, cat(rs),
                       torch.cat(kls) if kls else torch.empty(0),
                       {"sample_latent": sample_latent, "seed": seed, "model": model.kind})


@torch.no_grad()
def purify_stage(model: DVAE, ds: ImageSet, stage: int, *, sample_latent: bool = True, seed: int = 0,
                 rounding: str = "truncate", batch_size: int = INFER_BATCH, device: str | torch.device | None = None,
                 amp: bool = True, quiet: bool = True) -> ImageSet:
    """Apply one trained D-VAE stage to every image of `ds`, in order (the reference's PURIFY step).

    stage 1: uint8(clamp(x - p̂(x, y), 0, 1));  stage 2: r = clamp(x - p̂(x, y), 0, 1), uint8(clamp(x̂(r, y), 0, 1)).
    `rounding` "truncate" = floor(255·x) as the reference, "round" = the package's round half up.
    """
    fn = "purify_stage"
    if not isinstance(model, DVAE):
        raise TypeError(f"{fn}: expected a DVAE from train_dvae, got {type(model).__name__}")
    _check_imageset(ds, fn)
    if stage not in (1, 2) or isinstance(stage, bool):
        raise ValueError(f"{fn}: stage must be 1 (subtract p̂) or 2 (subtract p̂, then reconstruct), got {stage!r}")
    _check_choice(rounding, "rounding", ROUNDINGS, fn)
    _check_bool(sample_latent, "sample_latent", fn)
    seed = check_seed(seed, "seed", fn)
    if (ds.channels, *ds.image_size) != (model.arch["channels"], *model.arch["size"]) or \
            ds.num_classes != model.arch["num_classes"]:
        raise ValueError(f"{fn}: the model was trained on {model.arch['channels']}x{model.arch['size'][0]}x"
                         f"{model.arch['size'][1]} images of {model.arch['num_classes']} classes, got {ds.shape} and "
                         f"{ds.num_classes} classes")
    dev = _model_device(model, device)
    model.to(dev).eval()
    amp = amp and amp_dtype(dev) is not None
    gen = make_generator(seed, dev)
    x_all, y_all = ds.images.to(dev), ds.labels.to(dev)
    out = torch.empty_like(ds.images)
    with deterministic_backend(dev):
        for i in tqdm(range(0, len(ds), batch_size), desc=f"purify stage {stage}", leave=False,
                      disable=quiet or None):
            xb, yb = x_all[i:i + batch_size].float().div_(255.0), y_all[i:i + batch_size]
            with autocast(dev, amp):
                res = model(xb, yb, sample_latent, gen)
            xb = torch.clamp(xb - res.p_hat.float(), 0, 1)
            if stage == 2:
                with autocast(dev, amp):
                    res = model(xb, yb, sample_latent, gen)
                xb = torch.clamp(res.x_hat.float(), 0, 1)
            out[i:i + batch_size] = quantize(xb, rounding).cpu()
    tag = f"dvae-stage{stage}"
    return ds.with_images(out, name=f"{ds.name}+{tag}", defenses=[*ds.meta.get("defenses", []), tag])


# --- the registered defenses -------------------------------------------------------------------------------

@dataclass
class DVAEStages:
    """What `run_stages` produced: the two trained stage models, the set after each stage, and the run's info."""

    models: list[DVAE]
    outputs: list[ImageSet]
    info: dict


def run_stages(
    train_set: ImageSet,
    *,
    stage_caps: tuple[float, float] = STAGE_CAPS,
    epochs: int | None = None,
    profile: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    sample_latent: bool = True,
    rounding: str = "truncate",
    width: int | None = None,
    latent_dim: int | None = None,
    levels: int | None = None,
    batch_size: int | None = None,
    lr: float = LR,
    amp: bool = True,
) -> DVAEStages:
    """The two stages of `purify`, keeping the trained models and the stage-1 set (for the notebook's figures).

    Takes the same arguments as `purify` and trains (or loads from the cache) the same models, so calling it
    after `purify` with the same arguments costs only the purification passes.
    """
    caps, seed, dev, cfgs = _check_purify_args(train_set, stage_caps, seed, sample_latent, cache, rounding, device,
                                               epochs=epochs, profile=profile, width=width, latent_dim=latent_dim,
                                               levels=levels, batch_size=batch_size, lr=lr, amp=amp)
    t0 = time.perf_counter()
    current, models, outputs, stages = train_set, [], [], []
    for stage, cap in enumerate(caps, start=1):
        s = stage_seed(seed, stage)
        model = train_dvae(current, cap, epochs=epochs, profile=profile, width=width, latent_dim=latent_dim,
                           levels=levels, batch_size=batch_size, lr=lr, amp=amp, seed=s, device=dev, quiet=quiet,
                           cache=cache)  # a FRESH model, seeded per stage
        current = purify_stage(model, current, stage, sample_latent=sample_latent, seed=s, rounding=rounding,
                               device=dev, amp=amp, quiet=quiet)
        models.append(model)
        outputs.append(current)
        hist = model.info.get("history", {})
        final = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v and k != "epoch_seconds"}
        stages.append({"stage": stage, "kl_cap": cap, "seed": s, "final": final,
                       "train_seconds": model.info.get("seconds"), "from_cache": model.info.get("from_cache")})
    notes = list(dict.fromkeys(cfgs[0][1] + cfgs[1][1]))
    if caps != STAGE_CAPS:
        notes.append(f"KL caps {caps} (shipped scripts: {STAGE_CAPS})")
    if not sample_latent:
        notes.append("z = mu at purification (the reference samples z)")
    if rounding != "truncate":
        notes.append("quantised by rounding half up (the reference truncates)")
    info = {"profile": cfgs[0][2], "stage_caps": list(caps), "config": asdict(cfgs[0][0]), "seed": seed,
            "sample_latent": sample_latent, "rounding": rounding, "device": str(dev), "stages": stages,
            "seconds": time.perf_counter() - t0, "notes": notes}
    return DVAEStages(models, outputs, info)


def _save_set(ds: ImageSet, path: Path) -> None:
    ds.save(path)


def _check_purify_args(train_set: ImageSet, stage_caps, seed, sample_latent, cache, rounding, device,
                       **settings) -> tuple[tuple[float, float], int, torch.device, list]:
    """Validate `purify`/`run_stages` arguments up front; returns caps, seed, device and both stages' configs."""
    fn = "dvae"
    _check_imageset(train_set, fn)
    caps = _check_stage_caps(stage_caps, fn)
    seed = check_seed(seed, "seed", fn)
    _check_bool(sample_latent, "sample_latent", fn)
    _check_bool(cache, "cache", fn)
    _check_choice(rounding, "rounding", ROUNDINGS, fn)
    dev = pick_device(device)
    cfgs = [_resolve_config(fn, "dvae", train_set, cap, weight=None, floor_after=None, device=dev, **settings)
            for cap in caps]
    return caps, seed, dev, cfgs


def _check_stage_caps(stage_caps, fn: str) -> tuple[float, float]:
    if isinstance(stage_caps, (str, bytes)) or not isinstance(stage_caps, Sequence) or len(stage_caps) != 2:
        raise ValueError(f"{fn}: stage_caps must be two KL caps (stage 1, stage 2), e.g. (1.0, 3.0), got "
                         f"{stage_caps!r}")
    return check_cap(stage_caps[0], fn, "stage_caps[0]"), check_cap(stage_caps[1], fn, "stage_caps[1]")


@register("dvae", "D-VAE (Yu et al., 'Purify Unlearnable Examples via Rate-Constrained Variational Autoencoders', "
          "ICML 2024): two-stage purification with fresh disentangling VAEs, KL cap 1 then 3; stage 1 subtracts "
          "the predicted perturbation, stage 2 reconstructs the residual-subtracted images")
def purify(
    train_set: ImageSet,
    *,
    stage_caps: tuple[float, float] = STAGE_CAPS,
    epochs: int | None = None,
    profile: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    sample_latent: bool = True,
    rounding: str = "truncate",
    width: int | None = None,
    latent_dim: int | None = None,
    levels: int | None = None,
    batch_size: int | None = None,
    lr: float = LR,
    amp: bool = True,
) -> ImageSet:
    """D-VAE's two-stage purification of a (poisoned) training set; returns a uint8 ImageSet with the same labels.

    Stage 1 trains a fresh D-VAE with KL cap `stage_caps[0]` and keeps x1 = uint8(clamp(x - p̂1, 0, 1));
    stage 2 trains another fresh D-VAE (`stage_caps[1]`) on x1 and outputs x2 = uint8(clamp(x̂2(clamp(x1 - p̂2)))).
    Settings left as None take the profile's (`PROFILE_SETTINGS`: `paper` 60 epochs per stage, w=64, d=256;
    `quick` and `smoke` fewer epochs and a narrower network). The purified set is cached by the input's
    fingerprint and the settings; `meta["dvae"]` records the settings, per-stage losses and the deviations.
    `run_stages(...)` with the same arguments gives the two trained models and the stage-1 set as well.
    """
    kw = dict(stage_caps=stage_caps, epochs=epochs, profile=profile, seed=seed, device=device, quiet=quiet,
              cache=cache, sample_latent=sample_latent, rounding=rounding, width=width, latent_dim=latent_dim,
              levels=levels, batch_size=batch_size, lr=lr, amp=amp)
    _, seed, dev, cfgs = _check_purify_args(train_set, stage_caps, seed, sample_latent, cache, rounding, device,
                                            epochs=epochs, profile=profile, width=width, latent_dim=latent_dim,
                                            levels=levels, batch_size=batch_size, lr=lr, amp=amp)
    key = {"kind": "dvae-purified", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "num_classes": train_set.num_classes, "configs": [asdict(c[0]) for c in cfgs], "seed": seed,
           "sample_latent": sample_latent,
           "rounding": rounding, "device": dev.type}

    def build() -> ImageSet:
        res = run_stages(train_set, **kw)
        return train_set.with_images(res.outputs[-1].images, name=f"{train_set.name}+dvae",
                                     defenses=[*train_set.meta.get("defenses", []), "dvae"], dvae=res.info)

    return cached("dvae-purified", key, build, _save_set, ImageSet.load, suffix=".npz", enabled=cache)


def vae_reconstruct(model: VAE, ds: ImageSet, *, sample_latent: bool = True, seed: int = 0,
                    rounding: str = "truncate", batch_size: int = INFER_BATCH, device: str | torch.device | None = None,
                    amp: bool = True) -> ImageSet:
    """Replace every image of `ds` by the (plain) VAE's reconstruction, uint8(clamp(x̂, 0, 1)); same labels."""
    fn = "vae_reconstruct"
    if not isinstance(model, VAE) or isinstance(model, DVAE):
        raise TypeError(f"{fn}: expected a plain VAE from train_vae, got {type(model).__name__} "
                        "(use purify_stage for a D-VAE)")
    _check_imageset(ds, fn)
    _check_choice(rounding, "rounding", ROUNDINGS, fn)
    out = reconstruct(model, ds.images, sample_latent=sample_latent, seed=seed, batch_size=batch_size, device=device,
                      amp=amp)
    tag = "vae"
    return ds.with_images(quantize(out.x_hat.clamp(0, 1), rounding), name=f"{ds.name}+{tag}",
                          defenses=[*ds.meta.get("defenses", []), tag])


@register("vae", "plain rate-constrained VAE reconstruction (Yu et al., ICML 2024, §3 'rate-constrained VAEs "
          "suppress the perturbations'): every training image replaced by its reconstruction through a VAE "
          "whose KL is capped at kl_cap nats per latent position (1.0 by default)")
def vae_purify(
    train_set: ImageSet,
    *,
    kl_cap: float = VAE_CAP,
    epochs: int | None = None,
    profile: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    sample_latent: bool = True,
    rounding: str = "truncate",
    width: int | None = None,
    latent_dim: int | None = None,
    levels: int | None = None,
    batch_size: int | None = None,
    lr: float = LR,
    amp: bool = True,
) -> ImageSet:
    """Train the plain rate-constrained VAE on `train_set` (cap `kl_cap`) and return its reconstructions (uint8).

    The same encoder/decoder, recipe and profiles as one D-VAE stage, without the perturbation branch.
    The result is cached by the input's fingerprint and the settings; `meta["vae"]` has the settings and notes.
    """
    fn = "vae"
    _check_imageset(train_set, fn)
    kl_cap = check_cap(kl_cap, fn)
    seed = check_seed(seed, "seed", fn)
    _check_bool(sample_latent, "sample_latent", fn)
    _check_bool(cache, "cache", fn)
    _check_choice(rounding, "rounding", ROUNDINGS, fn)
    dev = pick_device(device)
    cfg, notes, prof = _resolve_config(fn, "vae", train_set, kl_cap, epochs=epochs, profile=profile, width=width,
                                       latent_dim=latent_dim, levels=levels, batch_size=batch_size, lr=lr,
                                       weight=None, floor_after=0, amp=amp, device=dev)
    key = {"kind": "vae-purified", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "config": asdict(cfg), "seed": seed, "sample_latent": sample_latent, "rounding": rounding,
           "device": dev.type}

    def build() -> ImageSet:
        model = train_vae(train_set, kl_cap, epochs=epochs, profile=profile, width=width, latent_dim=latent_dim,
                          levels=levels, batch_size=batch_size, lr=lr, amp=amp, seed=seed, device=dev, quiet=quiet,
                          cache=cache)
        out = vae_reconstruct(model, train_set, sample_latent=sample_latent, seed=seed, rounding=rounding,
                              batch_size=cfg.batch_size, device=dev, amp=amp)
        hist = model.info.get("history", {})
        out.meta["vae"] = {"profile": prof, "kl_cap": kl_cap, "config": asdict(cfg), "seed": seed,
                           "sample_latent": sample_latent, "rounding": rounding, "device": str(dev),
                           "final": {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v},
                           "seconds": model.info.get("seconds"),
                           "notes": notes + ([] if sample_latent else ["z = mu at reconstruction"])}
        return out

    return cached("vae-purified", key, build, _save_set, ImageSet.load, suffix=".npz", enabled=cache)


__all__ = ["DVAE", "VAE", "DVAEOutput", "VAEOutput", "DVAEOutputs", "DVAESettings", "DVAEStages", "PROFILE_SETTINGS",
           "TrainConfig", "build_dvae", "build_vae", "check_cap", "check_image_size", "default_levels", "dvae_loss",
           "kl_divergence", "kl_hinge", "kl_weight", "purify", "purify_stage", "reconstruct", "run_stages",
           "stage_seed", "train_dvae", "train_vae", "vae_loss", "vae_purify", "vae_reconstruct"]
