"""The attack registry: name -> function(ImageSet, seed=..., **params) -> Poison, and `make_poison`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from ..cache import cached
from ..checks import check_bool, check_seed
from ..data import ImageSet
from ..device import pick_device
from ..profiles import resolve_profile
from .base import Poison, check_uint8_imageset, dataset_fingerprint

CACHE_VERSION = 1  # bump when an attack's output changes, so old cache files are not reused


@dataclass(frozen=True)
class AttackSpec:
    name: str
    fn: Callable[..., Poison]
    description: str
    budget: str  # e.g. "L2 1.0", "Linf 8/255", "L0 1 pixel", "none (blur)"
    # True when a sample-wise δ is cheap to rebuild from the seed (seconds, no training): the cache then stores
    # only the uint8 images and rebuilds δ on first access, instead of writing 4 bytes per pixel (issue 16 #11).
    recompute_delta: bool = False


REGISTRY: dict[str, AttackSpec] = {}


def register(name: str, description: str, budget: str, *,
             recompute_delta: bool = False) -> Callable[[Callable[..., Poison]], Callable[..., Poison]]:
    """Decorator: add an attack function to REGISTRY under `name` (see AttackSpec for `recompute_delta`)."""

    def deco(fn: Callable[..., Poison]) -> Callable[..., Poison]:
        if name in REGISTRY:
            raise ValueError(f"attack {name!r} is registered twice")
        REGISTRY[name] = AttackSpec(name, fn, description, budget, recompute_delta)
        return fn

    return deco


def attack_params(name: str) -> dict:
    """The parameters an attack accepts, with their defaults."""
    spec = get_attack(name)
    sig = inspect.signature(spec.fn)
    return {p.name: p.default for p in list(sig.parameters.values())[1:] if p.kind == p.KEYWORD_ONLY}


def get_attack(name: str) -> AttackSpec:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown attack {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def make_poison(
    name: str,
    train_set: ImageSet,
    seed: int = 0,
    cache: bool = True,
    device: str | None = "auto",
    quiet: bool = False,
    **params,
) -> Poison:
    """Run attack `name` on `train_set` (or load the identical poison from the cache).

    Parameters not given take the attack's defaults; unknown ones are an error. Attacks that take a
    `profile` get the current one (UEL_PROFILE / the machine) unless it is given.
    """
    spec = get_attack(name)
    check_uint8_imageset(train_set, name)
    seed = check_seed(seed, "seed", f"make_poison({name!r})")
    cache = check_bool(cache, "cache", f"make_poison({name!r})")
    accepted = attack_params(name)
    unknown = set(params) - set(accepted)
    if unknown:
        raise ValueError(f"attack {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(accepted)}")
    call = {k: v for k, v in accepted.items() if k not in ("device", "quiet", "seed")}
    call.update(params)
    if "profile" in call:
        call["profile"] = resolve_profile(call["profile"])
    dev = pick_device(device)
    extra = {k: v for k, v in (("device", dev), ("quiet", quiet)) if k in accepted}
    config = {"attack": name, "params": call, "seed": seed, "data": dataset_fingerprint(train_set),
              "device": dev.type, "version": CACHE_VERSION}

    def build() -> Poison:
        return spec.fn(train_set, seed=seed, **call, **extra)

    return cached(
        "poisons",
        config,
        build=build,
        # a class-wise δ is K images: always kept; a sample-wise one only when it cannot be rebuilt in seconds
        save=lambda p, path: p.save(path, with_perturbation=p.classwise or not spec.recompute_delta),
        load=lambda path: Poison.load(path, clean=train_set, recompute=build),
        enabled=cache,
    )
