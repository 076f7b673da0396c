"""Episodic training of a ProtoNet or an AutoProtoNet: augmentation, the loss, the schedule, keep-best, and a cache
with per-epoch checkpoints that an interrupted run resumes from.

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929. Upstream code psandovalsegura/AdversarialQuerying@9992e0e: `train_autoprotonet.py`
(loss CE + lambda_r · MSE of the query reconstructions, SGD with a LambdaLR schedule, best checkpoint by validation
accuracy) and `data/CIFAR_FS.py` (augmentation).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import atomic_write
from ..data import ImageSet, decode_images
from ..device import OptimizerStep, autocast, check_finite_loss, make_generator, pick_device, seed_everything
from ..progress import progress
from ..training import random_crop, random_flip
from .episodes import Episodes, EpisodeSampler, _check_set
from .evaluation import evaluate_episodes
from .model import AutoProtoNet, class_prototypes, protonet_logits
from .settings import ProtoSettings, protonet_settings
from .trained import ProtoHistory, TrainedProtoNet, _fingerprint, load_protonet, protonet_path, save_protonet


def lr_factor(settings: ProtoSettings, epoch: int) -> float:
    """The LR multiplier of 1-based `epoch` (upstream `train_autoprotonet.py`: LambdaLR stepped at the start of each
    epoch)."""
    return settings.lr_factors[sum(epoch >= d for d in settings.lr_drops)]


def color_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """ColorJitter(brightness=s, contrast=s, saturation=s) per image, on a float batch (B, C, H, W) in [0, 1].

    Factors ~ U[1 - s, 1 + s]; brightness scales, contrast blends with the image's mean grey, saturation blends with
    its grey image (no-op for 1 channel); applied in this fixed order (torchvision draws a random order) and clamped
    to [0, 1] after each, as torchvision does."""
    if strength == 0:
        return x
    b = x.shape[0]

    def factor() -> torch.Tensor:
        u = torch.rand(b, 1, 1, 1, generator=gen, device=gen.device).to(x.device)
        return 1 - strength + 2 * strength * u

    def grey(t: torch.Tensor) -> torch.Tensor:
        if t.shape[1] == 1:
            return t
        w = torch.tensor([0.299, 0.587, 0.114], device=t.device, dtype=t.dtype).view(1, 3, 1, 1)
        return (t * w).sum(1, keepdim=True)

    x = (x * factor()).clamp(0, 1)
    fc = factor()
    x = (fc * x + (1 - fc) * grey(x).mean((1, 2, 3), keepdim=True)).clamp(0, 1)
    if x.shape[1] == 3:
        fs = factor()
        x = (fs * x + (1 - fs) * grey(x)).clamp(0, 1)
    return x


def _episode_loss(model: AutoProtoNet, images: torch.Tensor, meta: dict, ep: Episodes, lambda_r: float,
                  aug: ProtoSettings | None, gen: torch.Generator | None, dev: torch.device, amp: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of a batch of episodes: CE(query logits) + lambda_r * MSE(D(E(x_q)), x_q) (upstream `train_autoprotonet.py`;
    the reconstruction of the query images only). images: the uint8 set on dev (only the episodes' images are decoded to
    [0, 1] floats, in one batch)."""
    b, way, shot = ep.support.shape
    q = ep.query.shape[2]
    xs = decode_images(images[ep.support.reshape(-1)], meta)
    xq = decode_images(images[ep.query.reshape(-1)], meta)
    if aug is not None:
        both = torch.cat([xs, xq])
        both = random_crop(both, aug.crop_padding, gen)
        if aug.flip:
            both = random_flip(both, gen)
        both = color_jitter(both, aug.jitter, gen)
        xs, xq = both[:len(xs)], both[len(xs):]
    with autocast(dev, enabled=amp):
        # support and query go through the encoder separately, as upstream (BatchNorm statistics per set)
        zs = model.encoder(xs)
        zq = model.encoder(xq)
        recon = model.decoder(zq) if lambda_r > 0 else None
    es = zs.float().flatten(1).reshape(b, way * shot, -1)
    eq = zq.float().flatten(1).reshape(b, way * q, -1)
    s_lab = torch.arange(way, device=dev).repeat_interleave(shot).expand(b, -1)
    q_lab = torch.arange(way, device=dev).repeat_interleave(q).expand(b, -1)
    logits = protonet_logits(eq, class_prototypes(es, s_lab, way), model.scale)
    ce = F.cross_entropy(logits.reshape(-1, way), q_lab.reshape(-1))
    mse = F.mse_loss(recon.float(), xq) if recon is not None else torch.zeros((), device=dev)
    acc = (logits.argmax(-1) == q_lab).float().mean()
    return ce + lambda_r * mse, ce, mse, acc


