"""The trainer: data on the device as uint8, batched augmentation, SGD with the papers' schedules.

`train(train_set, test_set, protocol)` returns a `History` with clean test accuracy after every epoch,
so that final and peak accuracy (and the epoch of the peak) can both be read: a short run is a
form of early stopping, which is itself a defense (see notebook 02). Every training-time defense is a set of
protocol fields too: CutMix/MixUp (`mix`, `mix_alpha`), PGD adversarial training (`adv_eps`, `adv_steps`,
`adv_step_size`) and sharpening + DCT low-pass filtering (`sharpen`, `sharpen_center`, `lowpass_percent`).

Why one file of ~650 lines: a `Protocol` (the recipe), its learning-rate schedule and the loop that runs it are read
together, as airbench keeps its trainer in one file; the per-batch image operations live in `transforms`, the
optimiser step in `device.OptimizerStep` and the ranks of a multi-process run in `distributed`.
"""

from __future__ import annotations

import json
import math
import numbers
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_bool, check_count, check_seed
from .data import ImageSet, check_imageset, check_same_classes, decode_affine, decode_images
from .device import (
    DIVERGENCE_FIX,
    NonFiniteLossError,
    OptimizerStep,
    autocast,
    make_generator,
    pick_device,
    seed_everything,
)
from .distributed import DistContext, context, rank_seed
from .models import MODELS, FastNet, build_model
from .profiles import resolve_profile
from .progress import progress
from .transforms import (  # per-batch image operations; re-exported here, where they lived before transforms.py
    MixedBatch,
    Normalize,
    channel_stats,
    cutmix,
    mixed_correct,
    mixed_loss,
    mixup,
    random_crop,
    random_cutout,
    random_flip,
    sharpen_filter,
)

SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle", "fit")
MIXES = ("none", "cutmix", "mixup")
SHARPENS = ("none", "ssk", "rsk")


