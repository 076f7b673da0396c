"""What a D-VAE run is configured with: the settings dataclass, the profile table, and the input checks.

`DVAESettings` holds the eight settings a caller chooses (epochs, width, latent_dim, batch_size, levels, lr, amp,
profile); a field left None takes the profile's value. `resolve_config` fills those in for one data set and
device and returns the `TrainConfig` of one training run: every number that goes into the cache key.

Paper values: Yu et al., "Purify Unlearnable Examples via Rate-Constrained Variational Autoencoders", ICML 2024,
arXiv 2405.01460; CIFAR-10 recipe of `yuyi-sd/D-VAE@9d62e4c` (`configs/cifar10/resnet18DVAE.yaml`, the argparse
defaults of `main_vae_disentangle.py` and the stage caps of `some_scripts.sh`).

Image sizes (design; the reference is CIFAR-only): `levels` is how many times the encoder halves the image, 1
(the CIFAR design) up to 64 px and 3 above (the reference's ImageNet configuration, `stem_end_block 15`).
Height and width must be multiples of 2**levels and at least 2·2**levels.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import torch

from ...checks import check_bool, check_count, check_rate
from ...data import ImageSet
from ...device import amp_dtype
from ...profiles import check_profile, resolve_profile

CACHE_VERSION = 1
LR = 5e-3              # Adam, weight decay 0, cosine annealing to 0 over the epochs, stepped per epoch
GRAD_CLIP = 5.0
P_FLOOR = 0.002        # max(mean p̂², 0.002): RMS ≈ 11.4/255
PAPER_FLOOR_AFTER = 10  # the floor is on for epochs > 10 (epochs count from 0), hard-coded in the reference
PAPER_EPOCHS = 60       # CIFAR-10 (100 for CIFAR-100, 20 for the ImageNet subset)
STAGE_CAPS = (1.0, 3.0)  # stage 1 and stage 2 (`--kd 3.0` of the shipped scripts; the argparse default is 2.5)
VAE_CAP = 1.0           # default cap of the plain VAE (design: the stage-1 cap; the paper's value is not known)
ROUNDINGS = ("truncate", "round")
INFER_BATCH = 256       # images per forward pass at purification (the order is fixed; no effect on BN in eval)

_WHO = "DVAESettings"


@dataclass(frozen=True)
class DVAESettings:
    """The settings of a D-VAE (or plain VAE) training run; None takes the profile's value (`PROFILE_SETTINGS`).

    epochs: per stage (60 for CIFAR-10 in the paper); width: network width w (64); latent_dim: latent channels d
    (256); batch_size: 128; levels: times the encoder halves the image (None = 1 up to 64 px, 3 above); lr: Adam's
    learning rate (5e-3); amp: mixed precision where the device has it; profile: "smoke", "quick" or "paper"
    (None = `UEL_PROFILE`, else "paper" on a GPU and "quick" elsewhere). Checked on creation: a bad value is a
    TypeError/ValueError naming the field. `with_(epochs=3)` is a copy with some fields changed.
    """

    epochs: int | None = None
    width: int | None = None
    latent_dim: int | None = None
    batch_size: int | None = None
    levels: int | None = None
    lr: float = LR
    amp: bool = True
    profile: str | None = None

    def __post_init__(self) -> None:
        checked = {}
        for name in ("epochs", "width", "latent_dim", "batch_size", "levels"):
            value = getattr(self, name)
            if value is not None:
                checked[name] = check_count(value, name, _WHO, lo=2 if name == "width" else 1)
        if self.width is not None and checked["width"] % 2:
            raise ValueError(f"{_WHO}: width must be an even integer >= 2 (64 in the paper), got {self.width}")
        checked["lr"] = check_rate(self.lr, "lr", _WHO, lo=0.0, lo_open=True)
        checked["amp"] = check_bool(self.amp, "amp", _WHO)
        if self.profile is not None:
            check_profile(self.profile)
        for name, value in checked.items():  # numpy numbers -> Python numbers (the cache key is JSON)
            object.__setattr__(self, name, value)

    def with_(self, **changes) -> DVAESettings:
        """A copy with some fields changed (checked again), e.g. `DVAESettings(profile="quick").with_(epochs=3)`."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown {_WHO} fields {sorted(unknown)}; known: {list(self.__dataclass_fields__)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILE_SETTINGS: dict[str, DVAESettings] = {
    # The paper's CIFAR-10 settings (configs/cifar10/resnet18DVAE.yaml, main_vae_disentangle.py).
    "paper": DVAESettings(PAPER_EPOCHS, 64, 256, 128),
    # 2 CPU cores, 5,000 Fashion-MNIST images: both stages in 184 s (measured). With 3 epochs D-VAE recovered
    # only 40% / 56% of the accuracy AR / EM took (under-trained); with 8, 73% / 65% (tests/test_effect_dvae.py).
    "quick": DVAESettings(8, 16, 64, 128),
    # Seconds on tiny data.
    "smoke": DVAESettings(1, 8, 16, 64),
}


