"""Deep Feature Reweighting (DFR): retrain only the last linear layer of a judge on a little clean data.

Sandoval-Segura et al., "What Can We Learn from Unlearnable Datasets?" (NeurIPS 2023, arXiv 2305.19254, §4.2;
code `psandovalsegura/learn-from-unlearnable@605dea2`): a network trained on an unlearnable set has poor clean
accuracy, yet its features are useful: retraining its last layer on 5,000 clean images (10% of CIFAR-10)
recovers much of the accuracy. Their recipe (`dfr_step_2.py`):
freeze everything but the last linear layer, `LBFGS(lr=0.5)` with PyTorch's defaults (`max_iter=20`, no line
search, no regularisation), batches of 1,024 shuffled clean images with the *training* augmentation, 15 epochs
over the subset, cross-entropy.

BatchNorm (our reading of `lbfgs_finetune` in the reference code). The reference calls `model.train()` before the
LBFGS loop and never switches back, so every closure call normalises with the clean batch's own statistics and updates
the BN running statistics with clean data; after ~75 steps they are essentially the clean subset's. `bn_mode="train"`
reproduces this ("linear head + clean BN re-estimation"); `bn_mode="eval"` keeps the network in eval mode, a pure
linear probe on frozen features with the BN running statistics unchanged. Say which one a figure shows.

The last linear layer is found generically: the last `nn.Linear` among `model.modules()` (the head of
ResNet-18, FastNet and SmallCNN, also inside the trainer's `nn.Sequential(Normalize, net)`). Its weights and
bias (when it has one) are retrained; everything else keeps its values (but see `bn_mode`).

API: `last_linear`, `reweight_last_layer` (one model), `snapshot_every_epoch` (train on a poison, keep copies
of the network at chosen epochs) and `dfr_over_epochs` (both: the paper's DFR-vs-epoch curve).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checks import check_count, check_rate, check_seed
from .data import ImageSet, check_imageset, check_same_classes, decode_images
from .device import make_generator, pick_device, seed_everything
from .models import build_model
from .training import History, Normalize, Protocol, augment, evaluate, get_protocol, train

BN_MODES = ("train", "eval")


@dataclass
class DFRResult:
    """One DFR run: the reweighted model (a copy), clean test accuracy before and after, and the settings."""

    model: nn.Module
    acc_before: float
    acc_after: float
    bn_mode: str
    head: str                      # the qualified name of the retrained nn.Linear
    losses: list[float] = field(default_factory=list)  # the loss returned by each LBFGS step


@dataclass
class DFRCurve:
    """DFR across training: per snapshot epoch, clean test accuracy before and after DFR (arXiv 2305.19254, §4.2)."""

    epochs: list[int]
    acc_before: list[float]
    acc_after: list[float]
    bn_mode: str
    history: History               # the training run on the poison
    random_init_after: float | None = None  # DFR on the untrained network (the paper's horizontal baseline)


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """(qualified name, module) of the last `nn.Linear` in `model.modules()` order; ValueError if there is none."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch nn.Module, got {type(model).__name__}")
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(f"DFR retrains the last nn.Linear layer, but this {type(model).__name__} has none; "
                         "give it a linear head (as the package's models have)")
    return found[-1]


def _check_sets(clean_subset: ImageSet, test_set: ImageSet, num_outputs: int) -> None:
    """Non-empty ImageSets of the same image shape and the same classes (names and order), as many as the head has
    outputs."""
    check_imageset(clean_subset, "clean_subset", "DFR")
    check_imageset(test_set, "test_set", "DFR")
    if clean_subset.shape != test_set.shape:
        raise ValueError(f"DFR: clean_subset images ({clean_subset.shape}) and test_set images ({test_set.shape}) "
                         "must match")
    check_same_classes(clean_subset, test_set, "DFR", "clean_subset", "test_set")
    if clean_subset.num_classes != num_outputs:
        raise ValueError(f"DFR: the model's last linear layer has {num_outputs} outputs but the data has "
                         f"{clean_subset.num_classes} classes")


