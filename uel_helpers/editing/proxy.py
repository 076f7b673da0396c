"""The offline proxy of notebook 08: a small convolutional VAE in place of Stable Diffusion's autoencoder, and an
"editor" that noises its latent and decodes (design; every figure made with it is labelled "proxy").

The editor stands in for img2img at strength s (Stable Diffusion's img2img starts its denoising from the noised
latent of the input: Meng et al., SDEdit, arXiv 2108.01073): z_s = sqrt(1 − s) · E(x) + sqrt(s) · ε with a fixed,
seeded ε (PhotoGuard sets the same seed before each generation), then G(z_s). It has no denoiser and no prompt; the
point is the one the protection attacks: the edit starts from E(x).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import cached, tensor_fingerprint
from ..checks import check_bool, check_rate, check_seed
from ..data import ImageSet, check_imageset
from ..device import OptimizerStep, check_finite_loss, make_generator, pick_device, seed_everything
from ..progress import progress
from .inputs import as_unit
from .settings import ProxySettings, proxy_settings

__all__ = ["ProxyEditor", "ProxyVAE", "TrainedProxy", "train_proxy_vae"]

PROXY_FORMAT = 1  # bump when the checkpoint layout or the model changes


class ProxyVAE(nn.Module):
    """A small convolutional VAE: x in [0, 1] (N, C, S, S) -> latent (N, latent_channels, S/4, S/4) -> x̂ in [0, 1].

    Encoder: conv4x4/2(C→w) · SiLU · conv4x4/2(w→2w) · SiLU · conv3x3(2w→2·latent) (mean and log-variance; the
    input is mapped to [−1, 1] first, as Stable Diffusion's VAE reads it). Decoder, mirrored: conv3x3(latent→2w) · SiLU
    · convT4x4/2(2w→w) · SiLU · convT4x4/2(w→C) · sigmoid. Sides must be multiples of 4. No normalisation layer, so
    every image is encoded independently of its batch (as with SD's VAE, whose GroupNorm is per image).
    """

    def __init__(self, channels: int = 3, width: int = 32, latent_channels: int = 4):
        super().__init__()
        self.channels, self.width, self.latent_channels = channels, width, latent_channels
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * latent_channels, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * w, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(w, channels, 4, stride=2, padding=1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of q(z | x), each (N, latent_channels, S/4, S/4); x float in [0, 1]."""
        mean, logvar = self.encoder(2 * x - 1).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The latent mean E(x) (what PhotoGuard attacks: `vae.encode(x).latent_dist.mean`)."""
        return self.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): float (N, C, S, S) in [0, 1]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(mean + eps * torch.exp(0.5 * logvar)), mean, logvar


@dataclass
class TrainedProxy:
    """A trained proxy VAE (CPU, eval mode) with its settings, per-epoch history and the training data's identity."""

    model: ProxyVAE
    settings: ProxySettings
    history: dict = field(default_factory=dict)
    seed: int = 0
    data: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_mean(x)

    def latents(self, images, batch_size: int = 512) -> torch.Tensor:
        """E(x) of uint8 or float [0, 1] images (N, C, S, S), without gradients: float (N, latent, S/4, S/4), CPU."""
        x = as_unit(images, "images", "TrainedProxy.latents")
        with torch.no_grad():
            return torch.cat([self.model.encode_mean(x[i:i + batch_size].to(self.device)).cpu()
                              for i in range(0, len(x), batch_size)])

    def reconstruct(self, images) -> torch.Tensor:
        """G(E(x)) with the latent mean: float (N, C, S, S) in [0, 1], CPU."""
        with torch.no_grad():
            return self.model.decode(self.latents(images).to(self.device)).cpu()


def _save(trained: TrainedProxy, path: Path) -> None:
    m = trained.model
    torch.save({"format": PROXY_FORMAT, "state": m.state_dict(), "channels": m.channels, "width": m.width,
                "latent_channels": m.latent_channels, "settings": asdict(trained.settings),
                "history": trained.history, "seed": trained.seed, "data": trained.data}, path)


def _load(path: Path) -> TrainedProxy:
    p = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(p, dict) or p.get("format") != PROXY_FORMAT:
        raise ValueError(f"{path} is not a proxy VAE checkpoint of format {PROXY_FORMAT}")
    model = ProxyVAE(p["channels"], p["width"], p["latent_channels"])
    model.load_state_dict(p["state"])
    return TrainedProxy(model.eval(), ProxySettings(**p["settings"]), p["history"], p["seed"], p["data"])


def _fit(train_set: ImageSet, s: ProxySettings, seed: int, dev: torch.device, quiet: bool) -> TrainedProxy:
    seed_everything(seed)
    model = ProxyVAE(train_set.channels, s.width, s.latent_channels).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    stepper = OptimizerStep(opt, dev, amp=False)
    x_u8 = train_set.images.to(dev)
    order_gen, noise_gen = make_generator(seed), make_generator(seed + 1, dev)
    n = len(x_u8)
    steps = max(1, n // s.batch_size)
    history = {"loss": [], "mse": [], "kl": [], "seconds": []}
    bar = progress(total=s.epochs * steps, quiet=quiet, desc="proxy VAE", unit="step")
    model.train()
    for epoch in range(s.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=order_gen).to(dev)
        sums = torch.zeros(3, device=dev)
        for i in range(steps):
            xb = x_u8[perm[i * s.batch_size:(i + 1) * s.batch_size]].float().div_(255.0)
            recon, mean, logvar = model(xb, noise_gen)
            mse = F.mse_loss(recon, xb)
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
            loss = mse + s.kl_weight * kl
            stepper.step(loss)
            sums += torch.stack([loss.detach(), mse.detach(), kl.detach()])
            bar.update(1)
        means = (sums / steps).tolist()
        check_finite_loss(means[0], "train_proxy_vae", where=f"in epoch {epoch + 1}", fix=f"lower lr (now {s.lr:g})")
        for k, v in zip(("loss", "mse", "kl"), means, strict=True):
            history[k].append(v)
        history["seconds"].append(time.perf_counter() - t0)
        bar.set_postfix(mse=f"{means[1]:.4f}", kl=f"{means[2]:.3f}")
    bar.close()
    data = tensor_fingerprint(train_set.images)
    return TrainedProxy(model.cpu().eval(), s, history, seed, data)


def train_proxy_vae(train_set: ImageSet, settings: ProxySettings | None = None, *, seed: int = 0, device="auto",
                    quiet: bool = False, cache: bool = True, cache_root: str | Path | None = None) -> TrainedProxy:
    """Train the proxy VAE on `train_set` (all of it: subsample with `take_per_class` first), or load it cached.

    train_set: an ImageSet of uint8 images (N, C, S, S), C = 1 or 3, S a multiple of 4 (e.g. Fashion-MNIST padded to
    32 px, `data.pad(ds, 32)`). settings: `ProxySettings` (default: the default profile's; n_per_class is applied
    by the caller, not here). The result is cached under `proxy-vae/` keyed by the data's hash, the settings and the
    seed (content-hashed; a damaged entry is rebuilt). Training runs in fp32; the returned model sits on `device`.
    Raises TypeError for a train_set that is not an ImageSet, ValueError for sides that are not multiples of 4 and
    NonFiniteLossError when the loss diverges.
    """
    who = "train_proxy_vae"
    check_imageset(train_set, "train_set", who)
    settings = proxy_settings(None) if settings is None else settings
    if not isinstance(settings, ProxySettings):
        raise TypeError(f"{who}: settings must be a ProxySettings (proxy_settings(profile)), got "
                        f"{type(settings).__name__}")
    seed = check_seed(seed, "seed", who)
    check_bool(cache, "cache", who)
    h, w = train_set.image_size
    if h % 4 or w % 4:
        raise ValueError(f"{who}: image sides must be multiples of 4 (two stride-2 convolutions), got {h}x{w}; pad "
                         "or resize first, e.g. uel_helpers.data.pad(ds, 32)")
    dev = pick_device(device)
    key = {"kind": "proxy-vae", "format": PROXY_FORMAT, "data": tensor_fingerprint(train_set.images),
           "shape": list(train_set.shape), "settings": asdict(settings), "seed": seed, "device": dev.type}
    trained = cached("proxy-vae", key, lambda: _fit(train_set, settings, seed, dev, quiet), _save, _load,
                     suffix=".pt", enabled=cache, root=cache_root)
    trained.model.to(dev).eval()
    for p in trained.model.parameters():
        p.requires_grad_(False)
    return trained


class ProxyEditor:
    """The proxy's img2img: edit(x) = G(sqrt(1 − s) · E(x) + sqrt(s) · ε_i), with ε_i ~ N(0, I) drawn from the
    generator seeded with `seed + i` for the image at position i (or `indices[k]`), so that an image gets the same ε
    whatever version of it (clean, protected, compressed) is edited, alone or in a batch (PhotoGuard sets the same
    seed before each generation).

    proxy: a `TrainedProxy`; strength s in [0, 1] (0 = reconstruct, 1 = pure noise; PhotoGuard's img2img strength is
    0.5); seed: PhotoGuard's 9222 by default. Call with uint8 or float [0, 1] images (N, C, S, S) and optionally
    `indices` (N ints: which ε each image gets; default 0 .. N − 1); returns float (N, C, S, S) in [0, 1] on the CPU.
    Raises ValueError/TypeError for a strength outside [0, 1], images of the wrong dtype or range, or indices that
    are not N non-negative ints.
    """

    def __init__(self, proxy: TrainedProxy, strength: float = 0.5, seed: int = 9222):
        if not isinstance(proxy, TrainedProxy):
            raise TypeError(f"ProxyEditor: proxy must be a TrainedProxy (train_proxy_vae(...)), got "
                            f"{type(proxy).__name__}")
        self.proxy = proxy
        self.strength = check_rate(strength, "strength", "ProxyEditor", lo=0.0, hi=1.0)
        self.seed = check_seed(seed, "seed", "ProxyEditor")

    def noise(self, shape: tuple[int, ...], indices) -> torch.Tensor:
        """ε for latents of `shape` (N, ...): row k from the generator seeded with seed + indices[k]."""
        return torch.stack([torch.randn(shape[1:], generator=make_generator(self.seed + int(i))) for i in indices])

    def __call__(self, images, indices=None) -> torch.Tensor:
        z = self.proxy.latents(images)
        idx = list(range(len(z))) if indices is None else [int(i) for i in indices]
        if len(idx) != len(z) or min(idx) < 0:
            raise ValueError(f"ProxyEditor: indices must be {len(z)} non-negative ints (one per image), got "
                             f"{indices!r}")
        s = self.strength
        z_s = math.sqrt(1 - s) * z + math.sqrt(s) * self.noise(tuple(z.shape), idx)
        with torch.no_grad():
            return self.proxy.model.decode(z_s.to(self.proxy.device)).cpu()

    def __repr__(self) -> str:
        return f"ProxyEditor(strength={self.strength:g}, seed={self.seed})"