@dataclass(frozen=True)
class Protocol:
    """Everything that defines how a judge is trained: each paper's recipe is one of these."""

    name: str
    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "step"
    step_size: int = 50            # for "step": epochs between decays
    milestones: tuple[int, ...] = ()  # for "multistep": epochs at which lr *= gamma
    gamma: float = 0.1
    warmup: float = 0.23           # for "onecycle": fraction of steps spent warming up
    lr_start: float = 0.2          # for "onecycle": lr multiplier at step 0
    lr_end: float = 0.07           # for "onecycle" and "fit": lr multiplier at the last step
    fit_acc: float = 0.99          # for "fit": training accuracy (on the given, possibly poisoned, set) that ends the
    fit_extra: int = 8             #   plateau; then `fit_extra` more epochs annealing the lr; `epochs` is the cap
                                   #   (a run of epochs <= fit_extra anneals all the way after its warm-up epoch)
    crop_padding: int = 4          # random crop with zero padding (0 = off)
    flip: bool = True
    cutout: int = 0                # side of the cutout square (0 = off)
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    normalize: bool = True         # standardise inputs with the training set's channel mean/std
    whiten: bool = False           # fit FastNet's whitening layer (the clean `fast` protocol only: never in a judge)
    max_train: int | None = None   # use at most this many training images (class-balanced), for smoke runs
    max_test: int | None = None
    eval_batch_size: int = 1024
    # training-time defense settings (set by the defense registry through `with_`)
    mix: str = "none"              # "none", "cutmix" or "mixup", per batch after the augmentation
    mix_alpha: float = 1.0         # the mixing ratio is drawn from Beta(mix_alpha, mix_alpha)
    adv_eps: float = 0.0           # L-inf PGD adversarial training radius in [0,1] pixel units (0 = off; 8/255 usual)
    adv_steps: int = 10            # PGD steps per batch
    adv_step_size: float = 2 / 255  # PGD step size (and scale of the random start), pixel units
    sharpen: str = "none"          # "none", "ssk" (static) or "rsk" (random per image) 3x3 sharpening, per batch
    sharpen_center: float = 2.5    # centre tap of the sharpening kernel (> 1); side taps -(c-1)/4
    lowpass_percent: float = 0.0   # DCT low-pass: keep this % of the frequencies per side (0 = off; RSK+FF uses 30)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(
                f"protocol {self.name!r}: unknown model {self.model!r}; expected one of {', '.join(MODELS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"protocol {self.name!r}: unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        for what in ("epochs", "batch_size", "fit_extra", "crop_padding", "cutout", "adv_steps", "eval_batch_size"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"protocol {self.name!r}: {what} must be an int, got {type(value).__name__} {value!r}")
        for what in ("lr", "momentum", "weight_decay", "gamma", "lr_start", "lr_end", "fit_acc", "label_smoothing",
                     "mix_alpha", "adv_eps", "adv_step_size"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"protocol {self.name!r}: {what} must be a finite number, got {value!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"protocol {self.name!r}: epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"protocol {self.name!r}: need lr > 0, weight_decay >= 0 and 0 <= momentum < 1")
        if self.schedule == "fit" and not (0 < self.fit_acc <= 1 and self.fit_extra >= 1):
            raise ValueError(f"protocol {self.name!r}: the 'fit' schedule needs 0 < fit_acc <= 1 (e.g. 0.99) and "
                             f"fit_extra >= 1 (annealing epochs), got fit_acc={self.fit_acc}, "
                             f"fit_extra={self.fit_extra}")
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(f"protocol {self.name!r}: crop_padding and cutout must be >= 0")
        self._check_training_time_options()

    def _check_training_time_options(self) -> None:
        """Reject bad mixing / adversarial-training settings with a message that says what is expected."""
        if self.mix not in MIXES:
            raise ValueError(f"protocol {self.name!r}: unknown mix {self.mix!r}; expected one of {MIXES}")
        if not self.mix_alpha > 0:
            raise ValueError(f"protocol {self.name!r}: mix_alpha must be > 0 (for Beta(alpha, alpha)), "
                             f"got {self.mix_alpha}")
        if not 0 <= self.adv_eps <= 1:
            raise ValueError(f"protocol {self.name!r}: adv_eps must be in [0, 1] (pixel units, e.g. 8/255; 0 = off), "
                             f"got {self.adv_eps}")
        if self.adv_eps > 0 and self.adv_steps < 1:
            raise ValueError(f"protocol {self.name!r}: adv_steps must be >= 1 when adv_eps > 0, got {self.adv_steps}")
        if not self.adv_step_size > 0:
            raise ValueError(f"protocol {self.name!r}: adv_step_size must be > 0 (pixel units, e.g. 2/255), "
                             f"got {self.adv_step_size}")
        if self.sharpen not in SHARPENS:
            raise ValueError(f"protocol {self.name!r}: unknown sharpen {self.sharpen!r}; expected one of {SHARPENS}")
        for what, value in (("sharpen_center", self.sharpen_center), ("lowpass_percent", self.lowpass_percent)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"protocol {self.name!r}: {what} must be a real number, got {type(value).__name__} "
                                f"{value!r}")
        if not (math.isfinite(self.sharpen_center) and self.sharpen_center > 1):
            raise ValueError(f"protocol {self.name!r}: sharpen_center must be > 1 (a kernel centre <= 1 does not "
                             f"sharpen; the paper uses 2.5), got {self.sharpen_center}")
        if not 0 <= self.lowpass_percent <= 100:  # also rejects NaN
            raise ValueError(f"protocol {self.name!r}: lowpass_percent must be in [0, 100] (the % of DCT frequencies "
                             f"kept per side; 0 = off, RSK+FF uses 30), got {self.lowpass_percent}")

    def with_(self, **changes) -> Protocol:
        """A copy with some fields changed, e.g. `get_protocol('quick').with_(epochs=3)`."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown protocol fields {sorted(unknown)}; known: {sorted(self.__dataclass_fields__)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    # The AR paper's victim training (Sandoval-Segura et al., NeurIPS 2022, arXiv 2206.03693; its training script in
    # psandovalsegura/autoregressive-poisoning@bf350b0: ResNet-18, 100 epochs, SGD 0.1, StepLR(50, 0.1)).
    "paper-resnet18": Protocol("paper-resnet18", "resnet18", epochs=100, batch_size=128, lr=0.1, momentum=0.9,
                               weight_decay=5e-4, schedule="step", step_size=50, gamma=0.1, whiten=False),
    # A fast clean-data trainer in the airbench spirit (whitening, one-cycle, 12 epochs). Not a judge: its whitening
    # amplifies directions clean data lacks and 12 epochs stop early (the "honest judge" issue); no effect uses it.
    "fast": Protocol("fast", "fastnet", epochs=12, batch_size=512, lr=0.2, nesterov=True, weight_decay=5e-4,
                     schedule="onecycle", crop_padding=2, whiten=True),
    # The laptop-CPU judge: the papers' victim recipe (ResNet, SGD lr 0.1 momentum 0.9 wd 5e-4, batch 128, crop 4 +
    # flip, no whitening) on a quarter-width ResNet-10, trained to fit: one warm-up epoch, a constant lr until the
    # running training accuracy on the given (possibly poisoned) set reaches 99%, then 8 epochs annealing to 0;
    # at most 24 epochs (the papers' victims reach ~100% training accuracy; benchmarks/RESULTS.md: ~2 min on 2 cores).
    "quick": Protocol("quick", "resnet10-w16", epochs=24, batch_size=128, lr=0.1, nesterov=True, weight_decay=5e-4,
                      schedule="fit", fit_acc=0.99, fit_extra=8, lr_end=0.0, crop_padding=4),
    # Counterfactual retraining of the data-attribution paper (arXiv 2311.03386;
    # vasusingla/simple-data-attribution@d2016b4 `train_utils.py`): ResNet-9, SGD lr 0.5 momentum 0.9, wd 5e-4, batch
    # 512, 24 epochs, lr 0 -> 1 at epoch 5 -> 0 at 24 (per step), label smoothing 0.1, flip +
    # translate 2 + cutout 8. Differences, stated: our cutout fills 0 (the reference fills the mean) and an epoch is
    # n // 512 steps of the remaining set (the reference keeps 50000 // 512 steps after removals).
    "resnet9-cf": Protocol("resnet9-cf", "resnet9", epochs=24, batch_size=512, lr=0.5, momentum=0.9,
                           weight_decay=5e-4, schedule="onecycle", warmup=5 / 24, lr_start=0.0, lr_end=0.0,
                           crop_padding=2, cutout=8, label_smoothing=0.1),
    # The same recipe at CPU size for the quick counterfactuals: a tiny CNN, batch 128, 12 epochs (warm-up 2.5).
    "cf-quick": Protocol("cf-quick", "tinycnn", epochs=12, batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
                         weight_decay=5e-4, schedule="onecycle", warmup=5 / 24, lr_start=0.0, lr_end=0.0,
                         crop_padding=2, label_smoothing=0.1),
    # Seconds: what CI runs in every notebook. Says nothing about accuracy.
    "smoke": Protocol("smoke", "smallcnn", epochs=2, batch_size=64, lr=0.05, nesterov=True, weight_decay=5e-4,
                      schedule="constant", crop_padding=2, max_train=512, max_test=512),
}

PROFILE_PROTOCOL = {"smoke": "smoke", "quick": "quick", "paper": "paper-resnet18"}


def get_protocol(name: str | Protocol | None = None, **overrides) -> Protocol:
    """A named protocol (or the one of the current profile when `name` is None), with optional overrides."""
    if isinstance(name, Protocol):
        proto = name
    else:
        if name is None:
            name = PROFILE_PROTOCOL[resolve_profile(None)]
        if not isinstance(name, str):
            raise TypeError(f"protocol must be a name ({', '.join(PROTOCOLS)}), a Protocol or None, got "
                            f"{type(name).__name__} {name!r}")
        if name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
        proto = PROTOCOLS[name]
    return proto.with_(**overrides) if overrides else proto


def protocol_for_profile(profile: str | None = None) -> Protocol:
    """The judge protocol that goes with a profile: smoke -> smoke, quick -> quick, paper -> paper-resnet18."""
    return PROTOCOLS[PROFILE_PROTOCOL[resolve_profile(profile)]]


# --- learning-rate schedules -----------------------------------------------------------------------

def fit_anneal_start(protocol: Protocol, steps_per_epoch: int, fit_step: int | None = None) -> int:
    """First step of the "fit" schedule's anneal: where the fit criterion was met (`fit_step`), but no later than
    `epochs - fit_extra` epochs in, so that the run ends within the cap."""
    latest = max(1, protocol.epochs - protocol.fit_extra) * steps_per_epoch
    return latest if fit_step is None else min(fit_step, latest)


def lr_multiplier(protocol: Protocol, step: int, steps_per_epoch: int, fit_step: int | None = None) -> float:
    """The factor applied to the base lr at optimiser step `step` (0-based).

    "fit" (the quick judge): linear warm-up from `lr_start` to 1 over the first epoch, 1 until the anneal starts
    (`fit_anneal_start`: the step at which the fit criterion was met, `fit_step`, or the cap), then linear to
    `lr_end` over `fit_extra` epochs: warm-up / stable / decay, with the plateau's length set by the data.
    """
    total = protocol.epochs * steps_per_epoch
    epoch = step // steps_per_epoch
    s = protocol.schedule
    if s == "fit":
        if step < steps_per_epoch:
            return protocol.lr_start + (1.0 - protocol.lr_start) * step / steps_per_epoch
        start = fit_anneal_start(protocol, steps_per_epoch, fit_step)
        if step < start:
            return 1.0
        length = min(protocol.fit_extra, protocol.epochs - start // steps_per_epoch) * steps_per_epoch
        frac = min(1.0, (step - start) / max(1, length))
        return 1.0 + (protocol.lr_end - 1.0) * frac
    if s == "constant":
        return 1.0
    if s == "step":
        return protocol.gamma ** (epoch // protocol.step_size)
    if s == "multistep":
        return protocol.gamma ** sum(epoch >= m for m in protocol.milestones)
    if s == "cosine":  # stepped once per epoch, like CosineAnnealingLR(T_max=epochs)
        return 0.5 * (1.0 + math.cos(math.pi * epoch / protocol.epochs))
    # onecycle: linear from lr_start to 1 over `warmup` of the steps, then linear to lr_end
    peak = max(1, int(protocol.warmup * total))
    if step < peak:
        return protocol.lr_start + (1.0 - protocol.lr_start) * step / peak
    return 1.0 + (protocol.lr_end - 1.0) * min(1.0, (step - peak) / max(1, total - 1 - peak))


# --- on-device batched augmentation ------------------------------------------------------------------


def sharpen_and_filter(x: torch.Tensor, protocol: Protocol, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """The protocol's sharpening / DCT low-pass (RSK+FF and its variants) on a float batch: (batch, crop padding).

    The reference (`get_transform` in aseriesof-tubes/RSK@911680e) sharpens H x W -> (H-2) x (W-2) with no
    padding, filters that smaller image, then RandomCrop(H, padding=p) zero-pads it to (H-2+2p) and crops H x W.
    Zero-padding by 1 back to
    H x W and then cropping with padding p-1 pads to the same (H-2+2p) array and draws the offset from the
    same 2p-1 values, so the result is identical, and the crop stays `random_crop`. With crop_padding 0 (where
    the reference's RandomCrop would fail on the smaller image) the sharpened image is padded back by 1, i.e.
    centred in a 1-pixel black frame. FF alone (sharpen "none") filters the full-size image.
    """
    percent = protocol.lowpass_percent or None
    if protocol.sharpen == "none":
        return sharpen_filter(x, "none", percent=percent), protocol.crop_padding
    x = sharpen_filter(x, protocol.sharpen, protocol.sharpen_center, percent, generator=gen)
    return F.pad(x, (1, 1, 1, 1)), max(0, protocol.crop_padding - 1)


def augment(x: torch.Tensor, protocol: Protocol, gen: torch.Generator) -> torch.Tensor:
    """The protocol's training augmentation on a float batch, on its device: sharpen/filter, crop, flip, cutout.

    Sharpening and the DCT low-pass (`sharpen_and_filter`) run only when the protocol sets them; with them off
    this is crop, flip and cutout exactly as before they existed.
    """
    padding = protocol.crop_padding
    if protocol.sharpen != "none" or protocol.lowpass_percent:
        x, padding = sharpen_and_filter(x, protocol, gen)
    x = random_crop(x, padding, gen)
    if protocol.flip:
        x = random_flip(x, gen)
    if protocol.cutout:
        x = random_cutout(x, protocol.cutout, gen)
    return x


# --- training-time defense: batch mixing (the operations live in transforms.py) and PGD adversarial training ---

def mix_batch(x: torch.Tensor, y: torch.Tensor, protocol: Protocol, gen: torch.Generator) -> MixedBatch:
    """The protocol's batch mixing; with mix="none" the batch unchanged and lam = 1 (y_b = y_a)."""
    if protocol.mix == "cutmix":
        return cutmix(x, y, protocol.mix_alpha, gen)
    if protocol.mix == "mixup":
        return mixup(x, y, protocol.mix_alpha, gen)
    return x, y, y, 1.0


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step_size: float,
               gen: torch.Generator) -> torch.Tensor:
    """L-inf PGD on [0,1] images (Madry et al.; APBench's MadrysLoss): the batch that adversarial training steps on.

    As APBench: model in eval mode while attacking, random start x + step_size*N(0,1) (not projected; the
    first step projects), `steps` sign-gradient ascent steps on the cross-entropy, each followed by projection
    onto the eps-ball around x and clamping to [0,1]. `model` must take raw [0,1] images (it normalises
    internally). The loss is summed, not averaged, so fp16 autocast gradients do not underflow (the sign is
    the same). The model's training mode is restored.
    """
    was_training = model.training
    model.eval()
    x = x.detach()
    noise = torch.randn(x.shape, generator=gen, device=gen.device, dtype=torch.float32).to(x.device)
    x_adv = x + step_size * noise.to(x.dtype)
    dev = x.device
    finite = torch.ones((), dtype=torch.bool, device=dev)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with autocast(dev):
            logits = model(x_adv)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        finite &= torch.isfinite(loss)  # a NaN loss gives sign(NaN) = 0: the "attack" would silently not move
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    model.train(was_training)
    if steps and not bool(finite):  # one sync per batch, not per step
        raise NonFiniteLossError("pgd_attack: the attack's loss (the model in eval mode on the adversarial batch) "
                                 f"became non-finite; {DIVERGENCE_FIX}")
    return x_adv.detach()