def reweight_last_layer(
    model: nn.Module,
    clean_subset: ImageSet,
    test_set: ImageSet,
    protocol: str | Protocol | None = None,
    *,
    bn_mode: str = "train",
    epochs: int = 15,
    batch_size: int = 1024,
    lr: float = 0.5,
    max_iter: int = 20,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = True,
) -> DFRResult:
    """DFR on a copy of `model`: retrain its last nn.Linear on `clean_subset`, report clean `test_set` accuracy.

    model: a trained judge taking [0,1] images (e.g. `train(..., return_model=True)[1]`); never modified.
    clean_subset: the clean images to reweight on (the paper: 5,000 CIFAR-10 training images, `take_per_class`).
    protocol: whose training augmentation (crop, flip, ...) the subset gets; None = the current profile's.
    bn_mode: "train" (faithful: BN in train mode during LBFGS, running statistics re-estimated on clean data)
        or "eval" (a pure probe: frozen features, BN running statistics unchanged).
    Per epoch: the subset in a random order, in batches of `batch_size` (the last one partial), one
    `LBFGS(lr, max_iter).step` per batch. Computed in float32 (no autocast) for LBFGS's line-free updates.
    Raises TypeError for a set that is not an ImageSet; ValueError for an empty set, clean_subset and test_set with
    different image shapes or classes (names and order), or a head whose outputs differ from the classes.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"DFR: bn_mode must be one of {BN_MODES} ('train' re-estimates BatchNorm statistics on "
                         f"the clean data as the reference does, 'eval' freezes them), got {bn_mode!r}")
    epochs = check_count(epochs, "epochs", "DFR")
    batch_size = check_count(batch_size, "batch_size", "DFR")
    max_iter = check_count(max_iter, "max_iter", "DFR")
    lr = check_rate(lr, "lr", "DFR", lo=0.0, lo_open=True)  # the reference uses 0.5
    seed = check_seed(seed, "seed", "DFR")
    name, found = last_linear(model)
    _check_sets(clean_subset, test_set, found.out_features)
    proto = get_protocol(protocol)
    dev = pick_device(device)

    net = copy.deepcopy(model).to(dev)  # the caller's model is never touched
    head = dict(net.named_modules())[name]
    acc_before = evaluate(net, test_set, dev)

    flags = {p: p.requires_grad for p in net.parameters()}
    for p in net.parameters():
        p.requires_grad_(False)
    head_params = list(head.parameters())
    for p in head_params:
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(head_params, lr=float(lr), max_iter=max_iter)

    x_u8, y_all = clean_subset.images.to(dev), clean_subset.labels.to(dev)
    gen = make_generator(seed, dev if dev.type == "cuda" else "cpu")
    order_gen = torch.Generator().manual_seed(seed)
    n = len(clean_subset)
    losses: list[float] = []
    net.train(bn_mode == "train")
    for _ in tqdm(range(epochs), desc=f"DFR ({bn_mode} BN)", disable=quiet or None, leave=False):
        perm = torch.randperm(n, generator=order_gen).to(dev)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb = augment(decode_images(x_u8[idx], clean_subset.meta), proto, gen)
            yb = y_all[idx]

            def closure(xb=xb, yb=yb) -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(net(xb).float(), yb)
                loss.backward()
                return loss

            losses.append(float(opt.step(closure).detach()))
    for p, flag in flags.items():
        p.requires_grad_(flag)
    net.eval()
    return DFRResult(net, acc_before, evaluate(net, test_set, dev), bn_mode, name, losses)


def _check_epochs(epochs: Iterable[int] | None, total: int) -> list[int]:
    if epochs is None:
        return list(range(1, total + 1))
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Iterable):
        raise TypeError(f"epochs must be a sequence of ints in [1, {total}] (or None for every epoch), got {epochs!r}")
    epochs = list(epochs)
    out = sorted({check_count(e, f"epochs[{i}]", "snapshot_every_epoch") for i, e in enumerate(epochs)})
    if not out or out[-1] > total:
        raise ValueError(f"snapshot epochs must be a non-empty set of ints in [1, {total}] (the protocol's "
                         f"epochs), got {list(epochs)}")
    return out


def snapshot_every_epoch(
    train_set: ImageSet,
    test_set: ImageSet,
    protocol: str | Protocol | None = None,
    *,
    epochs: Iterable[int] | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
) -> tuple[History, dict[int, nn.Module], nn.Module]:
    """Train on `train_set` (e.g. a poison) as `train` does, keeping a CPU copy of the network after chosen epochs.

    epochs: 1-based epochs to snapshot (None = every epoch of the protocol).
    Returns (History, {epoch: model}, the untrained model). Every model, snapshots and the untrained one,
    takes [0,1] images: each is wrapped in the trainer's own `Normalize` layer when the protocol normalises
    (its statistics are fixed before training starts, so the final model's layer is the one used at every
    epoch). The untrained model is the initialised network (for FastNet before its whitening layer is
    fitted), the paper's random-init baseline. Memory: one copy per snapshot (a ResNet-18 is ~45 MB).
    Raises TypeError/ValueError before training as `train` does (empty sets, different shapes or classes).
    """
    proto = get_protocol(protocol)
    wanted = _check_epochs(epochs, proto.epochs)
    who = "snapshot_every_epoch"
    check_imageset(train_set, "train_set", who)
    check_imageset(test_set, "test_set", who)
    if train_set.shape != test_set.shape:
        raise ValueError(f"{who}: train images are {train_set.shape} but test images are {test_set.shape}; they "
                         "must match")
    check_same_classes(train_set, test_set, who)
    c, h, w = train_set.shape
    seed_everything(seed)  # as train() does before building its model: the same initialisation
    net = build_model(proto.model, c, train_set.num_classes, (h, w))
    untrained = copy.deepcopy(net)
    snaps: dict[int, nn.Module] = {}

    def keep(epoch: int, _hist: History) -> None:
        if epoch in wanted:
            snaps[epoch] = copy.deepcopy(net).cpu()  # `net` is the very module train() updates in place

    hist, trained = train(train_set, test_set, proto, seed=seed, device=device, model=net, quiet=quiet,
                          on_epoch=keep, return_model=True)
    norm = trained[0] if isinstance(trained, nn.Sequential) and isinstance(trained[0], Normalize) else None
    if proto.normalize and norm is None:  # pragma: no cover - guards a change in train()'s wrapping
        raise RuntimeError("snapshot_every_epoch: train() no longer wraps the model as Sequential(Normalize, net)")

    def wrap(m: nn.Module) -> nn.Module:
        return nn.Sequential(copy.deepcopy(norm).cpu(), m) if norm is not None else m

    return hist, {e: wrap(m) for e, m in snaps.items()}, wrap(untrained.cpu())


def dfr_over_epochs(
    train_set: ImageSet,
    clean_subset: ImageSet,
    test_set: ImageSet,
    protocol: str | Protocol | None = None,
    *,
    epochs: Iterable[int] | None = None,
    bn_mode: str = "train",
    random_init: bool = True,
    dfr_epochs: int = 15,
    dfr_batch_size: int = 1024,
    dfr_lr: float = 0.5,
    dfr_max_iter: int = 20,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
) -> DFRCurve:
    """The paper's DFR curve: train on `train_set`, snapshot at `epochs`, DFR each snapshot on `clean_subset`.

    `acc_before` is each snapshot's clean test accuracy, `acc_after` after DFR (`reweight_last_layer` with
    `bn_mode` and the `dfr_*` settings: epochs over the subset, batch size, LBFGS lr and max_iter). With
    `random_init`, DFR on the untrained network gives the baseline. The clean subset gets the protocol's
    training augmentation. Snapshots are reweighted one by one and dropped, so memory holds the remaining ones.
    All three sets are checked before training: non-empty ImageSets with the same image shape and classes.
    """
    if bn_mode not in BN_MODES:  # fail before training, not after
        raise ValueError(f"DFR: bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    _check_sets(clean_subset, test_set, clean_subset.num_classes if isinstance(clean_subset, ImageSet) else 0)
    for what, value in (("dfr_epochs", dfr_epochs), ("dfr_batch_size", dfr_batch_size),
                        ("dfr_max_iter", dfr_max_iter)):
        check_count(value, what, "dfr_over_epochs")
    check_rate(dfr_lr, "dfr_lr", "dfr_over_epochs", lo=0.0, lo_open=True)
    dfr = dict(bn_mode=bn_mode, epochs=dfr_epochs, batch_size=dfr_batch_size, lr=dfr_lr, max_iter=dfr_max_iter,
               seed=seed, device=device)
    hist, snaps, untrained = snapshot_every_epoch(train_set, test_set, protocol, epochs=epochs, seed=seed,
                                                  device=device, quiet=quiet)
    curve = DFRCurve([], [], [], bn_mode, hist)
    for e in tqdm(sorted(snaps), desc="DFR per epoch", disable=quiet or None, leave=False):
        res = reweight_last_layer(snaps.pop(e), clean_subset, test_set, protocol, **dfr)
        curve.epochs.append(e)
        curve.acc_before.append(res.acc_before)
        curve.acc_after.append(res.acc_after)
    if random_init:
        curve.random_init_after = reweight_last_layer(untrained, clean_subset, test_set, protocol, **dfr).acc_after
    return curve


__all__ = ["BN_MODES", "DFRCurve", "DFRResult", "dfr_over_epochs", "last_linear", "reweight_last_layer",
           "snapshot_every_epoch"]
