"""How the segmenters are trained and the inpainting optimiser is run: two settings dataclasses, one row per profile.

Training defaults: the fork's VOC PSPNet-50 recipe, `psandovalsegura/Robust-Semantic-Segmentation@2bf51a1`
`config/paper/voc2012/voc2012_pspnet50.yaml` and `tool_train/train_{psp,sat_psp,advprop_psp}.py` (SGD, base lr 0.01,
poly schedule power 0.9, momentum 0.9, weight decay 1e-4, 50 epochs, batch 16, auxiliary loss weight 0.4; BIM with
eps 0.03 and 3 steps of eps/3 on ground-truth labels). The paper (Sandoval-Segura, arXiv 2204.01099) does not state
its settings; the fork is the closest code.

Inpainting defaults: the best-documented peer recipe, since the paper's optimiser is not available: Santurkar et al.,
"Computer Vision with a Single (Robust) Classifier", arXiv 1906.09453, `MadryLab/robustness_applications@1503d17`
`inpainting.ipynb` (L2 PGD, eps 21.6 at 224 x 224 x 3, step 0.1, 720 iterations, lambda_r 10, a 60 x 60 square
filled with the image's mean colour, the lowest-loss iterate kept).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

from ..checks import check_choice
from ..data import available_datasets
from ..profiles import resolve_profile
from .data import SegScenes, load_voc_scenes, scenes_cached
from .model import MODELS

METHODS = ("standard", "sat", "advprop")


def _with(obj, **changes):
    unknown = set(changes) - set(obj.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {type(obj).__name__} fields {sorted(unknown)}; known: "
                         f"{sorted(obj.__dataclass_fields__)}")
    return replace(obj, **changes)


def _check_fields(obj, ints: tuple[str, ...], positive: tuple[str, ...], nonneg: tuple[str, ...]) -> None:
    name = type(obj).__name__
    for f in ints:
        v = getattr(obj, f)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}.{f} must be an integer >= 1, got {v!r}")
    for f in positive + nonneg:
        v = getattr(obj, f)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name}.{f} must be a finite number, got {v!r}")
        if (f in positive and v <= 0) or v < 0:
            raise ValueError(f"{name}.{f} must be {'> 0' if f in positive else '>= 0'}, got {v!r}")


@dataclass(frozen=True)
class SegSettings:
    """How a segmenter is trained (standard, SAT and AdvProp share all of it).

    Args:
        model, width: network (`model.MODELS`) and base channels of the lite networks.
        epochs, batch_size: passes over the training scenes and images per SGD step (an even batch: SAT and
            AdvProp split it in half).
        lr, momentum, weight_decay, power: SGD with the poly schedule lr_t = lr * (1 - t / T) ** power, per step.
        aux_weight: weight of the auxiliary head's cross-entropy (PSPNet: 0.4).
        flip: random horizontal flips of image and label map together.
        eps, attack_steps, attack_step: the training attack, BIM in [0, 1] pixel units (0.03, 3 steps of 0.01).
        pretrained: start the paper model's backbone from torchvision's ImageNet weights (a download).
        amp: bf16/fp16 autocast on CUDA (not upstream: it used apex O0, i.e. fp32).
    """

    model: str = "deeplabv3-resnet50"
    width: int = 16
    epochs: int = 50
    batch_size: int = 16
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    power: float = 0.9
    aux_weight: float = 0.4
    flip: bool = True
    eps: float = 0.03
    attack_steps: int = 3
    attack_step: float = 0.01
    pretrained: bool = True
    amp: bool = True
    eval_batch: int = 64

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"SegSettings.model must be one of {', '.join(MODELS)}; got {self.model!r}")
        _check_fields(self, ("width", "epochs", "batch_size", "attack_steps", "eval_batch"),
                      ("lr", "eps", "attack_step"), ("momentum", "weight_decay", "power", "aux_weight"))
        if self.batch_size % 2 or not self.momentum < 1 or self.eps > 1:
            raise ValueError(f"SegSettings: need an even batch_size (SAT/AdvProp halves), momentum < 1 and eps <= 1; "
                             f"got batch_size={self.batch_size}, momentum={self.momentum}, eps={self.eps}")

    def with_(self, **changes) -> SegSettings:
        """A copy with some fields changed, e.g. `seg_settings('quick').with_(epochs=2)`."""
        return _with(self, **changes)


# Scenes of each profile: synthetic Fashion-MNIST scenes offline (n_train, n_test, side, objects per scene, object
# side as a fraction of the scene, the source classes used: None = all); `paper` uses PASCAL VOC 2012 when it is on
# disk (`profile_scenes`).
QUICK_CLASSES = (0, 1, 7, 8)  # T-shirt/top, Trouser, Sneaker, Bag: shapes that differ at 32 px
SCENE_PROFILES: dict[str, dict] = {
    "smoke": dict(n_train=64, n_test=16, size=32, objects=(1, 2), scale=(0.45, 0.7), classes=QUICK_CLASSES),
    "quick": dict(n_train=1200, n_test=200, size=32, objects=(1, 2), scale=(0.45, 0.7), classes=QUICK_CLASSES),
    "paper": dict(n_train=10_000, n_test=1000, size=64, objects=(1, 3), scale=(0.35, 0.6), classes=None),
}
VOC_SIZE = 128  # the side of PASCAL VOC scenes at `paper` (upstream crops 473 px: out of reach for one notebook)

SEG_PROFILES: dict[str, SegSettings] = {
    # seconds in CI; says nothing about robustness
    "smoke": SegSettings(model="unet-lite", width=8, epochs=1, batch_size=16, lr=0.05, pretrained=False, eval_batch=16),
    # 2 CPU cores: 32 px scenes, a width-12 UNet-lite from scratch (lr 0.05: 0.01 is the fork's rate for an
    # ImageNet-initialised backbone)
    "quick": SegSettings(model="unet-lite", width=12, epochs=6, batch_size=32, lr=0.05, pretrained=False),
    "paper": SegSettings(),
}


def seg_settings(profile: str | None = None, **overrides) -> SegSettings:
    """The training settings of a profile (None = the default profile), with optional overrides."""
    s = SEG_PROFILES[resolve_profile(profile)]
    return s.with_(**overrides) if overrides else s


def scene_settings(profile: str | None = None) -> dict:
    """The synthetic scenes of a profile: n_train, n_test, size, objects, scale, classes."""
    return dict(SCENE_PROFILES[resolve_profile(profile)])


def profile_scenes(profile: str | None = None, dataset: str | None = None, seed: int = 0, cache: bool = True,
                   download: bool = False) -> tuple[SegScenes, SegScenes, str]:
    """(train scenes, test scenes, dataset name) of a profile.

    dataset: "voc2012" (PASCAL VOC 2012 train / val at `VOC_SIZE` px, from disk, or downloaded (about 2 GB) with
    `download=True`; FileNotFoundError when absent),
    "fashion-mnist" or "digits" (synthetic scenes of `scene_settings`, cached; test scenes use the test split's
    objects and seed + 1), or None: VOC at `paper` when it loads, else Fashion-MNIST scenes when Fashion-MNIST is
    on disk, else digits scenes. Raises ValueError for another name.
    """
    prof = resolve_profile(profile)
    who = "profile_scenes"
    if dataset is not None:
        check_choice(dataset, "dataset", ("voc2012", "fashion-mnist", "digits"), who)
    if dataset == "voc2012" or (dataset is None and prof == "paper"):
        try:
            return (load_voc_scenes("train", VOC_SIZE, download=download),
                    load_voc_scenes("val", VOC_SIZE, download=download), "voc2012")
        except FileNotFoundError:
            if dataset == "voc2012":
                raise
    if dataset is None:
        dataset = "fashion-mnist" if available_datasets()["fashion-mnist"].startswith("offline") else "digits"
    p = scene_settings(prof)
    options = dict(objects=p["objects"], scale=p["scale"], classes=p["classes"] if dataset == "fashion-mnist" else None)
    train = scenes_cached("train", p["n_train"], p["size"], seed, dataset, cache, **options)
    test = scenes_cached("test", p["n_test"], p["size"], seed + 1, dataset, cache, **options)
    return train, test, f"{dataset} scenes"


# --- inpainting ----------------------------------------------------------------------------------------

REFERENCE_PIXELS = 224 * 224 * 3  # the peer recipe's image (RestrictedImageNet at 224 px)
REFERENCE_EPS = 21.6
REFERENCE_PATCH = 60


def scaled_eps(channels: int, height: int, width: int) -> float:
    """The L2 budget of the peer recipe, 21.6 at 224 x 224 x 3, scaled by sqrt(number of values) so that the
    per-pixel RMS budget is the same (our design): 21.6 * sqrt(C H W / 150,528)."""
    return REFERENCE_EPS * math.sqrt(channels * height * width / REFERENCE_PIXELS)


def scaled_patch(size: int) -> int:
    """The corrupted square's side: the peer recipe's 60 px at 224 px, scaled to `size` (at least 2 px)."""
    return max(2, round(REFERENCE_PATCH * size / 224))


@dataclass(frozen=True)
class InpaintSettings:
    """The inpainting optimiser (identical for every model compared).

    Args:
        steps, step: L2 PGD iterations and step (x <- x - step * g / ||g||_2 per image); 720 and 0.1 upstream.
        eps: L2 radius around the corrupted image; None = `scaled_eps` of the image (21.6 at 224 x 224 x 3).
        lambda_r: weight of the fidelity term mean((x - x_corrupt)^2 * (1 - mask)) over C, H, W (10 upstream).
        use_best: return each image's lowest-loss iterate (upstream `use_best=True`), else the last one.
    """

    steps: int = 720
    step: float = 0.1
    eps: float | None = None
    lambda_r: float = 10.0
    use_best: bool = True

    def __post_init__(self) -> None:
        _check_fields(self, ("steps",), ("step",) + (("eps",) if self.eps is not None else ()), ("lambda_r",))

    def with_(self, **changes) -> InpaintSettings:
        return _with(self, **changes)


INPAINT_PROFILES: dict[str, InpaintSettings] = {
    "smoke": InpaintSettings(steps=10),
    # The step is not scaled with the image, so at 32 px one step moves each pixel ~7x further (RMS) than at
    # 224 px: 150 steps cover the per-pixel path of upstream's 720 (720 / 7 ~ 105) with room to settle.
    "quick": InpaintSettings(steps=150),
    "paper": InpaintSettings(),
}


def inpaint_settings(profile: str | None = None, **overrides) -> InpaintSettings:
    s = INPAINT_PROFILES[resolve_profile(profile)]
    return s.with_(**overrides) if overrides else s
