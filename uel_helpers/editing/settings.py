"""The settings of notebook 08, declared once: the encoder attack, the proxy VAE, the JPEG sweep, the SD edit.

Sources. The attack and the edit are PhotoGuard's img2img encoder-attack demo (Salman et al., "Raising the Cost of
Malicious AI-Powered Image Editing", arXiv 2302.06588; code `MadryLab/photoguard@686bea7`,
`notebooks/demo_simple_attack_img2img.ipynb`), the protection that Sandoval-Segura, Geiping & Goldstein, "JPEG
Compressed Images Can Bypass Protections Against AI Editing" (arXiv 2304.02234), bypass with JPEG. That paper
publishes no code, no list of JPEG qualities and no metric: the quality sweep, the proxy and the measurements are
this package's design, said where they are defined.

Units: every budget here is in [0, 1] pixel units. PhotoGuard works on images in [-1, 1], so its eps 0.06 and step
0.02 are 0.03 (≈ 7.65/255) and 0.01 (≈ 2.55/255) here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..checks import check_count, check_rate, check_seed
from ..profiles import resolve_profile

# JPEG qualities of the sweep (design: the paper does not list its qualities); 100 first, lowest last.
JPEG_QUALITIES: tuple[int, ...] = (100, 95, 90, 85, 75, 65, 50)
# The protection budgets of the figures, one line each (design); 0.03 is PhotoGuard's eps 0.06 in [-1, 1] units.
EPSILONS: tuple[float, ...] = (4 / 255, 0.03, 16 / 255)


def _check_fields(obj, counts: tuple[str, ...], who: str) -> None:
    for name in counts:
        check_count(getattr(obj, name), name, who)


def _with(obj, who: str, changes: dict):
    unknown = set(changes) - {f.name for f in fields(obj)}
    if unknown:
        raise ValueError(f"{who}: unknown fields {sorted(unknown)}; known: {[f.name for f in fields(obj)]}")
    return replace(obj, **changes)


@dataclass(frozen=True)
class AttackSettings:
    """PhotoGuard's encoder attack (L∞ PGD with a sign step), in [0, 1] pixel units.

    Args:
        eps: L∞ budget, in (0, 1]. PhotoGuard: 0.06 in [-1, 1] units = 0.03 here (≈ 7.65/255).
        step: first step size, in (0, 1]; it decays linearly to `step * min_step_fraction` (`step_schedule`).
            PhotoGuard: 0.02 in [-1, 1] units = 0.01 here.
        iters: PGD iterations (PhotoGuard 1,000).
        min_step_fraction: the step the schedule decays towards, as a fraction of `step`: PhotoGuard's
            `step - (step - step/100) * i / iters`, i.e. 1/100.
    Raises ValueError (TypeError for a non-number) for a value outside those ranges.
    """

    eps: float = 0.03
    step: float = 0.01
    iters: int = 1000
    min_step_fraction: float = 0.01

    def __post_init__(self) -> None:
        who = "AttackSettings"
        check_rate(self.eps, "eps", who, lo=0.0, hi=1.0, lo_open=True)
        check_rate(self.step, "step", who, lo=0.0, hi=1.0, lo_open=True)
        check_rate(self.min_step_fraction, "min_step_fraction", who, lo=0.0, hi=1.0)
        _check_fields(self, ("iters",), who)

    def with_(self, **changes) -> AttackSettings:
        """A copy with some fields changed, e.g. `attack_settings("quick").with_(eps=4 / 255)`."""
        return _with(self, "AttackSettings", changes)


ATTACK_PROFILES: dict[str, AttackSettings] = {
    "smoke": AttackSettings(iters=5),     # seconds in CI: says nothing about strength
    "quick": AttackSettings(iters=200),   # the proxy on 2 CPU cores (design: 200-1,000 for a small proxy)
    "paper": AttackSettings(),            # PhotoGuard: eps 0.06, step 0.02 ([-1, 1] units), 1,000 iterations
}


def attack_settings(profile: str | None = None, **overrides) -> AttackSettings:
    """The attack settings of a profile (smoke / quick / paper; None = the default profile), with overrides."""
    s = ATTACK_PROFILES[resolve_profile(profile)]
    return s.with_(**overrides) if overrides else s


@dataclass(frozen=True)
class ProxySettings:
    """The small convolutional VAE that stands in for Stable Diffusion's autoencoder (design; every figure made
    with it is labelled "proxy").

    Architecture (`ProxyVAE`): 3 convolutions down to a `latent_channels` x (side/4) x (side/4) latent (4 x 8 x 8 for
    32 px images, as SD's VAE has 4 latent channels), mirrored (transposed) convolutions up, a sigmoid output.
    Loss: MSE(x̂, x) + kl_weight · KL(q(z|x) ‖ N(0, I)) (both means over elements), Adam.

    Args:
        n_per_class: training images per class (None = the whole training split).
        epochs, batch_size, lr: Adam's schedule (constant lr).
        width: channels of the first convolution (the second has 2x).
        latent_channels: channels of the latent.
        kl_weight: weight of the KL term (a small one, as latent-diffusion VAEs use: the latent stays informative).
        strength: the editor's noise strength s in z_s = sqrt(1 - s) E(x) + sqrt(s) ε (PhotoGuard's img2img
            strength is 0.5).
    """

    n_per_class: int | None = 1000
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 32
    latent_channels: int = 4
    kl_weight: float = 1e-3
    strength: float = 0.5

    def __post_init__(self) -> None:
        who = "ProxySettings"
        if self.n_per_class is not None:
            check_count(self.n_per_class, "n_per_class", who)
        _check_fields(self, ("epochs", "batch_size", "width", "latent_channels"), who)
        check_rate(self.lr, "lr", who, lo=0.0, lo_open=True)
        check_rate(self.kl_weight, "kl_weight", who, lo=0.0)
        check_rate(self.strength, "strength", who, lo=0.0, hi=1.0)

    def with_(self, **changes) -> ProxySettings:
        """A copy with some fields changed."""
        return _with(self, "ProxySettings", changes)


PROXY_PROFILES: dict[str, ProxySettings] = {
    "smoke": ProxySettings(n_per_class=20, epochs=1, batch_size=64, width=8),
    "quick": ProxySettings(n_per_class=300, epochs=5, batch_size=64),  # ~1-2 min on 2 CPU cores
    "paper": ProxySettings(n_per_class=None, epochs=30),
}


def proxy_settings(profile: str | None = None, **overrides) -> ProxySettings:
    """The proxy VAE's settings of a profile (smoke / quick / paper; None = the default profile), with overrides."""
    s = PROXY_PROFILES[resolve_profile(profile)]
    return s.with_(**overrides) if overrides else s


