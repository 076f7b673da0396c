"""The D-VAE networks and their loss: a rate-capped VAE plus a perturbation decoder fed by a class embedding.

Yu et al., "Purify Unlearnable Examples via Rate-Constrained Variational Autoencoders", ICML 2024, arXiv
2405.01460; architecture of `yuyi-sd/D-VAE@9d62e4c` (`configs/models/resnet.py`, class `ResNetDVAE`, with
`configs/cifar10/resnet18DVAE.yaml`: `stem_end_block 7`, `latent_dim 256`), loss of `main_vae_disentangle.py`
(`VAE_Trainer.train_batch`) at the same commit.

Model (`DVAE`; `VAE` is the same without the perturbation branch, the plain rate-constrained VAE of the
paper's §3, which the reference code does not ship in a runnable form):

    encoder  conv3x3(C->w) BN ReLU, layer1 = 2 BasicBlocks(w), layer2[0] = BasicBlock(w->2w, stride 2)   h
    latent   mu = Conv1x1(2w->d)(h), logvar = Conv1x1(2w->d)(h), z = mu + exp(logvar/2)·eps     (spatial)
             z' = Conv1x1(d->2w)(z)
    decoder  ConvT(2w->w, k4 s2 p1), ConvT(w->w, k3) IN ReLU, ConvT(w->w/2, k3) IN ReLU, ConvT(w/2->C, k3),
             Sigmoid                                                                                   x̂ = D(z')
    D_p      the same stack without the Sigmoid, fed with u_y + z', u_y = Embedding(K, 2w·h'·w')(y)    p̂
             (the shipped scripts' sample_wise, not use_y, spatial_emb configuration; N(0,1) init)

with w = 64, d = 256 in the paper (a 256×16×16 latent for CIFAR). InstanceNorm has no affine parameters. The
network is fully convolutional; only the class embedding (2w × H/2 × W/2) grows with the image. With `levels`
> 1 (images above 64 px, like the reference's ImageNet `stem_end_block 15`) the encoder keeps layer2..layer
`levels` and the first block of the next, and the decoder starts with `levels` ConvT(k4, s2) upsamplings, all
but the last followed by InstanceNorm and ReLU.

Loss (`dvae_loss`, per batch, MSE = mean over all elements, no augmentation):

    L = MSE(x̂, x) + MSE(clamp(x̂ + p̂, 0, 1), x) + w_KL·max(KL, C) + [epoch > 10]·max(mean p̂², 0.002)

KL is the mean over (batch, latent rows, latent columns) of the KL summed over the d latent channels, so C
is a cap in nats per latent position (≈ C·H·W/4 nats per image at levels 1). `max(KL, C)` is a hinge: below
the cap it is the constant C and passes NO gradient; w_KL = 0.01 if C > 0.99 else 0.5 (the reference's rule).
`vae_loss` is MSE(x̂, x) + w_KL·max(KL, C).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...checks import check_seed
from ...models import BasicBlock  # the CIFAR ResNet block (kuangliu), shared with the victim
from .settings import P_FLOOR, check_image_size, default_levels, kl_weight

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
    """The plain rate-constrained VAE (arXiv 2405.01460 §3): D-VAE's encoder, spatial latent and main decoder,
    without the perturbation branch.

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
    """D-VAE (Yu et al., ICML 2024, arXiv 2405.01460; `yuyi-sd/D-VAE@9d62e4c`, `configs/models/resnet.py`,
    `ResNetDVAE`): the VAE plus a perturbation decoder D_p fed with u_y + z' (u_y a learnable spatial class
    embedding).

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


MODEL_CLASSES: dict[str, type[VAE]] = {"vae": VAE, "dvae": DVAE}


def build_model(cls: type[VAE], shape: tuple[int, int, int], num_classes: int, width: int, latent_dim: int,
                levels: int | None, seed: int) -> VAE:
    """A freshly initialised `cls` (VAE or DVAE) for images of `shape`; the global RNG is left alone."""
    c, h, w = shape
    seed = check_seed(seed, "seed", f"build_{cls.kind}")
    levels = default_levels((h, w)) if levels is None else levels
    with torch.random.fork_rng(devices=[]):  # a fresh, seeded init that leaves the global RNG alone
        torch.manual_seed(seed)
        return cls(c, (h, w), num_classes, width, latent_dim, levels)


def build_dvae(shape: tuple[int, int, int], num_classes: int, *, width: int = 64, latent_dim: int = 256,
               levels: int | None = None, seed: int = 0) -> DVAE:
    """A freshly initialised D-VAE for images of `shape` (C, H, W); the same seed gives the same weights."""
    return build_model(DVAE, shape, num_classes, width, latent_dim, levels, seed)  # type: ignore[return-value]


def build_vae(shape: tuple[int, int, int], num_classes: int = 1, *, width: int = 64, latent_dim: int = 256,
              levels: int | None = None, seed: int = 0) -> VAE:
    """A freshly initialised plain rate-constrained VAE for images of `shape` (C, H, W)."""
    return build_model(VAE, shape, num_classes, width, latent_dim, levels, seed)


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
    """D-VAE's loss (`main_vae_disentangle.py`, `VAE_Trainer.train_batch`, `yuyi-sd/D-VAE@9d62e4c`):
    MSE(x̂,x) + MSE(clamp(x̂+p̂,0,1),x) + w_KL·max(KL,C) + [floor_on]·max(mean p̂², 0.002)."""
    x_hat, p_hat = out.x_hat.float(), out.p_hat.float()
    rec = F.mse_loss(x_hat, x)
    rec_p = F.mse_loss(torch.clamp(x_hat + p_hat, 0, 1), x)
    kl = kl_divergence(out.mu, out.logvar)
    p_energy = p_hat.pow(2).mean()
    loss = rec + rec_p + kl_hinge(kl, cap, weight)
    if floor_on:
        loss = loss + torch.clamp(p_energy, min=p_floor)
    return {"loss": loss, "rec": rec, "rec_p": rec_p, "kl": kl, "p_energy": p_energy}
