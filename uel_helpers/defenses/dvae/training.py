"""Training one D-VAE (or plain VAE) stage: the reference's recipe, a checkpoint after every epoch, a cached model.

Recipe of `yuyi-sd/D-VAE@9d62e4c` (`main_vae_disentangle.py`, `Trainer.train` and the CIFAR-10 config;
Yu et al., ICML 2024, arXiv 2405.01460): a fresh random init, Adam (lr 5e-3, weight decay 0), cosine annealing
to 0 stepped per epoch, batch 128 shuffled with drop_last, grad-norm clip 5, 60 epochs for CIFAR-10; no
augmentation. The optimiser step (mixed precision, loss scaling on float16 GPUs, clipping) is the package's
shared `uel_helpers.device.OptimizerStep`.

Caching: a trained model is cached (`uel_helpers.cache.cached`) by the data's fingerprint, every setting of its
`TrainConfig`, the seed and the device type, never by the attack's name. While a model trains, a checkpoint
(model, optimiser, loss scaler, random generators, epoch) is written to the cache folder after every epoch; an
interrupted training resumes from it and gives the same weights as an uninterrupted one.

Several processes (torchrun): the package's DDP path (`uel_helpers.distributed`), as the judge's trainer. The
batch size is the global batch, each rank holds its shard of the uint8 images on its device and takes
batch_size / N of them per step, DDP averages the gradients (the lr is unchanged), BatchNorm is per rank (or
SyncBatchNorm with `sync_bn=True`, CUDA), the losses are all-reduced, each rank's random streams are reseeded per
epoch (so a resumed run repeats them without their states), and only rank 0 writes checkpoints and the cache.
Purification itself (inference) is not split: every rank purifies the whole set with the same model.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ...cache import atomic_write, cache_path, cached
from ...checks import check_bool, check_seed
from ...data import ImageSet
from ...device import OptimizerStep, autocast, check_finite_loss, deterministic_backend, make_generator, pick_device
from ...distributed import DistContext, context, rank_seed
from ...poisons.base import dataset_fingerprint
from .model import DVAE, MODEL_CLASSES, VAE, build_model, dvae_loss, vae_loss
from .settings import CACHE_VERSION, VAE_CAP, DVAESettings, TrainConfig, check_imageset, resolve_config, settings_from


def _cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """CosineAnnealingLR(T_max=epochs, eta_min=0) stepped per epoch, in closed form."""
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


def _save_model(model: VAE, path: Path) -> None:
    torch.save({"kind": model.kind, "arch": model.arch, "state": model.state_dict(), "info": model.info}, path)


def _load_model(path: Path) -> VAE:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cls = MODEL_CLASSES[blob["kind"]]
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
         on_epoch: Callable[[int, dict], None] | None, dist_ctx: DistContext | None = None) -> dict:
    """Train `model` in place (Adam, cosine, clip, drop_last); checkpoint every epoch; returns the history.
    Under DDP (`dist_ctx` active) x_u8 and y are this rank's shard."""
    ctx = dist_ctx or DistContext(device=device)
    model.to(device).train()
    net = ctx.wrap(model)  # DDP under torchrun; the model itself otherwise
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    stepper = OptimizerStep(opt, device, amp=cfg.amp, grad_clip=cfg.grad_clip)  # loss scaling on float16 only
    order_gen = torch.Generator().manual_seed(int(seed))           # data order, on the CPU
    noise_gen = make_generator(int(seed) + 1, device)              # latent noise, on the device
    is_dvae = isinstance(model, DVAE)
    keys = ("loss", "rec", "rec_p", "kl", "p_energy") if is_dvae else ("loss", "rec", "kl")
    history: dict = {k: [] for k in keys}
    history["epoch_seconds"] = []
    start = 0
    state = _load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        order_gen.set_state(state["order_gen"])
        noise_gen.set_state(state["noise_gen"])
        if stepper.scaler is not None and state.get("scaler"):
            stepper.scaler.load_state_dict(state["scaler"])
        history = {k: list(v) for k, v in state["history"].items()}
        start = int(state["epoch"])
    history["resumed_from_epoch"] = start if state is not None else None

    n = len(x_u8) if not ctx.active else int(ctx.all_reduce_sum([len(x_u8)])[0])  # all ranks' images
    bs = min(cfg.batch_size, n)
    steps = n // bs  # drop_last, as the reference's loader; n < batch gives one batch of all n
    local = ctx.local_batch(bs, desc)  # bs itself in one process
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=True if quiet or not ctx.is_main else None, initial=start,
               total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(cfg.lr, epoch, cfg.epochs)
        if ctx.active:  # each rank's own streams, reseeded per epoch: a resumed run repeats them
            order_gen.manual_seed(rank_seed(int(seed), ctx.rank, salt=2 * epoch + 1))
            noise_gen.manual_seed(rank_seed(int(seed) + 1, ctx.rank, salt=2 * epoch + 2))
        perm = torch.randperm(len(x_u8), generator=order_gen).to(device)
        sums = torch.zeros(len(keys), device=device)
        for i in range(steps):
            idx = perm[i * local:(i + 1) * local]
            xb, yb = x_u8[idx].float().div_(255.0), y[idx]
            with autocast(device, cfg.amp):
                out = net(xb, yb, generator=noise_gen) if is_dvae else net(xb, generator=noise_gen)
            if is_dvae:
                terms = dvae_loss(xb, out, cfg.kl_cap, floor_on=epoch > cfg.floor_after, weight=cfg.kl_weight,
                                  p_floor=cfg.p_floor)
            else:
                terms = vae_loss(xb, out, cfg.kl_cap, cfg.kl_weight)
            stepper.step(terms["loss"])
            sums += torch.stack([terms[k].detach() for k in keys])
        if ctx.active:  # the global batch's mean losses, the same on every rank
            means = [v / (steps * ctx.world_size) for v in ctx.all_reduce_sum(sums.tolist())]
        else:
            means = (sums / steps).tolist()
        # stop before a NaN/inf epoch is recorded or checkpointed (a resumed run would start from NaN weights)
        check_finite_loss(means[0], desc, where=f"in epoch {epoch + 1} (lr {cfg.lr:g})",
                          fix=f"lower lr (now {cfg.lr:g}), or turn mixed precision off (amp=False)")
        for k, v in zip(keys, means, strict=True):
            history[k].append(float(v))
        history["epoch_seconds"].append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{means[0]:.4f}", kl=f"{history['kl'][-1]:.3f}")
        if checkpoint is not None and ctx.is_main:
            ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "order_gen": order_gen.get_state(),
                    "noise_gen": noise_gen.get_state(),
                    "scaler": stepper.scaler.state_dict() if stepper.scaler is not None else {},
                    "history": {k: v for k, v in history.items() if isinstance(v, list)}, "epoch": epoch + 1}
            atomic_write(checkpoint, lambda tmp, c=ckpt: torch.save(c, tmp))
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    ctx.broadcast_buffers(model)  # rank 0's BatchNorm statistics: the same model on every rank (rank 0 caches it)
    model.eval()
    return history


