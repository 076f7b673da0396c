"""D-VAE's two-stage purification of a training set, and the registered defenses `dvae` and `vae`.

Yu et al., "Purify Unlearnable Examples via Rate-Constrained Variational Autoencoders", ICML 2024, arXiv
2405.01460; control flow of `yuyi-sd/D-VAE@9d62e4c` (`main_vae_disentangle.py`, `main()`'s stage loop; caps of
`some_scripts.sh`). Each stage trains a FRESH D-VAE (its own seed, `stage_seed`) on the current images and
purifies them with it (`purify_stage`):

    stage 1 (C = 1.0):  x1 = uint8(clamp(x - p̂1(x, y), 0, 1))                      the residual, not x̂
    stage 2 (C = 3.0):  r = clamp(x1 - p̂2(x1, y), 0, 1);  x2 = uint8(clamp(x̂2(r, y), 0, 1))

The registered functions keep flat keyword parameters (the registry reads them; the CLI and notebooks pass
them) and build one `DVAESettings` from them. Purified sets are cached by the input's fingerprint, every
stage's `TrainConfig`, the seed, the purification options and the device type.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...cache import cached
from ...checks import check_bool, check_choice, check_seed
from ...data import ImageSet
from ...device import pick_device
from ...poisons.base import dataset_fingerprint
from ..registry import register
from .inference import purify_stage, vae_reconstruct
from .model import DVAE, VAE
from .settings import (
    CACHE_VERSION,
    LR,
    ROUNDINGS,
    STAGE_CAPS,
    VAE_CAP,
    DVAESettings,
    check_cap,
    check_imageset,
    resolve_config,
    settings_from,
)
from .training import train_stage


def stage_seed(seed: int, stage: int) -> int:
    """The seed of stage `stage` of `purify` (init, data order, latent noise): distinct per stage, so fresh."""
    return int(seed) + 1_000_003 * int(stage)


@dataclass
class DVAEStages:
    """What `run_stages` produced: the two trained stage models, the set after each stage, and the run's info."""

    models: list[DVAE]
    outputs: list[ImageSet]
    info: dict


def _check_stage_caps(stage_caps, fn: str) -> tuple[float, float]:
    if isinstance(stage_caps, (str, bytes)) or not isinstance(stage_caps, Sequence) or len(stage_caps) != 2:
        raise ValueError(f"{fn}: stage_caps must be two KL caps (stage 1, stage 2), e.g. (1.0, 3.0), got "
                         f"{stage_caps!r}")
    return check_cap(stage_caps[0], fn, "stage_caps[0]"), check_cap(stage_caps[1], fn, "stage_caps[1]")


@dataclass(frozen=True)
class _Run:
    """`purify`/`run_stages` arguments, checked: caps, seed, purification options, device, both stages' configs."""

    caps: tuple[float, float]
    seed: int
    sample_latent: bool
    rounding: str
    device: torch.device
    configs: list  # (TrainConfig, notes, profile) per stage


def _check_run(train_set: ImageSet, settings: DVAESettings, stage_caps, seed, sample_latent, cache, rounding,
               device) -> _Run:
    fn = "dvae"
    check_imageset(train_set, fn)
    caps = _check_stage_caps(stage_caps, fn)
    seed = check_seed(seed, "seed", fn)
    sample_latent = check_bool(sample_latent, "sample_latent", fn)
    check_bool(cache, "cache", fn)
    check_choice(rounding, "rounding", ROUNDINGS, fn)
    dev = pick_device(device)
    cfgs = [resolve_config(fn, "dvae", train_set, cap, settings, weight=None, floor_after=None, device=dev)
            for cap in caps]
    return _Run(caps, seed, sample_latent, rounding, dev, cfgs)