# --- History -----------------------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch curves of one training run, and its final and peak clean test accuracy."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    config: dict = field(default_factory=dict)
    fit_epoch: int = 0  # "fit" schedule: 1-based epoch at which training accuracy reached fit_acc (0 = never)

    @property
    def epochs(self) -> int:
        return len(self.test_acc)

    @property
    def final_acc(self) -> float:
        return self.test_acc[-1] if self.test_acc else float("nan")

    @property
    def peak_acc(self) -> float:
        return max(self.test_acc) if self.test_acc else float("nan")

    @property
    def peak_epoch(self) -> int:
        """1-based epoch at which the clean test accuracy peaked (first one on ties)."""
        if not self.test_acc:
            return 0
        return 1 + max(range(len(self.test_acc)), key=lambda i: (self.test_acc[i], -i))

    def summary(self) -> dict:
        return {"final_acc": self.final_acc, "peak_acc": self.peak_acc, "peak_epoch": self.peak_epoch,
                "epochs": self.epochs, "final_train_acc": self.train_acc[-1] if self.train_acc else float("nan"),
                "fit_epoch": self.fit_epoch, "wall_time": self.wall_time}

    def to_dict(self) -> dict:
        return {**asdict(self), **self.summary()}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """Rebuild a History from `to_dict`'s output; ValueError when it is not one (a missing or empty curve,
        curves of different lengths, an accuracy outside [0, 1], a non-finite number): a damaged cache entry
        must fail here, not as an IndexError in `summary()` later."""
        keys = ("train_loss", "train_acc", "test_acc", "epoch_time")
        missing = [k for k in (*keys, "wall_time", "config") if k not in d]
        if missing:
            raise ValueError(f"not a training History: missing {missing}")
        curves = {k: d[k] for k in keys}
        lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in curves.items()}
        if lengths["test_acc"] < 1 or len(set(lengths.values())) != 1:
            raise ValueError(f"not a training History: test_acc must have one entry per epoch (>= 1) and every "
                             f"curve the same length; lengths {lengths}")
        for k, values in curves.items():
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"not a training History: {k} holds a non-finite or non-numeric value")
            if k in ("train_acc", "test_acc") and not all(0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"not a training History: {k} holds an accuracy outside [0, 1]")
        return cls(**curves, wall_time=d["wall_time"], config=d["config"], fit_epoch=int(d.get("fit_epoch", 0)))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a History written by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