def train_stage(fn: str, cls: type[VAE], train_set: ImageSet, kl_cap: float, settings: DVAESettings, *,
                weight: float | None, floor_after: int | None, seed: int, device, quiet: bool, cache: bool,
                on_epoch: Callable[[int, dict], None] | None, ddp: bool | None = None,
                sync_bn: bool = False) -> VAE:
    """Train (or load from the cache) one `cls` model on `train_set`; `fn` names the caller in errors and bars.
    Under torchrun (`ddp` None = auto) one model is trained with DDP (module docstring)."""
    check_imageset(train_set, fn)
    seed = check_seed(seed, "seed", fn)
    check_bool(cache, "cache", fn)
    dist_ctx = context(pick_device(device), ddp, sync_bn, fn)
    dev = dist_ctx.device
    cfg, notes, prof = resolve_config(fn, cls.kind, train_set, kl_cap, settings, weight=weight,
                                      floor_after=floor_after, device=dev)
    key = {"kind": f"{cls.kind}-model", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "shape": list(train_set.shape), "num_classes": train_set.num_classes, "config": asdict(cfg), "seed": seed,
           "device": dev.type}
    if dist_ctx.active:  # a DDP training is its own run; single-process keys unchanged
        key["world_size"] = dist_ctx.world_size
    checkpoint = cache_path(f"{cls.kind}-checkpoint", key, ".ckpt") if cache else None

    built: list[bool] = []

    def build() -> VAE:
        built.append(True)
        t0 = time.perf_counter()
        model = build_model(cls, train_set.shape, train_set.num_classes, cfg.width, cfg.latent_dim, cfg.levels, seed)
        shard = dist_ctx.shard(len(train_set), seed) if dist_ctx.active else slice(None)  # this rank's images
        with deterministic_backend(dev):
            history = _fit(model, train_set.images[shard].to(dev), train_set.labels[shard].to(dev), cfg, seed, dev,
                           checkpoint, quiet, f"{fn} C={cfg.kl_cap:g}", on_epoch, dist_ctx)
        model.info = {"model": cls.kind, "profile": prof, "config": asdict(cfg), "seed": seed, "device": str(dev),
                      "train_set": train_set.name, "n_train": len(train_set), "history": history,
                      "seconds": time.perf_counter() - t0, "notes": notes}
        return model.cpu()

    model = cached(f"{cls.kind}-model", key, build, _save_model, _load_model, suffix=".pt", enabled=cache)
    if checkpoint is not None and dist_ctx.is_main:
        checkpoint.unlink(missing_ok=True)
    model.info.setdefault("notes", notes)
    model.info["from_cache"] = not built
    return model.to(dev).eval()