def train_protonet(train_set: ImageSet, settings: ProtoSettings | None = None, *, val_set: ImageSet | None = None,
                   seed: int = 0, device: str | torch.device | None = "auto", quiet: bool = False, cache: bool = True,
                   cache_root: str | Path | None = None) -> TrainedProtoNet:
    """Train an AutoProtoNet (settings.lambda_r > 0) or a ProtoNet (lambda_r = 0) episodically, or load it cached.

    train_set: the base classes (every class of it may appear in an episode); images uint8 (N, C, H, W), sides >= 16.
    val_set: optional validation classes: `val_episodes` 5-way episodes after each epoch; the best epoch is kept
    (upstream's best checkpoint by validation accuracy); None keeps the last epoch.
    Both variants with the same seed get the same encoder initialisation and the same episodes and augmentations.
    Checkpointed after every epoch (`<hash>.partial.pt` beside the cached file): an interrupted run resumes there.
    Raises ValueError for too few classes or images per class for the episode shape, an image side below 16 px, or
    an empty train_set/val_set; TypeError when either is not an ImageSet. val_set's classes are not compared with
    train_set's: few-shot validation classes are disjoint from the base classes by design.
    Stops with NonFiniteLossError (device.py; a FloatingPointError) when an epoch's loss or its validation accuracy
    is NaN (NaN/inf embeddings), before that epoch is kept as the best or checkpointed (lower settings.lr, or
    settings.amp=False).
    """
    settings = settings or protonet_settings(None)
    _check_set(train_set, "train_protonet: train_set")
    if val_set is not None:
        _check_set(val_set, "train_protonet: val_set")
    s = settings
    dev = pick_device(device)
    sampler = EpisodeSampler(train_set.labels, s.train_way, s.train_shot, s.train_query, device=dev, seed=seed)
    if val_set is not None and s.val_episodes:
        EpisodeSampler(val_set.labels, s.test_way, s.test_shot, s.test_query)  # validates the shape now
    path = protonet_path(train_set, s, seed, val_set, cache_root)
    if cache and path.exists():
        try:
            return load_protonet(path)
        except (ValueError, RuntimeError, OSError, KeyError) as err:
            warnings.warn(f"cached model {path} could not be used ({err}); retraining it", stacklevel=2)
    seed_everything(seed)
    c, h, w = train_set.shape
    model = AutoProtoNet(c, (h, w), decoder=s.lambda_r > 0, leaky_slope=s.leaky_slope).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                          nesterov=s.nesterov)
    aug_gen = make_generator(seed + 7_919, dev)
    images = train_set.images.to(dev)  # uint8 on the device; episodes are gathered and decoded there
    stepper = OptimizerStep(opt, dev, amp=s.amp)  # fp16 autocast (e.g. a T4) gets loss scaling
    hist, start, best, best_state = ProtoHistory(), 0, -1.0, None
    partial = path.with_suffix(".partial.pt")
    if cache and partial.exists():
        try:
            st = torch.load(partial, map_location=dev, weights_only=False)
            if st["key"] != path.stem:
                raise ValueError("checkpoint of another configuration")
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            sampler.set_state(st["sampler"].cpu())  # generator states are CPU byte tensors on every device
            aug_gen.set_state(st["aug"].cpu())
            hist, start, best, best_state = ProtoHistory(**st["history"]), st["epoch"], st["best"], st["best_state"]
        except Exception as err:  # a torn file or another run's: start over, loudly
            warnings.warn(f"ignoring the checkpoint {partial} ({err}); training from epoch 0", stacklevel=2)
            start = 0
    total = s.epochs * s.steps_per_epoch
    bar = progress(total=total, initial=start * s.steps_per_epoch, unit="step", quiet=quiet, leave=True,
                   desc=f"{'AutoProtoNet' if s.lambda_r > 0 else 'ProtoNet'} {s.train_way}w{s.train_shot}s")
    for epoch in range(start + 1, s.epochs + 1):
        for group in opt.param_groups:
            group["lr"] = s.lr * lr_factor(s, epoch)
        model.train()
        t0 = time.perf_counter()
        sums = np.zeros(4)
        for _ in range(s.steps_per_epoch):
            ep = sampler.sample(s.episodes_per_step)
            loss, ce, mse, acc = _episode_loss(model, images, train_set.meta, ep, s.lambda_r, s, aug_gen, dev, s.amp)
            stepper.step(loss)
            sums += [float(loss.detach()), float(ce.detach()), float(mse.detach()), float(acc)]
            bar.update(1)
        means = sums / s.steps_per_epoch
        if not math.isfinite(means[0]):  # before the epoch is recorded, kept as best or checkpointed
            bar.close()
            check_finite_loss(means[0], "train_protonet", where=f"in epoch {epoch} (lr {s.lr:g})",
                              fix=f"lower settings.lr (now {s.lr:g}), or turn mixed precision off (settings.amp=False)")
        for lst, v in zip((hist.loss, hist.ce, hist.mse, hist.train_acc), means, strict=True):
            lst.append(float(v))
        if val_set is not None and s.val_episodes:
            model.eval()
            va = evaluate_episodes(model, val_set, s.test_way, s.test_shot, s.test_query, s.val_episodes, seed=seed,
                                   device=dev, batch=s.eval_batch, quiet=True).mean
            # a NaN accuracy (NaN/inf embeddings on the validation classes) never wins, nor passes silently
            if not math.isfinite(va):
                bar.close()
            check_finite_loss(va, "train_protonet", "validation accuracy",
                              where=f"in epoch {epoch}: NaN or infinite embeddings of the validation images",
                              fix=f"lower settings.lr (now {s.lr:g}), or turn mixed precision off (settings.amp=False)")
            hist.val_acc.append(va)
            if va > best:
                best, hist.best_epoch = va, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        hist.seconds.append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{means[0]:.3f}", acc=f"{100 * means[3]:.1f}%",
                        **({"val": f"{100 * hist.val_acc[-1]:.1f}%"} if hist.val_acc else {}))
        if cache:
            st = {"key": path.stem, "model": model.state_dict(), "opt": opt.state_dict(), "sampler": sampler.state(),
                  "aug": aug_gen.get_state(), "history": asdict(hist), "epoch": epoch, "best": best,
                  "best_state": best_state}
            atomic_write(partial, lambda tmp, st=st: torch.save(st, tmp))
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        hist.best_epoch = s.epochs
    result = TrainedProtoNet(model.cpu().eval(), s, hist, seed, _fingerprint(train_set))
    if cache:
        save_protonet(result, path)
        partial.unlink(missing_ok=True)
    return result