def _run_stages(train_set: ImageSet, settings: DVAESettings, run: _Run, *, quiet: bool, cache: bool) -> DVAEStages:
    t0 = time.perf_counter()
    current, models, outputs, stages = train_set, [], [], []
    for stage, cap in enumerate(run.caps, start=1):
        s = stage_seed(run.seed, stage)
        model = train_stage("train_dvae", DVAE, current, cap, settings, weight=None, floor_after=None, seed=s,
                            device=run.device, quiet=quiet, cache=cache, on_epoch=None)  # a FRESH model per stage
        current = purify_stage(model, current, stage, sample_latent=run.sample_latent, seed=s, rounding=run.rounding,
                               device=run.device, amp=settings.amp, quiet=quiet)
        models.append(model)
        outputs.append(current)
        hist = model.info.get("history", {})
        final = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v and k != "epoch_seconds"}
        stages.append({"stage": stage, "kl_cap": cap, "seed": s, "final": final,
                       "train_seconds": model.info.get("seconds"), "from_cache": model.info.get("from_cache")})
    cfgs = run.configs
    notes = list(dict.fromkeys(cfgs[0][1] + cfgs[1][1]))
    if run.caps != STAGE_CAPS:
        notes.append(f"KL caps {run.caps} (shipped scripts: {STAGE_CAPS})")
    if not run.sample_latent:
        notes.append("z = mu at purification (the reference samples z)")
    if run.rounding != "truncate":
        notes.append("quantised by rounding half up (the reference truncates)")
    info = {"profile": cfgs[0][2], "stage_caps": list(run.caps), "config": asdict(cfgs[0][0]), "seed": run.seed,
            "sample_latent": run.sample_latent, "rounding": run.rounding, "device": str(run.device),
            "stages": stages, "seconds": time.perf_counter() - t0, "notes": notes}
    return DVAEStages(models, outputs, info)


def run_stages(
    train_set: ImageSet,
    *,
    settings: DVAESettings | None = None,
    stage_caps: tuple[float, float] = STAGE_CAPS,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    sample_latent: bool = True,
    rounding: str = "truncate",
    **changes,
) -> DVAEStages:
    """The two stages of `purify`, keeping the trained models and the stage-1 set (for the notebook's figures).

    Takes the same arguments as `purify` (the settings as a `DVAESettings` and/or its fields as keywords:
    `epochs`, `profile`, `width`, `latent_dim`, `levels`, `batch_size`, `lr`, `amp`) and trains (or loads from
    the cache) the same models, so calling it after `purify` with the same arguments costs only the purification
    passes.
    """
    settings = settings_from(settings, changes, "run_stages")
    run = _check_run(train_set, settings, stage_caps, seed, sample_latent, cache, rounding, device)
    return _run_stages(train_set, settings, run, quiet=quiet, cache=cache)


def _save_set(ds: ImageSet, path: Path) -> None:
    ds.save(path)


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
    `quick` and `smoke` fewer epochs and a narrower network); see `DVAESettings` for each. The purified set is
    cached by the input's fingerprint and the settings; `meta["dvae"]` records the settings, per-stage losses
    and the deviations. `run_stages(...)` with the same arguments gives the two trained models and the stage-1
    set as well.
    """
    settings = DVAESettings(epochs=epochs, width=width, latent_dim=latent_dim, batch_size=batch_size, levels=levels,
                            lr=lr, amp=amp, profile=profile)
    run = _check_run(train_set, settings, stage_caps, seed, sample_latent, cache, rounding, device)
    key = {"kind": "dvae-purified", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "num_classes": train_set.num_classes, "configs": [asdict(c[0]) for c in run.configs], "seed": run.seed,
           "sample_latent": run.sample_latent, "rounding": rounding, "device": run.device.type}

    def build() -> ImageSet:
        res = _run_stages(train_set, settings, run, quiet=quiet, cache=cache)
        return train_set.with_images(res.outputs[-1].images, name=f"{train_set.name}+dvae",
                                     defenses=[*train_set.meta.get("defenses", []), "dvae"], dvae=res.info)

    return cached("dvae-purified", key, build, _save_set, ImageSet.load, suffix=".npz", enabled=cache)


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

    The same encoder/decoder, recipe and profiles as one D-VAE stage, without the perturbation branch
    (arXiv 2405.01460 §3). The result is cached by the input's fingerprint and the settings; `meta["vae"]` has
    the settings and notes.
    """
    settings = DVAESettings(epochs=epochs, width=width, latent_dim=latent_dim, batch_size=batch_size, levels=levels,
                            lr=lr, amp=amp, profile=profile)
    fn = "vae"
    check_imageset(train_set, fn)
    kl_cap = check_cap(kl_cap, fn)
    seed = check_seed(seed, "seed", fn)
    sample_latent = check_bool(sample_latent, "sample_latent", fn)
    check_bool(cache, "cache", fn)
    check_choice(rounding, "rounding", ROUNDINGS, fn)
    dev = pick_device(device)
    cfg, notes, prof = resolve_config(fn, "vae", train_set, kl_cap, settings, weight=None, floor_after=0, device=dev)
    key = {"kind": "vae-purified", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "config": asdict(cfg), "seed": seed, "sample_latent": sample_latent, "rounding": rounding,
           "device": dev.type}

    def build() -> ImageSet:
        model = train_stage("train_vae", VAE, train_set, kl_cap, settings, weight=None, floor_after=0, seed=seed,
                            device=dev, quiet=quiet, cache=cache, on_epoch=None)
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