def train_dvae(
    train_set: ImageSet,
    kl_cap: float,
    *,
    settings: DVAESettings | None = None,
    kl_weight: float | None = None,
    floor_after: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
    ddp: bool | None = None,
    sync_bn: bool = False,
    **changes,
) -> DVAE:
    """Train one fresh D-VAE on `train_set` with KL cap `kl_cap` (one stage of `purify`); returns it in eval mode.

    `settings` (a `DVAESettings`; None = the profile's) gives epochs, width, latent_dim, batch_size, levels, lr,
    amp and profile; each may also be passed as a keyword (`epochs=3, profile="quick"`, as earlier releases did),
    which overrides `settings`. `kl_weight` None = the reference rule, `floor_after` None = 10 at `paper`, scaled
    with the epochs otherwise. The model is cached by the data's fingerprint, the settings, `seed` and the device
    type; with `cache` a checkpoint is written after every epoch and an interrupted run resumes from it.
    `on_epoch(epoch, history)` is called after each epoch. `model.info` has the per-epoch losses ("history"), the
    settings and the deviations ("notes"). Raises NonFiniteLossError (device.py; a FloatingPointError) as soon
    as an epoch's loss is NaN or infinite, before that epoch is checkpointed (lower lr, or amp=False); TypeError
    for a seed that is not an integer or an unknown keyword. Under torchrun one model is trained on every process
    with DDP (`ddp` None = auto, False = one model per process; `sync_bn`: SyncBatchNorm, CUDA): the module docstring.
    """
    settings = settings_from(settings, changes, "train_dvae")
    return train_stage("train_dvae", DVAE, train_set, kl_cap, settings, weight=kl_weight,  # type: ignore[return-value]
                       floor_after=floor_after, seed=seed, device=device, quiet=quiet, cache=cache, on_epoch=on_epoch,
                       ddp=ddp, sync_bn=sync_bn)


def train_vae(
    train_set: ImageSet,
    kl_cap: float = VAE_CAP,
    *,
    settings: DVAESettings | None = None,
    kl_weight: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
    ddp: bool | None = None,
    sync_bn: bool = False,
    **changes,
) -> VAE:
    """Train the plain rate-constrained VAE (loss MSE(x̂, x) + w_KL·max(KL, C)) with the D-VAE's recipe.

    Same settings (a `DVAESettings` and/or its fields as keywords), caching and resuming as `train_dvae`; labels
    are not used. Returns the model in eval mode. Raises NonFiniteLossError as `train_dvae` does when the loss
    diverges.
    """
    settings = settings_from(settings, changes, "train_vae")
    return train_stage("train_vae", VAE, train_set, kl_cap, settings, weight=kl_weight, floor_after=0, seed=seed,
                       device=device, quiet=quiet, cache=cache, on_epoch=on_epoch, ddp=ddp, sync_bn=sync_bn)