def profile_settings(profile: str | None = None) -> DVAESettings:
    """The settings of `profile` (None = the default profile), with `profile` filled in."""
    name = resolve_profile(profile)
    return PROFILE_SETTINGS[name].with_(profile=name)


def settings_from(settings: DVAESettings | None, changes: Mapping, who: str) -> DVAESettings:
    """`settings` (None = all defaults) with `changes` applied: the settings fields that `who` also accepts as
    keywords, as earlier releases took them (`train_dvae(ds, 1.0, epochs=3, profile="quick")`)."""
    if settings is None:
        settings = DVAESettings()
    elif not isinstance(settings, DVAESettings):
        raise TypeError(f"{who}: settings must be a DVAESettings (e.g. DVAESettings(profile='quick', epochs=3)) or "
                        f"None, got {type(settings).__name__}")
    unknown = sorted(set(changes) - set(DVAESettings.__dataclass_fields__))
    if unknown:
        raise TypeError(f"{who}() got unexpected keyword argument(s) {unknown}; besides its own parameters it takes "
                        f"the DVAESettings fields {list(DVAESettings.__dataclass_fields__)}")
    return settings.with_(**changes) if changes else settings


# --- checks ------------------------------------------------------------------------------------------------

def check_imageset(ds: ImageSet, fn: str) -> None:
    """An ImageSet with images and valid labels (labels can be replaced after construction, so re-check)."""
    if not isinstance(ds, ImageSet):
        raise TypeError(f"{fn}: expected an ImageSet of uint8 images (load_dataset(...)), got {type(ds).__name__}")
    if len(ds) == 0:
        raise ValueError(f"{fn}: the training set is empty")
    check_labels(ds.labels, len(ds), ds.num_classes, fn)