@dataclass(frozen=True)
class SDEditSettings:
    """PhotoGuard's img2img demo (`MadryLab/photoguard@686bea7`, `notebooks/demo_simple_attack_img2img.ipynb`).

    Args:
        model: the Hub id of the pipeline. The demo's `runwayml/stable-diffusion-v1-5` has reportedly been taken
            down from the Hub; `stable-diffusion-v1-5/stable-diffusion-v1-5` is a mirror of the same weights
            (not checked here: no network).
        variant: the fp16 weights (the demo's `revision="fp16"`; newer diffusers call it `variant`).
        prompt, seed, strength, guidance, steps: the demo's edit; the seed is set before *each* generation.
        size: the demo's Resize(512) + CenterCrop(512).
        image_url: the demo's dog photo.
    """

    model: str = "runwayml/stable-diffusion-v1-5"
    variant: str | None = "fp16"
    prompt: str = "dog under heavy rain and muddy ground real"
    seed: int = 9222
    strength: float = 0.5
    guidance: float = 7.5
    steps: int = 50
    size: int = 512
    image_url: str = ("https://hips.hearstapps.com/hmg-prod.s3.amazonaws.com/images/"
                      "dog-puppy-on-garden-royalty-free-image-1586966191.jpg")

    def __post_init__(self) -> None:
        who = "SDEditSettings"
        check_seed(self.seed, "seed", who)
        check_rate(self.strength, "strength", who, lo=0.0, hi=1.0, lo_open=True)
        check_rate(self.guidance, "guidance", who, lo=0.0)
        _check_fields(self, ("steps", "size"), who)

    def with_(self, **changes) -> SDEditSettings:
        """A copy with some fields changed, e.g. `SDEditSettings().with_(model="...")`."""
        return _with(self, "SDEditSettings", changes)
