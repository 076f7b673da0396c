"""The registered AR attacks, `ar` (L2) and `ar-linf` (L∞): coefficients chosen per dataset, noise generated,
guarded, added and quantised.

As upstream builds its poisons (psandovalsegura/autoregressive-poisoning:create_ar_poisons_3channel.py@bf350b0;
Sandoval-Segura et al., NeurIPS 2022, arXiv 2206.03693): every image i gets its own AR noise δ_i, driven by its
class's process, scaled to ‖δ_i‖_p = eps, then x̃_i = clamp(x_i + δ_i, 0, 1) is stored with round-half-up. L2 with
eps = 1 for 3×32×32 is the threat model the upstream README recommends; `ar-linf` (eps = 8/255) is the variant its
README warns is suboptimal with the released coefficients.
"""

from __future__ import annotations

import math
import time

import torch

from ...checks import check_choice, check_seed
from ...data import ImageSet
from ...device import make_generator, pick_device
from ..base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from ..registry import register
from .coefficients import check_coefficients, matching_filter, released_coefficients
from .diagnostics import _check_separable, _ratio, filter_responses
from .finder import _find
from .generate import MAX_GROWTH, _check_crop, _check_limit, _single_threaded_ops, generate_ar

COEFFICIENT_CHOICES = ("auto", "cifar10", "cifar100", "find")
DIAGNOSTIC_IMAGES = 256  # images on which the attack measures the own/other diagnostic


def default_l2_eps(shape: tuple[int, int, int]) -> float:
    """The default L2 budget: 1.0 for 3×32×32 (the paper), and the same per-value RMS (1/√3072 ≈ 4.6/255)
    for other shapes: eps = sqrt(C·H·W / 3072). This gives 3.0 for 3×96×96, the paper's STL-10 budget."""
    return math.sqrt(math.prod(shape) / 3072.0)


def _resolve_coefficients(spec, num_classes: int, channels: int, size: tuple[int, int], crop: int, seed: int,
                          quiet: bool) -> tuple[torch.Tensor, str, dict]:
    """The (num_classes, C, 3, 3) processes to use, a description of where they came from, and extra info."""
    hint = (f"coefficients='find' (find_ar_coefficients({num_classes}, channels={channels}))")
    if isinstance(spec, str):
        key = spec.lower().replace("-", "")
        if key not in COEFFICIENT_CHOICES:
            raise ValueError(f"coefficients must be one of {COEFFICIENT_CHOICES} or an array (K, C, 3, 3), "
                             f"got {spec!r}")
        if key == "find":
            with _single_threaded_ops():
                found, tries = _find(num_classes, channels, None, 200_000, seed, (size[0] + crop, size[1] + crop),
                                     crop, quiet)
            return torch.from_numpy(found), "find", {"finder_tries": tries, "found_coefficients": found.tolist()}
        if channels != 3:
            raise ValueError(
                f"the released AR coefficients are for 3-channel (RGB) images, but this dataset has {channels} "
                f"channel(s). Pass {hint} to search processes for {channels} channel(s), or convert the images "
                "to RGB with load_dataset(..., rgb=True) (or uel_helpers.data.to_rgb)")
        if key == "auto":
            if num_classes > 100:
                raise ValueError(f"the released AR coefficients cover at most 100 classes, this dataset has "
                                 f"{num_classes}; pass {hint} to search {num_classes} processes")
            key = "cifar10" if num_classes <= 10 else "cifar100"
        full = released_coefficients(key)
        if num_classes > len(full):
            raise ValueError(f"the released {key!r} AR set has {len(full)} processes but this dataset has "
                             f"{num_classes} classes; use coefficients='cifar100' (up to 100) or {hint}")
        return torch.from_numpy(full[:num_classes]), key, {}
    b = check_coefficients(spec, channels=channels)
    if len(b) < num_classes:
        raise ValueError(f"{len(b)} AR processes given for {num_classes} classes; pass at least one per class "
                         f"(the first {num_classes} are used), or {hint}")
    return b[:num_classes], "explicit", {}