# --- training and evaluation ----------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, device: torch.device | str | None = None, batch_size: int = 1024
             ) -> float:
    """Accuracy (in [0,1]) of `model` on `data`, without augmentation.

    Raises TypeError when `model` is not an nn.Module, `data` not an ImageSet or `batch_size` not an integer;
    ValueError for an empty `data` (it has no accuracy; 0.0 would look like a measurement) or batch_size < 1.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"evaluate: model must be a torch nn.Module, got {type(model).__name__}")
    check_imageset(data, "data", "evaluate")
    batch_size = check_count(batch_size, "batch_size", "evaluate")
    device = pick_device(device or next(model.parameters()).device)
    was_training = model.training
    model.eval()
    correct = 0
    for xb, yb in zip(data.images.split(batch_size), data.labels.split(batch_size), strict=True):
        x = xb.to(device, non_blocking=True).float().div_(255.0)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(x)
        correct += int((logits.argmax(1) == yb.to(device)).sum())
    model.train(was_training)
    return correct / len(data)


def _check_compatible(train_set: ImageSet, test_set: ImageSet, who: str = "train") -> None:
    """Both sets are non-empty ImageSets with the same image shape and the same classes (names and order)."""
    for what, ds in (("train_set", train_set), ("test_set", test_set)):
        if not isinstance(ds, ImageSet):
            raise TypeError(f"{who}() takes ImageSets; {what} is a {type(ds).__name__} (load one with "
                            "uel_helpers.load_dataset(...))")
    check_imageset(train_set, "train_set", who)
    check_imageset(test_set, "test_set", who)
    if train_set.shape != test_set.shape:
        raise ValueError(f"{who}: train images are {train_set.shape} but test images are {test_set.shape}; they must "
                         "match (resize/pad/to_rgb one of them explicitly)")
    check_same_classes(train_set, test_set, who)


def _sharded_accuracy(net: nn.Module, test_set: ImageSet, ctx: DistContext, batch_size: int) -> float:
    """Accuracy of rank 0's model on the whole test set, each rank scoring every world_size-th image (DDP)."""
    ctx.broadcast_buffers(net)  # BatchNorm running statistics of rank 0: one model on every rank
    part = test_set.subset(torch.arange(ctx.rank, len(test_set), ctx.world_size))
    correct = round(evaluate(net, part, ctx.device, batch_size) * len(part)) if len(part) else 0
    total_correct, total = ctx.all_reduce_sum([correct, len(part)])
    return total_correct / total