def check_labels(labels, n: int, num_classes: int, fn: str) -> torch.Tensor:
    """The training labels y that D-VAE's class embedding needs, as int64: one per image, in [0, num_classes)."""
    if labels is None:
        raise ValueError(f"{fn}: D-VAE needs the (possibly poisoned) training labels y: its perturbation decoder "
                         "is conditioned on a class-wise embedding u_y")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{fn}: labels must be an int64 tensor of shape ({n},), got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{fn}: labels must be integers, got {labels.dtype}")
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{fn}: expected {n} labels (one per image), got shape {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{fn}: labels must lie in [0, {num_classes}) for {num_classes} classes, got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.to(torch.int64)


def check_cap(cap: float, fn: str = "dvae", what: str = "kl_cap") -> float:
    """A KL cap C: a finite number > 0 (nats per latent position); ValueError/TypeError otherwise."""
    if isinstance(cap, bool) or not isinstance(cap, numbers.Real):
        raise TypeError(f"{fn}: {what} must be a number > 0 (nats per latent position), got {cap!r}")
    if not math.isfinite(cap) or cap <= 0:
        raise ValueError(f"{fn}: {what} must be a finite number > 0 (nats per latent position; the paper uses "
                         f"1.0 in stage 1 and 3.0 in stage 2), got {cap}")
    return float(cap)


def default_levels(size: tuple[int, int]) -> int:
    """How many times the encoder halves an image of `size`: 1 up to 64 px (CIFAR design), 3 above (ImageNet)."""
    return 1 if max(size) <= 64 else 3


def check_image_size(size: tuple[int, int], levels: int, fn: str = "dvae") -> None:
    """Height and width must be multiples of 2**levels and at least 2·2**levels; ValueError saying what works."""
    h, w = size
    f = 2 ** levels
    if h % f == 0 and w % f == 0 and h >= 2 * f and w >= 2 * f:
        return
    works = [lv for lv in (1, 2, 3, 4) if h % 2**lv == 0 and w % 2**lv == 0 and min(h, w) >= 2 ** (lv + 1)]
    hint = (f"; levels={works} would work for {h}x{w}" if works else
            "; no number of levels works for this size: resize the images (uel_helpers.data.resize) to even "
            "sides of at least 4 px")
    raise ValueError(
        f"{fn}: images of {h}x{w} px cannot be encoded with levels={levels}: the encoder halves the image "
        f"{levels} time(s), so height and width must be multiples of {f} and at least {2 * f} px (levels=1: even "
        f"sizes >= 4 such as 8, 16, 28, 32, 64; levels=3: multiples of 8 >= 16 such as 64, 224){hint}"
    )


def kl_weight(cap: float) -> float:
    """The reference's KL weight: 0.01 if C > 0.99 else 0.5 (so 0.01 in both shipped stages)."""
    return 0.01 if cap > 0.99 else 0.5


# --- one training run --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (the cache key, with the data fingerprint, seed and device type)."""

    model: str
    kl_cap: float
    kl_weight: float
    epochs: int
    width: int
    latent_dim: int
    levels: int
    batch_size: int
    lr: float
    grad_clip: float
    p_floor: float
    floor_after: int
    amp: bool


def resolve_config(fn: str, model: str, ds: ImageSet, cap: float, settings: DVAESettings, *, weight: float | None,
                   floor_after: int | None, device: torch.device) -> tuple[TrainConfig, list[str], str]:
    """Profile defaults filled in and checked against `ds`; also the notes on deviations from the paper's settings.

    `weight` None = the reference's rule `kl_weight(cap)`; `floor_after` None = 10 at `paper`, scaled with the
    epochs otherwise. Returns (config, notes, profile name).
    """
    prof = resolve_profile(settings.profile)
    base = PROFILE_SETTINGS[prof]
    cap = check_cap(cap, fn)
    epochs = base.epochs if settings.epochs is None else settings.epochs
    width = base.width if settings.width is None else settings.width
    latent_dim = base.latent_dim if settings.latent_dim is None else settings.latent_dim
    batch_size = base.batch_size if settings.batch_size is None else settings.batch_size
    levels = default_levels(ds.image_size) if settings.levels is None else settings.levels
    check_image_size(ds.image_size, levels, fn)
    lr = settings.lr
    weight = kl_weight(cap) if weight is None else check_rate(weight, "kl_weight", fn, lo=0.0, lo_open=True)
    if floor_after is None:
        floor_after = PAPER_FLOOR_AFTER if prof == "paper" else int(PAPER_FLOOR_AFTER * epochs / PAPER_EPOCHS)
    floor_after = check_count(floor_after, "floor_after", fn, lo=0)
    amp = settings.amp and amp_dtype(device) is not None
    cfg = TrainConfig(model, cap, weight, epochs, width, latent_dim, levels, batch_size, lr, GRAD_CLIP, P_FLOOR,
                      floor_after, amp)
    notes: list[str] = []
    if (width, latent_dim) != (64, 256):
        notes.append(f"network width w={width}, latent channels d={latent_dim} (paper: 64, 256)"
                     + (f", profile {prof!r}" if prof != "paper" else ""))
    if epochs != PAPER_EPOCHS:
        notes.append(f"{epochs} epochs per stage (paper: 60 for CIFAR-10, 100 for CIFAR-100, 20 for the ImageNet "
                     "subset)")
    if model == "dvae" and floor_after != PAPER_FLOOR_AFTER:
        notes.append(f"the perturbation-energy floor max(mean p̂², 0.002) is on for epochs > {floor_after} "
                     f"(reference: > 10, i.e. from the 12th of 60 epochs); scaled with the number of epochs")
    if model == "dvae" and floor_after >= epochs - 1:
        notes.append("the perturbation-energy floor is never switched on with this few epochs")
    if batch_size != 128:
        notes.append(f"batch size {batch_size} (paper: 128)")
    if len(ds) < batch_size:
        notes.append(f"fewer images ({len(ds)}) than a batch: one batch of all of them per epoch")
    if lr != LR:
        notes.append(f"Adam lr {lr} (paper: 5e-3)")
    if weight != kl_weight(cap):
        notes.append(f"KL weight {weight} (reference rule: {kl_weight(cap)} for C={cap})")
    if ds.shape != (3, 32, 32):
        notes.append(f"images {ds.shape}: latent {latent_dim}x{ds.image_size[0] // 2**levels}x"
                     f"{ds.image_size[1] // 2**levels} with {levels} halving(s) (paper: CIFAR 3x32x32 -> 256x16x16)")
    if cfg.amp:
        notes.append(f"mixed precision ({amp_dtype(device)}) on {device.type}; losses in float32")
    return cfg, notes, prof