def _ar_attack(attack: str, train_set: ImageSet, norm: str, *, seed: int, eps: float, crop: int,
               coefficients, rounding: str, max_growth: float, max_raw_norm: float | None,
               device: torch.device | None, quiet: bool) -> Poison:
    check_uint8_imageset(train_set, attack)
    seed = check_seed(seed, "seed", attack)
    check_choice(rounding, "rounding", ("round", "truncate"), attack)
    eps = check_eps(eps, norm, attack, train_set.shape)
    channels, h, w = train_set.shape
    crop = _check_crop(crop, h, w)
    max_growth = _check_limit(max_growth, "max_growth", attack, lo=1.0)
    if max_raw_norm is not None:
        max_raw_norm = _check_limit(max_raw_norm, "max_raw_norm", attack, lo=0.0)
    dev = pick_device(device if device is not None else "auto")
    t0 = time.perf_counter()
    b, source, extra = _resolve_coefficients(coefficients, train_set.num_classes, channels, (h, w), crop, seed, quiet)
    t1 = time.perf_counter()
    noise = generate_ar(b, train_set.labels, (h, w), crop=crop, eps=eps, p=2 if norm == "l2" else math.inf,
                        generator=make_generator(seed, dev), device=dev, max_growth=max_growth,
                        max_raw_norm=max_raw_norm, class_names=train_set.classes, quiet=quiet)
    t2 = time.perf_counter()
    # the third guard, on a sample: the generated noise must still answer ~0 to its own matching filter
    m = min(len(train_set), DIAGNOSTIC_IMAGES)
    labels = train_set.labels[:m]
    r_delta = filter_responses(matching_filter(b), lambda i0, i1: noise.delta[i0:i1], m, (channels, h, w))
    _check_separable(r_delta, labels, train_set.classes, attack)
    coeff_param = coefficients if isinstance(coefficients, str) else check_coefficients(coefficients).tolist()
    params = {"eps": eps, "crop": crop, "coefficients": coeff_param, "rounding": rounding, "max_growth": max_growth,
              "max_raw_norm": max_raw_norm}
    raw = noise.raw_l2
    info = {
        "norm": norm, "coefficients": source, "generated_size": [h + crop, w + crop], "device": str(dev),
        "raw_l2_min": float(raw.min()) if len(raw) else None,
        "raw_l2_median": float(raw.median()) if len(raw) else None,
        "raw_l2_max": float(raw.max()) if len(raw) else None,
        "growth_per_step_max": float(noise.growth.max()) if len(raw) else None,
        "delta_linf_median": float(noise.linf.median()) if len(raw) else None,
        "seconds_coefficients": t1 - t0, "seconds_generate": t2 - t1, **extra,
    }
    poison = poison_from_delta(attack, train_set, noise.delta, params, seed, rounding, info, classwise=False)
    stored, clean = poison.poisoned.images, train_set.images

    def effective(i0: int, i1: int) -> torch.Tensor:  # what the stored poison adds, one chunk at a time
        return stored[i0:i1].float().div_(255).sub_(clean[i0:i1].float().div_(255))

    r_stored = filter_responses(matching_filter(b), effective, m, (channels, h, w))
    poison.info["own_other_ratio_delta"] = _ratio(r_delta, labels)
    poison.info["own_other_ratio_stored"] = _ratio(r_stored, labels)
    poison.info["seconds_total"] = time.perf_counter() - t0
    return poison


@register("ar", "Autoregressive perturbations (Sandoval-Segura et al. 2022), L2", "L2 1.0 (3x32x32)",
          recompute_delta=True)
def ar(
    train_set: ImageSet,
    *,
    seed: int = 0,
    eps: float | None = None,
    crop: int = 4,
    coefficients="auto",
    rounding: str = "round",
    max_growth: float = MAX_GROWTH,
    max_raw_norm: float | None = None,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """AR poison with an L2 budget: every image gets its own AR noise, driven by its class's process.

    eps: the exact L2 norm of each δ in [0,1] pixel units, before clipping. Default (None): 1.0 for
    3×32×32 (the paper) and sqrt(C·H·W / 3072) for other shapes, which keeps the paper's per-value RMS
    (≈ 4.6/255): 3.0 for 3×96×96 (the paper's STL-10 budget), 0.505 for 1×28×28.
    crop: the field is (H + crop) × (W + crop); its top-left `crop` rows and columns are dropped (4 for
    CIFAR in the paper, 2 for ImageNet).
    coefficients: "auto" (the released CIFAR-10 set for up to 10 classes, else the CIFAR-100 set for up to
    100; RGB only), "cifar10", "cifar100", "find" (search new processes with find_ar_coefficients, e.g.
    for grayscale images), or an array (K', C, 3, 3) with K' >= K (the first K are used).
    rounding: "round" (round half up, as the AR export does) or "truncate".
    max_growth, max_raw_norm: the divergence guard of generate_ar (growth per recursion step, 1.15 by default;
    an optional absolute raw L2 limit, None by default). Scale-free: the paper's STL-10 (96 px, eps 3) and
    ImageNet-size (224 px, 100 classes) settings run with the defaults.
    Raises ValueError naming the class for a diverging process (NaN/Inf, growth above max_growth, or generated
    noise that no longer answers ~0 to its own matching filter), TypeError for a seed that is not an integer.
    info["own_other_ratio_delta"/"_stored"]: the own/other diagnostic (`own_other_ratio`) on the first 256 images
    (~1e-7 / below 1).
    """
    check_uint8_imageset(train_set, "ar")
    l2_eps = default_l2_eps(train_set.shape) if eps is None else eps
    return _ar_attack("ar", train_set, "l2", seed=seed, eps=l2_eps, crop=crop, coefficients=coefficients,
                      rounding=rounding, max_growth=max_growth, max_raw_norm=max_raw_norm, device=device,
                      quiet=quiet)


@register("ar-linf", "Autoregressive perturbations (Sandoval-Segura et al. 2022), L-inf", "Linf 8/255",
          recompute_delta=True)
def ar_linf(
    train_set: ImageSet,
    *,
    seed: int = 0,
    eps: float = 8 / 255,
    crop: int = 4,
    coefficients="auto",
    rounding: str = "round",
    max_growth: float = MAX_GROWTH,
    max_raw_norm: float | None = None,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """AR poison with an L∞ budget: each δ is scaled so that max|δ| = eps exactly (8/255 by default).

    The paper's README warns that the released coefficients are suboptimal for L∞ and recommends
    reporting the L2 results (`ar`). Other parameters as for `ar`.
    """
    return _ar_attack("ar-linf", train_set, "linf", seed=seed, eps=eps, crop=crop, coefficients=coefficients,
                      rounding=rounding, max_growth=max_growth, max_raw_norm=max_raw_norm, device=device,
                      quiet=quiet)