def train(
    train_set: ImageSet,
    test_set: ImageSet,
    protocol: str | Protocol | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    model: nn.Module | None = None,
    quiet: bool = False,
    on_epoch: Callable[[int, History], None] | None = None,
    return_model: bool = False,
    *,
    ddp: bool | None = None,
    sync_bn: bool = False,
) -> History | tuple[History, nn.Module]:
    """Train a judge on `train_set` and measure clean accuracy on `test_set` after every epoch.

    protocol: a name from PROTOCOLS (or a Protocol); None = the current profile's protocol.
    model: an untrained nn.Module to use instead of `protocol.model`.
    Per batch: augment -> PGD (when `protocol.adv_eps` > 0) -> CutMix/MixUp (`protocol.mix`) -> SGD step.
    `History.train_acc` is measured on those training batches (label-weighted on mixed ones).
    With the "fit" schedule (the quick judge) the run ends `fit_extra` epochs after that training accuracy first
    reaches `fit_acc` (`History.fit_epoch`), or at `epochs`, whichever comes first.
    Same seed on the same device gives the same History.

    Several processes (`torchrun --nproc_per_node N`, see `uel_helpers.distributed`): with `ddp` None (the default)
    a run started by torchrun trains one model with DistributedDataParallel; `ddp=False` keeps each process on its
    own. `protocol.batch_size` is the global batch: each rank holds its shard of the uint8 training images on its
    device and takes batch_size / N of them per step (ValueError when N does not divide it); DDP averages the
    gradients, so the step, the learning rate and the schedule are those of one process with the same batch.
    BatchNorm statistics are per rank, or over the global batch with `sync_bn=True` (SyncBatchNorm, CUDA only;
    an argument rather than a Protocol field, because it changes nothing in a single process and Protocol.to_dict()
    is part of every cached run's key). The per-epoch numbers are all-reduced, the test set is split over the
    ranks, so every rank's History holds the same curves (with `config["ddp"]`); the model returned is the rank's
    copy (the same weights on every rank). `on_epoch` runs on every rank. Outside torchrun nothing changes.

    Everything is checked before any work: TypeError when a set is not an ImageSet, `seed` not an integer,
    `model` not an nn.Module, `quiet`/`return_model` not bools or `on_epoch` not callable; ValueError for an
    unknown protocol, an empty train_set or test_set, different image shapes, different classes (names and order
    must match exactly: labels index them) or a negative seed.
    """
    proto = get_protocol(protocol)
    _check_compatible(train_set, test_set)
    seed = check_seed(seed, "seed", "train")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"train: model must be an untrained torch nn.Module or None (use protocol.model), got "
                        f"{type(model).__name__}")
    quiet = check_bool(quiet, "quiet", "train")
    return_model = check_bool(return_model, "return_model", "train")
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"train: on_epoch must be a function (epoch, History) -> None or None, got "
                        f"{type(on_epoch).__name__}")
    dist_ctx = context(pick_device(device), ddp, sync_bn, "train")
    dev = dist_ctx.device
    seed_everything(seed)
    if proto.max_train is not None and len(train_set) > proto.max_train:
        per_class = max(1, proto.max_train // train_set.num_classes)
        train_set = train_set.take_per_class(per_class, seed=seed)
    if proto.max_test is not None and len(test_set) > proto.max_test:
        test_set = test_set.take_per_class(max(1, proto.max_test // test_set.num_classes), seed=seed)

    c, h, w = train_set.shape
    net = model if model is not None else build_model(proto.model, c, train_set.num_classes, (h, w))
    if proto.whiten and not isinstance(net, FastNet):
        raise ValueError(f"protocol {proto.name!r}: whiten=True needs a FastNet model (its patch-whitening layer), "
                         f"got {type(net).__name__}; set whiten=False, or model='fastnet' / 'fastnet-small'")
    if isinstance(net, FastNet) and proto.whiten:
        if proto.lowpass_percent:
            warnings.warn(f"protocol {proto.name!r}: a DCT low-pass (lowpass_percent={proto.lowpass_percent}) with "
                          "FastNet's whitening layer on: the low-pass removes the high frequencies the whitening "
                          "amplifies, so unfiltered test images land where the network never trained (clean data + "
                          "RSK+FF measured 26% with whitening, 73% without). Set whiten=False, as the rsk+ff, ssk+ff "
                          "and ff defense settings do.", stacklevel=2)
        gen_cpu = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(train_set), generator=gen_cpu)[:5000]
        net.fit_whitening(decode_images(train_set.images[pick], train_set.meta))
    if proto.normalize:
        mean, std = channel_stats(train_set.images)
        scale, offset = decode_affine(train_set.meta)  # (1, 0) unless the set stores an affine code
        mean, std = mean * scale + offset, std * scale
        net = nn.Sequential(Normalize(mean, std), net)
    net = net.to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)

    # The whole training split (each rank's shard of it under DDP) lives on the device as uint8 (4x smaller).
    shard = dist_ctx.shard(len(train_set), seed)
    x_train = train_set.images.to(dev) if not dist_ctx.active else train_set.images[shard].to(dev)
    y_train = train_set.labels.to(dev) if not dist_ctx.active else train_set.labels[shard].to(dev)
    batch = dist_ctx.local_batch(proto.batch_size, "train")  # images per rank and step; the global batch alone
    own_seed = rank_seed(seed, dist_ctx.rank)
    gen = make_generator(own_seed, dev if dev.type == "cuda" else "cpu")
    order_gen = torch.Generator().manual_seed(own_seed)
    model = dist_ctx.wrap(net)  # DDP under torchrun; `net` itself otherwise (PGD and evaluation use `net`)

    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=proto.lr, momentum=proto.momentum, nesterov=proto.nesterov and proto.momentum > 0,
                          weight_decay=proto.weight_decay)
    stepper = OptimizerStep(opt, dev, grad_clip=proto.grad_clip)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=proto.label_smoothing)

    n = len(train_set)
    steps_per_epoch = max(1, n // proto.batch_size)  # drop the last partial batch, as the papers' loaders do
    if n < proto.batch_size:
        steps_per_epoch = 1
    hist = History(config={"protocol": proto.to_dict(), "seed": seed, "device": str(dev), "train_set": train_set.name,
                           "n_train": n, "n_test": len(test_set)})
    if dist_ctx.active:
        hist.config["ddp"] = dist_ctx.describe(proto.batch_size)
    bar = progress(total=proto.epochs, desc=f"train {proto.name}", unit="epoch", quiet=quiet or not dist_ctx.is_main,
                   leave=True)
    start = time.perf_counter()
    step = 0
    fit_step: int | None = None  # "fit" schedule: the step at which the fit criterion was met
    last_epoch = proto.epochs
    for epoch in range(proto.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(x_train), generator=order_gen).to(dev)
        tot_loss = torch.zeros((), device=dev)
        tot_correct = torch.zeros((), device=dev)
        seen = 0
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            xb = augment(decode_images(x_train[idx], train_set.meta), proto, gen)
            yb = y_train[idx]
            if dev.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            if proto.adv_eps > 0:  # attack the augmented [0,1] batch; `net` normalises inside
                xb = pgd_attack(net, xb, yb, proto.adv_eps, proto.adv_steps, proto.adv_step_size, gen)
            xb, yb, yb_mix, lam = mix_batch(xb, yb, proto, gen)
            for group in opt.param_groups:
                group["lr"] = proto.lr * lr_multiplier(proto, step, steps_per_epoch, fit_step)
            with autocast(dev):
                logits = model(xb)
                loss = mixed_loss(loss_fn, logits.float(), yb, yb_mix, lam)
            stepper.step(loss)
            step += 1
            tot_loss += loss.detach() * len(idx)
            tot_correct += mixed_correct(logits.detach(), yb, yb_mix, lam)
            seen += len(idx)
        if dist_ctx.active:  # the global batch's numbers, the same on every rank
            loss_sum, correct_sum, seen_all = dist_ctx.all_reduce_sum([float(tot_loss), float(tot_correct), seen])
            tot_loss, tot_correct, seen = torch.tensor(loss_sum), torch.tensor(correct_sum), seen_all
        hist.train_loss.append(float(tot_loss) / seen)
        if not math.isfinite(hist.train_loss[-1]):
            bar.close()
            raise FloatingPointError(f"train: the training loss became {hist.train_loss[-1]} in epoch {epoch + 1} "
                                     f"(protocol {proto.name!r}, lr {proto.lr}); lower the learning rate or check "
                                     "the data for NaN/inf")
        hist.train_acc.append(float(tot_correct) / seen)
        hist.test_acc.append(evaluate(net, test_set, dev, proto.eval_batch_size) if not dist_ctx.active else
                             _sharded_accuracy(net, test_set, dist_ctx, proto.eval_batch_size))
        hist.epoch_time.append(time.perf_counter() - t0)
        if proto.schedule == "fit" and fit_step is None and hist.train_acc[-1] >= proto.fit_acc:
            fit_step, hist.fit_epoch = step, epoch + 1
            last_epoch = min(proto.epochs, epoch + 1 + proto.fit_extra)
            bar.total = last_epoch
        bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", train=f"{hist.train_acc[-1]:.3f}",
                        test=f"{hist.test_acc[-1]:.3f}")
        bar.update(1)
        if on_epoch is not None:
            on_epoch(epoch + 1, hist)
        if epoch + 1 >= last_epoch:
            break
    bar.close()
    hist.wall_time = time.perf_counter() - start
    return (hist, net) if return_model else hist
