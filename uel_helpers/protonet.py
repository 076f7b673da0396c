"""AutoProtoNet: a prototypical network whose prototypes can be decoded into images, inspected and refined.

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929. Upstream code: psandovalsegura/AdversarialQuerying@9992e0e (`models/autoprotonet.py`,
`models/classification_heads.py`, `train_autoprotonet.py`, `vis_prototypes.py`, "Paper - Case Study.ipynb").
The paper's accuracy table is not available to us; nothing here quotes it.

Read top to bottom: settings per profile -> network (Conv-4 encoder, mirrored decoder) -> head (pure functions) ->
episodic sampler on the device -> training (cached, checkpointed, resumed) -> evaluation (mean +- 95% CI) ->
prototype decoding, the alpha path and refinement -> the optimisation-based visualisation (Adam + TV) -> the
bad-exemplar refinement task.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cache import atomic_write, cache_path, tensor_fingerprint
from .data import ImageSet, check_imageset, decode_images
from .device import OptimizerStep, autocast, check_finite_loss, make_generator, pick_device, seed_everything
from .profiles import resolve_profile
from .progress import progress
from .training import random_crop, random_flip

__all__ = [
    "ProtoSettings", "PROTO_PROFILES", "protonet_settings", "FASHION_BASE", "FASHION_NOVEL", "DIGITS_BASE",
    "DIGITS_NOVEL", "few_shot_split", "mirror_output_paddings", "Conv4Encoder", "Conv4Decoder", "AutoProtoNet",
    "class_prototypes", "protonet_logits", "Episodes", "EpisodeSampler", "lr_factor", "color_jitter",
    "ProtoHistory", "TrainedProtoNet", "train_protonet", "EpisodeAccuracy", "evaluate_episodes", "embed_images",
    "decode_embeddings", "decode_prototypes", "interpolate", "refine", "prototype_accuracy", "PAPER_ALPHAS",
    "total_variation", "optimise_prototype_image", "RefinementTask", "make_refinement_task", "RefinementPath",
    "refinement_path",
]

PROTONET_FORMAT = 1  # bump when the checkpoint layout changes
HIDDEN = 64          # Conv-4 width (§1: channels 3 -> 64 -> 64 -> 64 -> 64)
MIN_SIZE = 16        # four 2x poolings: a side below 16 px leaves an empty embedding map
PAPER_ALPHAS = tuple(i / 10 for i in range(10))  # the case study's path: alpha = i / 10, i = 0..9 (alpha = 1 not shown)

# Offline proxy of CIFAR-FS's disjoint base / novel classes. Fashion-MNIST: each novel class has a visual relative
# among the base classes (Dress ~ T-shirt/top, Coat and Shirt ~ Pullover, Sneaker and Ankle boot ~ Sandal), so the
# base classes teach the features (tops, footwear) but no novel class is seen in training; the novel 5-way task keeps
# the hard Coat/Shirt and Sneaker/Ankle boot pairs, so it does not saturate. Digits: 0-4 base, 5-9 novel.
FASHION_BASE = ("T-shirt/top", "Trouser", "Pullover", "Sandal", "Bag")
FASHION_NOVEL = ("Dress", "Coat", "Shirt", "Sneaker", "Ankle boot")
DIGITS_BASE = ("0", "1", "2", "3", "4")
DIGITS_NOVEL = ("5", "6", "7", "8", "9")


# ======================================================================================================
# Settings: one dataclass, one row per profile
# ======================================================================================================

@dataclass(frozen=True)
class ProtoSettings:
    """How a (Auto)ProtoNet is trained and evaluated. Defaults: the paper's scripts (arXiv:2204.00929; upstream
    `train_autoprotonet.py`, `scripts/workshop_paper_scripts/train_cifarfs_*_5w5s.sh`, `test.py`).

    Args:
        lambda_r: weight of the query-reconstruction MSE (upstream `--lambda_r`, default 1.0); 0 = plain ProtoNet
            (no decoder is built; same schedule, sampler and encoder initialisation).
        epochs, steps_per_epoch, episodes_per_step: 30 x 1,000 steps x 8 episodes (upstream `epoch_size = 8 x 1000`).
        train_way, train_shot, train_query: 20-way 5-shot 15-query training episodes.
        test_way, test_shot, test_query: 5-way 5-shot 15-query validation / test episodes.
        val_episodes: validation episodes per epoch when a validation set is given (upstream 2,000); the best epoch by
            validation accuracy is kept. test_episodes: evaluation episodes (upstream `--episode 1000`).
        lr, momentum, weight_decay, nesterov: SGD 0.1, 0.9, 5e-4, Nesterov.
        lr_drops, lr_factors: LambdaLR multiplier, epochs numbered from 1: 1.0 before epoch 20, 0.06 from 20, 0.012
            from 40, 0.0024 from 50 (len(lr_factors) == len(lr_drops) + 1).
        crop_padding, jitter, flip: CIFAR-FS training augmentation RandomCrop(32, padding 4), ColorJitter(0.4, 0.4,
            0.4), RandomHorizontalFlip (upstream `data/CIFAR_FS.py`); inputs stay unnormalised in [0, 1].
        leaky_slope: LeakyReLU(0.1) in the encoder (upstream `--activation` default).
        eval_batch: episodes per forward pass at evaluation. amp: bf16/fp16 autocast on CUDA (not upstream).
    """

    lambda_r: float = 1.0
    epochs: int = 30
    steps_per_epoch: int = 1000
    episodes_per_step: int = 8
    train_way: int = 20
    train_shot: int = 5
    train_query: int = 15
    test_way: int = 5
    test_shot: int = 5
    test_query: int = 15
    val_episodes: int = 2000
    test_episodes: int = 1000
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    lr_drops: tuple[int, ...] = (20, 40, 50)
    lr_factors: tuple[float, ...] = (1.0, 0.06, 0.012, 0.0024)
    crop_padding: int = 4
    jitter: float = 0.4
    flip: bool = True
    leaky_slope: float = 0.1
    eval_batch: int = 10
    amp: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "episodes_per_step", "train_way", "train_shot", "train_query",
                     "test_way", "test_shot", "test_query", "val_episodes", "test_episodes", "crop_padding",
                     "eval_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"ProtoSettings.{name} must be an int, got {type(v).__name__} {v!r}")
            low = 0 if name in ("val_episodes", "crop_padding") else 1
            if v < low:
                raise ValueError(f"ProtoSettings.{name} must be >= {low}, got {v}")
        for name in ("lambda_r", "lr", "momentum", "weight_decay", "jitter", "leaky_slope"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise ValueError(f"ProtoSettings.{name} must be a finite number >= 0, got {v!r}")
        if self.lr <= 0 or not self.momentum < 1:
            raise ValueError(f"ProtoSettings: need lr > 0 and momentum < 1, got lr={self.lr}, momentum={self.momentum}")
        if len(self.lr_factors) != len(self.lr_drops) + 1 or list(self.lr_drops) != sorted(self.lr_drops):
            raise ValueError(f"ProtoSettings: lr_factors needs one more entry than lr_drops (increasing epochs), got "
                             f"lr_drops={self.lr_drops}, lr_factors={self.lr_factors}")

    def with_(self, **changes) -> ProtoSettings:
        """A copy with some fields changed, e.g. `protonet_settings('quick').with_(lambda_r=0.0)`."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ProtoSettings fields {sorted(unknown)}; "
                             f"known: {sorted(self.__dataclass_fields__)}")
        return replace(self, **changes)


PROTO_PROFILES: dict[str, ProtoSettings] = {
    # Seconds in CI (digits at 16 px, base 0-4): says nothing about accuracy.
    "smoke": ProtoSettings(epochs=2, steps_per_epoch=3, episodes_per_step=1, train_way=5, train_shot=2,
                           train_query=3, test_shot=2, test_query=3, val_episodes=0, test_episodes=10, lr_drops=(2,),
                           lr_factors=(1.0, 0.06), eval_batch=10),
    # 2 CPU cores, Fashion-MNIST proxy (5 base classes => 5-way training, not 20-way): 6 epochs x 40 steps x 2 episodes,
    # the paper's drop to 0.06 at 2/3 of the run; 300 test episodes.
    "quick": ProtoSettings(epochs=6, steps_per_epoch=40, episodes_per_step=2, train_way=5, val_episodes=0,
                           test_episodes=300, lr_drops=(5,), lr_factors=(1.0, 0.06)),
    "paper": ProtoSettings(),
}


def protonet_settings(profile: str | None = None, **overrides) -> ProtoSettings:
    """The settings of a profile (smoke / quick / paper; None = the default profile), with optional overrides."""
    s = PROTO_PROFILES[resolve_profile(profile)]
    return s.with_(**overrides) if overrides else s


def few_shot_split(ds: ImageSet, classes: Sequence[str]) -> ImageSet:
    """The images of `ds` whose class name is in `classes`, relabelled 0..len(classes)-1 in the given order.

    Raises ValueError naming the missing classes (and the available ones) when a name is not a class of `ds`.
    """
    names = list(classes)
    missing = [c for c in names if c not in ds.classes]
    if missing or not names:
        raise ValueError(f"few_shot_split: classes {missing or names} are not classes of {ds.name!r}; "
                         f"available: {list(ds.classes)}")
    old = torch.tensor([ds.classes.index(c) for c in names])
    keep = torch.isin(ds.labels, old)
    remap = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    remap[old] = torch.arange(len(names))
    return ImageSet(ds.images[keep].clone(), remap[ds.labels[keep]], tuple(names), name=ds.name, meta=dict(ds.meta))


# ======================================================================================================
# Network: Conv-4 encoder, decoder that mirrors it
# ======================================================================================================

def _hw(size: int | Sequence[int], what: str = "image_size") -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, numbers.Integral) for s in size):
        return int(size[0]), int(size[1])
    raise TypeError(f"{what} must be an int or (height, width), got {size!r}")


def mirror_output_paddings(image_size: int | Sequence[int]) -> list[tuple[int, int]]:
    """Per decoder block, the ConvTranspose2d `output_padding` that undoes the encoder's four floor-poolings.

    Rule (ours, explicit): encoder block i sees side s_i and pools to floor(s_i / 2); the decoder block that mirrors
    it doubles its input and adds s_i mod 2. This gives the paper's decoders exactly: 32 px -> no padding
    (2 -> 4 -> 8 -> 16 -> 32), 84 px -> output_padding 1 in the second block only (5 -> 10 -> 21 -> 42 -> 84; §1),
    and 28 px -> (1, 1, 0, 0) (1 -> 3 -> 7 -> 14 -> 28). Raises ValueError for a side below 16 px (the embedding
    map would be empty): resize first, e.g. `load_dataset("digits", size=16)`.
    """
    h, w = _hw(image_size)
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"image_size: the Conv-4 encoder pools 4 times, so the decoder can only mirror sides >= "
                         f"{MIN_SIZE} px, got {h}x{w}; resize explicitly, e.g. load_dataset('digits', size=16)")
    pads = []
    for _ in range(4):
        pads.append((h % 2, w % 2))
        h, w = h // 2, w // 2
    return pads[::-1]


class Conv4Encoder(nn.Module):
    """ProtoNet's Conv-4 (§1): 4 x [Conv 3x3 (no bias) -> BatchNorm -> LeakyReLU(slope) -> MaxPool 2], 64 channels,
    the last activation kept. Input float (B, C, H, W) in [0, 1]; output the spatial map (B, 64, H//16, W//16)."""

    def __init__(self, in_channels: int = 3, hidden: int = HIDDEN, leaky_slope: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(4):
            layers += [nn.Conv2d(c, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
                       nn.LeakyReLU(leaky_slope), nn.MaxPool2d(2)]
            c = hidden
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv4Decoder(nn.Module):
    """AutoProtoNet's decoder (§1): 4 x [ConvTranspose 2x2 stride 2 (bias) -> BatchNorm -> Conv 3x3 (no bias) ->
    ReLU], channels 64 -> 64 -> 64 -> 64 -> out_channels, output paddings from `mirror_output_paddings`. Input the
    spatial map (B, 64, h, w); output (B, out_channels, H, W) >= 0 (ReLU; not bounded above, as upstream)."""

    def __init__(self, out_channels: int, image_size: int | Sequence[int], hidden: int = HIDDEN) -> None:
        super().__init__()
        pads = mirror_output_paddings(image_size)
        chans = [hidden] * 4 + [out_channels]
        layers: list[nn.Module] = []
        for i, pad in enumerate(pads):
            layers += [nn.ConvTranspose2d(chans[i], chans[i + 1], 2, stride=2, output_padding=pad, bias=True),
                       nn.BatchNorm2d(chans[i + 1]), nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1, bias=False),
                       nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class AutoProtoNet(nn.Module):
    """Conv-4 encoder + (optional) mirrored decoder + the ProtoNet head's learnable scale (init 1.0, §1).

    Sandoval-Segura & Lawson, arXiv:2204.00929; upstream `models/autoprotonet.py`. PyTorch's default initialisation
    for both models (AutoProtoNet's upstream; upstream's ProtoNet re-initialises convs Kaiming-normal: we do not, so
    that lambda_r is the only difference). `decoder=False` builds a plain ProtoNet.
    Raises ValueError (from `mirror_output_paddings`) for an image side below 16 px.
    """

    def __init__(self, in_channels: int, image_size: int | Sequence[int], decoder: bool = True,
                 hidden: int = HIDDEN, leaky_slope: float = 0.1) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        h, w = _hw(image_size)
        mirror_output_paddings((h, w))  # validates the size for both variants
        self.image_size = (h, w)
        self.in_channels = in_channels
        self.embedding_shape = (hidden, h // 16, w // 16)
        self.encoder = Conv4Encoder(in_channels, hidden, leaky_slope)
        self.decoder = Conv4Decoder(in_channels, (h, w), hidden) if decoder else None
        self.scale = nn.Parameter(torch.tensor(1.0))

    @property
    def embedding_dim(self) -> int:
        return int(np.prod(self.embedding_shape))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """float images (B, C, H, W) in [0, 1] -> flattened embeddings (B, D), D = 64 * (H//16) * (W//16)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise ValueError(f"embed: expected images (B, {self.in_channels}, {self.image_size[0]}, "
                             f"{self.image_size[1]}), got {tuple(x.shape)}")
        return self.encoder(x).flatten(1)

    def decode(self, e: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D) -> images (B, C, H, W) >= 0 (upstream `forward_decoder` on `embedding_shape`).
        Raises ValueError for a model without a decoder (lambda_r = 0) or a wrong embedding size."""
        if self.decoder is None:
            raise ValueError("decode: this model has no decoder (a plain ProtoNet, lambda_r = 0); train an "
                             "AutoProtoNet (lambda_r > 0) to decode prototypes")
        if e.ndim != 2 or e.shape[1] != self.embedding_dim:
            raise ValueError(f"decode: expected embeddings (B, {self.embedding_dim}), got {tuple(e.shape)}")
        return self.decoder(e.reshape(-1, *self.embedding_shape))


# ======================================================================================================
# Head: the maths as pure functions
# ======================================================================================================

def class_prototypes(embeddings: torch.Tensor, labels: torch.Tensor, way: int) -> torch.Tensor:
    """c_k = mean of the support embeddings of class k (§1). embeddings (..., S, D) float, labels (..., S) int64 in
    [0, way). Returns (..., way, D). Raises ValueError when a class has no support embedding or a label is out of
    range."""
    if embeddings.shape[:-1] != labels.shape:
        raise ValueError(f"class_prototypes: embeddings (..., S, D) and labels (..., S) disagree: "
                         f"{tuple(embeddings.shape)} vs {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= way):
        raise ValueError(f"class_prototypes: labels must lie in [0, {way}), got [{int(labels.min())}, "
                         f"{int(labels.max())}]")
    onehot = F.one_hot(labels, way).to(embeddings.dtype)            # (..., S, way)
    counts = onehot.sum(-2)                                          # (..., way)
    if bool((counts == 0).any()):
        raise ValueError("class_prototypes: a class has no support example; every class needs >= 1 shot")
    return (onehot.transpose(-1, -2) @ embeddings) / counts[..., None]


def protonet_logits(query: torch.Tensor, prototypes: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """logits_k(q) = scale * (-||q - c_k||^2 / d), d the embedding dimension (§1, upstream `ProtoNetHead`,
    normalize=True). query (..., Q, D), prototypes (..., N, D) -> (..., Q, N). Exact squared differences (no
    expansion), so a query equal to a prototype gets exactly 0."""
    if query.shape[-1] != prototypes.shape[-1]:
        raise ValueError(f"protonet_logits: query and prototypes need the same embedding size, got "
                         f"{query.shape[-1]} and {prototypes.shape[-1]}")
    d2 = (query.unsqueeze(-2) - prototypes.unsqueeze(-3)).pow(2).sum(-1)
    return -scale * d2 / query.shape[-1]


# ======================================================================================================
# Episodes, sampled on the device
# ======================================================================================================

@dataclass
class Episodes:
    """A batch of B episodes as indices into the image tensor: support (B, way, shot), query (B, way, query) int64,
    classes (B, way) the dataset labels. The episode label of an image is its class position j in 0..way-1."""

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor

    @property
    def way(self) -> int:
        return int(self.classes.shape[1])


class EpisodeSampler:
    """N-way K-shot Q-query episodes over the classes of a split, drawn on the device, B at a time.

    Ours rather than easyfsl's `TaskSampler` (sicara/easy-few-shot-learning, easyfsl 1.5.0): that one yields one
    episode at a time as a Python list of indices drawn with the global `random` module (no generator, so seeding a
    run means seeding the process), and its labels are remapped in `episodic_collate_fn` from per-item (image,
    label) tuples, i.e. through a DataLoader that gathers images one by one; easyfsl is also not a dependency here.
    This sampler keeps one padded (classes x images) index table on the device and draws B episodes with one
    `argsort` of random keys from its own seeded generator: no per-episode Python, no image decoding per item.

    labels: int64 (N,) dataset labels; classes: the labels episodes may use (default: all present).
    Raises ValueError when way > number of classes or shot + query > images of the smallest class.
    """

    def __init__(self, labels: torch.Tensor, way: int, shot: int, query: int, classes: Sequence[int] | None = None,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        for name, v in (("way", way), ("shot", shot), ("query", query)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"EpisodeSampler: {name} must be an int >= 1, got {v!r}")
        labels = torch.as_tensor(labels).cpu().to(torch.int64)
        present = torch.unique(labels).tolist()
        classes = present if classes is None else [int(c) for c in classes]
        absent = [c for c in classes if c not in present]
        if absent:
            raise ValueError(f"EpisodeSampler: classes {absent} have no images (labels present: {present})")
        if way > len(classes):
            raise ValueError(f"EpisodeSampler: way={way} needs at least {way} classes, the split has {len(classes)}; "
                             f"use way <= {len(classes)}")
        per_class = [torch.nonzero(labels == c).flatten() for c in classes]
        counts = [len(p) for p in per_class]
        smallest = int(np.argmin(counts))
        if shot + query > counts[smallest]:
            raise ValueError(f"EpisodeSampler: shot + query = {shot + query} images per class, but class "
                             f"{classes[smallest]} has only {counts[smallest]}; lower shot or query")
        self.device = torch.device(device)
        self.way, self.shot, self.query = int(way), int(shot), int(query)
        self.classes = torch.tensor(classes, dtype=torch.int64, device=self.device)
        table = torch.full((len(classes), max(counts)), -1, dtype=torch.int64)
        for i, p in enumerate(per_class):
            table[i, :len(p)] = p
        self.table = table.to(self.device)
        self.valid = self.table >= 0
        self.generator = make_generator(seed, self.device)

    def sample(self, batch: int = 1) -> Episodes:
        """Draw `batch` episodes: ways uniformly without replacement, then shot + query distinct images per way."""
        g, k, m = self.generator, self.table.shape[0], self.table.shape[1]
        pos = torch.rand(batch, k, generator=g, device=self.device).argsort(1)[:, :self.way]       # (B, way)
        keys = torch.rand(batch, self.way, m, generator=g, device=self.device)
        keys = keys.masked_fill(~self.valid[pos], 2.0)                                              # padding last
        pick = keys.argsort(-1)[..., :self.shot + self.query]                                       # (B, way, S+Q)
        idx = torch.gather(self.table[pos], 2, pick)
        return Episodes(idx[..., :self.shot], idx[..., self.shot:], self.classes[pos])

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


# ======================================================================================================
# Training
# ======================================================================================================

def lr_factor(settings: ProtoSettings, epoch: int) -> float:
    """The LR multiplier of 1-based `epoch` (§2: LambdaLR stepped at the start of each epoch)."""
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


@dataclass
class ProtoHistory:
    """Per-epoch curves: mean loss, its CE and MSE parts, training query accuracy, validation accuracy (when a
    validation set was given), seconds; `best_epoch` (1-based) is the epoch whose weights were kept."""

    loss: list[float] = field(default_factory=list)
    ce: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0


@dataclass
class TrainedProtoNet:
    """A trained model (on the CPU, eval mode) with its settings, history, seed and training-data fingerprint."""

    model: AutoProtoNet
    settings: ProtoSettings
    history: ProtoHistory
    seed: int
    data: str

    @property
    def name(self) -> str:
        return "AutoProtoNet" if self.settings.lambda_r > 0 else "ProtoNet"


def _fingerprint(ds: ImageSet | None) -> str | None:
    if ds is None:
        return None
    return tensor_fingerprint(ds.images) + tensor_fingerprint(ds.labels)


def protonet_path(train_set: ImageSet, settings: ProtoSettings, seed: int, val_set: ImageSet | None = None,
                  root: str | Path | None = None) -> Path:
    """Where `train_protonet` keeps the model of this (training set, settings, seed, validation set)."""
    key = {"kind": "protonet", "settings": asdict(settings), "data": _fingerprint(train_set),
           "val": _fingerprint(val_set), "seed": seed, "format": PROTONET_FORMAT}
    return cache_path("protonet", key, ".pt", root)


def _check_set(ds: ImageSet, what: str) -> None:
    """TypeError unless `ds` is an ImageSet, ValueError when it is empty. `what` is "caller: argument".

    No class check between a training set and a validation/test set here: few-shot splits have disjoint classes
    by design (CIFAR-FS: 64 / 16 / 20 classes), and every episode relabels its ways 0..way-1."""
    who, _, name = what.rpartition(": ")
    check_imageset(ds, name, who)


def _episode_loss(model: AutoProtoNet, images: torch.Tensor, meta: dict, ep: Episodes, lambda_r: float,
                  aug: ProtoSettings | None, gen: torch.Generator | None, dev: torch.device, amp: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of a batch of episodes: CE(query logits) + lambda_r * MSE(D(E(x_q)), x_q) (§2). images: the uint8 set on
    dev (only the episodes' images are decoded to [0, 1] floats, in one batch)."""
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


def save_protonet(trained: TrainedProtoNet, path: str | Path) -> Path:
    """Save a trained model with its settings and history (atomic)."""
    m = trained.model
    payload = {"format": PROTONET_FORMAT, "settings": asdict(trained.settings), "history": asdict(trained.history),
               "seed": trained.seed, "data": trained.data, "state": m.state_dict(), "in_channels": m.in_channels,
               "image_size": list(m.image_size)}
    return atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def load_protonet(path: str | Path) -> TrainedProtoNet:
    """Load a model written by `save_protonet`. Raises FileNotFoundError / ValueError for a missing or foreign file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no ProtoNet checkpoint at {path}; train one with train_protonet(...)")
    p = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(p, dict) or p.get("format") != PROTONET_FORMAT:
        raise ValueError(f"{path} is not a ProtoNet checkpoint of format {PROTONET_FORMAT}; retrain it")
    st = dict(p["settings"])
    st["lr_drops"], st["lr_factors"] = tuple(st["lr_drops"]), tuple(st["lr_factors"])
    settings = ProtoSettings(**st)
    model = AutoProtoNet(p["in_channels"], tuple(p["image_size"]), decoder=settings.lambda_r > 0,
                         leaky_slope=settings.leaky_slope)
    model.load_state_dict(p["state"])
    return TrainedProtoNet(model.eval(), settings, ProtoHistory(**p["history"]), p["seed"], p["data"])


# ======================================================================================================
# Evaluation: accuracy over test episodes, mean +- 95% CI
# ======================================================================================================

@dataclass
class EpisodeAccuracy:
    """Accuracy over test episodes: per-episode accuracies (n,) in [0, 1], their mean and the 95% CI half-width
    1.96 * std / sqrt(n) (§3; sample std, ddof = 1)."""

    accs: np.ndarray
    way: int
    shot: int
    query: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.accs))

    @property
    def ci95(self) -> float:
        n = len(self.accs)
        return float(1.96 * np.std(self.accs, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    def __str__(self) -> str:
        return (f"{100 * self.mean:.2f} ± {100 * self.ci95:.2f}% ({len(self.accs)} episodes, {self.way}-way "
                f"{self.shot}-shot, {self.query} queries per class)")


def _model_of(model: AutoProtoNet | TrainedProtoNet) -> AutoProtoNet:
    m = model.model if isinstance(model, TrainedProtoNet) else model
    if not isinstance(m, AutoProtoNet):
        raise TypeError(f"model must be an AutoProtoNet or TrainedProtoNet, got {type(model).__name__}")
    return m


@torch.no_grad()
def evaluate_episodes(model: AutoProtoNet | TrainedProtoNet, test_set: ImageSet, way: int = 5, shot: int = 5,
                      query: int = 15, episodes: int = 1000, seed: int = 0, device: str | torch.device | None = "auto",
                      batch: int = 10, quiet: bool = True) -> EpisodeAccuracy:
    """Few-shot accuracy on `episodes` random episodes of `test_set`'s classes (§3: 5-way 5-shot 15-query, 1,000
    episodes), the model in eval mode (BatchNorm running statistics). The same seed gives the same episodes for
    every model. Raises ValueError for more ways than classes, shot + query above the smallest class or an empty
    test_set; TypeError when test_set is not an ImageSet. An episode whose logits are
    NaN or infinite (a diverged model) gets accuracy NaN, so the mean is NaN rather than an argmax-of-NaN number."""
    m = _model_of(model)
    _check_set(test_set, "evaluate_episodes: test_set")
    dev = pick_device(device)
    sampler = EpisodeSampler(test_set.labels, way, shot, query, device=dev, seed=seed + 1_000_003)
    was_training = m.training
    m.eval().to(dev)
    images = test_set.images.to(dev)
    accs = []
    for start in progress(range(0, episodes, batch), desc="test episodes", quiet=quiet):
        ep = sampler.sample(min(batch, episodes - start))
        b = ep.support.shape[0]
        with autocast(dev):
            xs = decode_images(images[ep.support.reshape(-1)], test_set.meta)
            xq = decode_images(images[ep.query.reshape(-1)], test_set.meta)
            es = m.embed(xs).float().reshape(b, way * shot, -1)
            eq = m.embed(xq).float().reshape(b, way * query, -1)
        s_lab = torch.arange(way, device=dev).repeat_interleave(shot).expand(b, -1)
        q_lab = torch.arange(way, device=dev).repeat_interleave(query).expand(b, -1)
        logits = protonet_logits(eq, class_prototypes(es, s_lab, way), m.scale.float())
        acc = (logits.argmax(-1) == q_lab).float().mean(1)
        # argmax of NaN logits still names a class: such an episode's accuracy is undefined, not a number
        accs.append(torch.where(torch.isfinite(logits).all(-1).all(-1), acc, torch.full_like(acc, math.nan)).cpu())
    m.train(was_training)
    return EpisodeAccuracy(torch.cat(accs).numpy().astype(np.float64), way, shot, query)


# ======================================================================================================
# Prototypes you can see: decoding, the alpha path, refinement
# ======================================================================================================

def _as_float_images(images: torch.Tensor, meta: dict | None = None) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if images.dtype == torch.uint8:
        return decode_images(images, meta)
    if not images.dtype.is_floating_point:
        raise TypeError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    return images.float()


@torch.no_grad()
def embed_images(model: AutoProtoNet | TrainedProtoNet, images: torch.Tensor, batch: int = 512,
                 device: str | torch.device | None = "cpu") -> torch.Tensor:
    """Embeddings E(x) of images (N, C, H, W), uint8 0..255 or float in [0, 1], model in eval mode: float32 (N, D)
    on the CPU."""
    m = _model_of(model)
    x = _as_float_images(images)
    dev = pick_device(device)
    was_training = m.training
    m.eval().to(dev)
    out = [m.embed(xb.to(dev)).float().cpu() for xb in x.split(batch)]
    m.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, m.embedding_dim)


@torch.no_grad()
def decode_embeddings(model: AutoProtoNet | TrainedProtoNet, embeddings: torch.Tensor, batch: int = 512,
                      device: str | torch.device | None = "cpu") -> torch.Tensor:
    """D(e) for embeddings (N, D): float32 images (N, C, H, W) >= 0 on the CPU, not clamped (ReLU output, §1; clamp
    to [0, 1] only for display). Raises ValueError for a model without a decoder."""
    m = _model_of(model)
    e = torch.as_tensor(embeddings).float()
    if e.ndim == 1:
        e = e[None]
    dev = pick_device(device)
    was_training = m.training
    m.eval().to(dev)
    out = [m.decode(eb.to(dev)).float().cpu() for eb in e.split(batch)]
    m.train(was_training)
    return torch.cat(out)


def decode_prototypes(model: AutoProtoNet | TrainedProtoNet, support: torch.Tensor, support_labels: torch.Tensor,
                      way: int | None = None, device: str | torch.device | None = "cpu"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypes of a support set and their decoded images (§5, upstream `vis_prototypes.py`): image_k = D(c_k).

    support (S, C, H, W) uint8 or float in [0, 1]; support_labels (S,) int64 in [0, way). Returns (prototypes
    (way, D), decoded images (way, C, H, W) >= 0). Raises ValueError for a class without support or no decoder."""
    labels = torch.as_tensor(support_labels).to(torch.int64).cpu()
    way = int(labels.max()) + 1 if way is None else way
    protos = class_prototypes(embed_images(model, support, device=device), labels, way)
    return protos, decode_embeddings(model, protos, device=device)


def _check_alpha(alpha: float, what: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1] (0 = the old prototype, 1 = the exemplar), got {alpha!r}")
    return float(alpha)


def interpolate(c: torch.Tensor, e: torch.Tensor, alphas: Sequence[float] = PAPER_ALPHAS) -> torch.Tensor:
    """The path p(alpha) = c + alpha * (e - c) from prototype c (D,) towards exemplar embedding e (D,) (§6 step 3;
    the paper uses alpha = i/10, i = 0..9). Returns (len(alphas), D); alpha = 0 gives c, alpha = 1 gives e exactly.
    Raises ValueError for shapes that differ or alphas outside [0, 1]."""
    c, e = torch.as_tensor(c).float(), torch.as_tensor(e).float()
    if c.ndim != 1 or c.shape != e.shape:
        raise ValueError(f"interpolate: c and e must be two embeddings (D,) of the same size, got {tuple(c.shape)} "
                         f"and {tuple(e.shape)}")
    a = torch.tensor([_check_alpha(x, "alphas[i]") for x in alphas], dtype=c.dtype)[:, None]
    return torch.where(a == 1.0, e, c + a * (e - c))  # alpha = 1 is e bit for bit


def refine(prototypes: torch.Tensor, k: int, alpha: float, e: torch.Tensor) -> torch.Tensor:
    """A copy of prototypes (N, D) with row k replaced by c_k + alpha * (e - c_k) (§6 step 4: the person's choice).
    Raises ValueError for k outside 0..N-1, alpha outside [0, 1] or e of the wrong size."""
    p = torch.as_tensor(prototypes).float()
    if p.ndim != 2:
        raise ValueError(f"refine: prototypes must be (N, D), got {tuple(p.shape)}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < p.shape[0]:
        raise ValueError(f"refine: k must be a class index in 0..{p.shape[0] - 1}, got {k!r}")
    out = p.clone()
    out[k] = interpolate(p[k], e, [_check_alpha(alpha)])[0]
    return out


def prototype_accuracy(prototypes: torch.Tensor, query_embeddings: torch.Tensor, query_labels: torch.Tensor) -> float:
    """Accuracy in [0, 1] of nearest-prototype classification, logits -||q - c||^2 / d without scale (as the case
    study's `logits_using_prototypes`, §6). prototypes (N, D), query_embeddings (Q, D), query_labels (Q,)."""
    logits = protonet_logits(query_embeddings.float(), prototypes.float())
    return float((logits.argmax(-1) == torch.as_tensor(query_labels)).float().mean())


# ======================================================================================================
# The comparison: a prototype image by optimisation (Adam + TV)
# ======================================================================================================

def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of images (B, C, H, W): the mean absolute difference between vertical and between
    horizontal neighbours, summed over the two directions (our definition; upstream's exact form is not stated)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def optimise_prototype_image(model: AutoProtoNet | TrainedProtoNet, prototype: torch.Tensor, steps: int = 20_000,
                             lr: float = 0.01, tv_weight: float = 0.05, rand_init: bool = False, seed: int = 0,
                             device: str | torch.device | None = "cpu") -> torch.Tensor:
    """An image whose embedding is the prototype: argmin_x ||E(x) - c||_2 + tv_weight * TV(x), x in [0, 1] (§5,
    upstream `generate_prototype_img_using_adam`: Adam(lr, betas (0.9, 0.999)) from zeros or U[0, 1]; the paper's
    notebook: lr 0.01, 20,000 steps, weight 0.05). Upstream's quirks, fixed: tv_weight = 0 really drops the TV term
    (upstream adds the constant 1.0), the learning rate stays constant (upstream calls `StepLR.step(loss)`, passing
    the loss as the epoch), and x is projected onto [0, 1] after every step. Model in eval mode. Returns float32
    (C, H, W) in [0, 1] on the CPU. Raises ValueError for a prototype of the wrong size or steps < 1,
    NonFiniteLossError (device.py) when the loss becomes NaN or infinite (checked every 500 steps and at the end)."""
    m = _model_of(model)
    c = torch.as_tensor(prototype).float().reshape(-1)
    if c.numel() != m.embedding_dim:
        raise ValueError(f"prototype must have {m.embedding_dim} values (the embedding size), got {c.numel()}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    dev = pick_device(device)
    was_training = m.training
    m.eval().to(dev)
    shape = (1, m.in_channels, *m.image_size)
    gen = make_generator(seed, dev)
    x = torch.rand(shape, generator=gen, device=dev) if rand_init else torch.zeros(shape, device=dev)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.9, 0.999))
    target = c.to(dev)[None]
    for p in m.parameters():
        p.requires_grad_(False)
    bad = torch.zeros((), dtype=torch.bool, device=dev)  # any NaN/inf loss so far (checked every 500 steps)
    try:
        for step in range(int(steps)):
            loss = (m.embed(x) - target).norm()
            if tv_weight:
                loss = loss + tv_weight * total_variation(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)  # NaN survives the clamp: a NaN image would come back
            bad |= ~torch.isfinite(loss.detach())
            if (step + 1) % 500 == 0 or step + 1 == steps:
                check_finite_loss(math.nan if bool(bad) else 0.0, "optimise_prototype_image", "loss",
                                  where=f"by step {step + 1} (lr {lr:g})",
                                  fix=f"lower lr (now {lr:g}), or check the prototype and the model for NaN/inf")
    finally:
        for p in m.parameters():
            p.requires_grad_(True)
        m.train(was_training)
    return x.detach()[0].cpu()


# ======================================================================================================
# The case study, rebuilt: a task with a poor exemplar, and the path towards a better one
# ======================================================================================================

CORRUPTIONS = ("occlude", "shift")


def _corrupt(x: torch.Tensor, how: str) -> torch.Tensor:
    """uint8 image (C, H, W) -> a poor exemplar: `occlude` blacks out the centred square of side 5/8 of the image;
    `shift` translates it by half its width (zero fill), so most of the object leaves the frame."""
    c, h, w = x.shape
    out = x.clone()
    if how == "occlude":
        sh, sw = (5 * h + 7) // 8, (5 * w + 7) // 8
        top, left = (h - sh) // 2, (w - sw) // 2
        out[:, top:top + sh, left:left + sw] = 0
    elif how == "shift":
        d = w // 2
        out = torch.zeros_like(x)
        out[:, :, d:] = x[:, :, :w - d]
    else:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {how!r}")
    return out


@dataclass
class RefinementTask:
    """A way-way shot-shot task with held-out queries and spare exemplars per class; one class's support is poor.

    support uint8 (way, shot, C, H, W) (the bad class's images corrupted), clean_support the same uncorrupted,
    query uint8 (way * query, C, H, W) with query_labels (way * query,) in 0..way-1, exemplars uint8
    (way, n_exemplars, C, H, W) other images of each class (candidates for x_new), bad_class the poor class's position,
    classes its names, dataset_labels the dataset labels of the positions."""

    support: torch.Tensor
    clean_support: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    exemplars: torch.Tensor
    bad_class: int
    classes: tuple[str, ...]
    dataset_labels: tuple[int, ...]
    corruption: str

    @property
    def way(self) -> int:
        return int(self.support.shape[0])

    @property
    def support_labels(self) -> torch.Tensor:
        return torch.arange(self.way).repeat_interleave(self.support.shape[1])


def make_refinement_task(ds: ImageSet, way: int = 5, shot: int = 1, query: int = 15, n_exemplars: int = 3,
                         bad_class: int = 0, corruption: str = "occlude", seed: int = 0) -> RefinementTask:
    """Draw a task from `ds` (its classes should be novel to the model): `way` random classes, `shot` support,
    `query` held-out queries and `n_exemplars` spare images per class, all distinct; the support of class position
    `bad_class` is corrupted (`occlude` or `shift`, see `_corrupt`). This is our offline stand-in for the paper's
    phone-photo task (§6), not that task. Raises ValueError for bad_class outside 0..way-1, an unknown corruption,
    or too few classes / images (from `EpisodeSampler`)."""
    _check_set(ds, "make_refinement_task: ds")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    if isinstance(bad_class, bool) or not isinstance(bad_class, numbers.Integral) or not 0 <= bad_class < way:
        raise ValueError(f"bad_class must be a class position in 0..{way - 1}, got {bad_class!r}")
    ep = EpisodeSampler(ds.labels, way, shot + n_exemplars, query, seed=seed).sample(1)
    sup_idx = ep.support[0, :, :shot]
    ex_idx = ep.support[0, :, shot:]
    q_idx = ep.query[0].reshape(-1)
    clean = ds.images[sup_idx]                                      # (way, shot, C, H, W)
    support = clean.clone()
    for j in range(shot):
        support[bad_class, j] = _corrupt(clean[bad_class, j], corruption)
    labels = ep.classes[0].tolist()
    return RefinementTask(support, clean, ds.images[q_idx], torch.arange(way).repeat_interleave(query),
                          ds.images[ex_idx], int(bad_class), tuple(ds.classes[k] for k in labels), tuple(labels),
                          corruption)


@dataclass
class RefinementPath:
    """Everything the α-path figures and the explorer show, precomputed: prototypes (way, D), decoded prototypes
    (way, C, H, W), exemplar embedding e (D,) and its decoding (C, H, W), the path's alphas (A,), embeddings
    (A, D), decoded images (A, C, H, W), and the held-out query accuracy (A,) with the class's prototype at each
    alpha (diagnostic: it uses the queries, §6)."""

    k: int
    prototypes: torch.Tensor
    decoded_prototypes: torch.Tensor
    exemplar: torch.Tensor
    decoded_exemplar: torch.Tensor
    alphas: np.ndarray
    path: torch.Tensor
    decoded_path: torch.Tensor
    accuracy: np.ndarray
    query_embeddings: torch.Tensor
    query_labels: torch.Tensor

    def accuracy_at(self, alpha: float) -> float:
        """Held-out accuracy with prototype k refined to `alpha` (any alpha in [0, 1], not only the path's)."""
        return prototype_accuracy(refine(self.prototypes, self.k, alpha, self.exemplar), self.query_embeddings,
                                  self.query_labels)


def refinement_path(model: AutoProtoNet | TrainedProtoNet, task: RefinementTask, k: int | None = None,
                    exemplar: int = 0, alphas: Sequence[float] = (*PAPER_ALPHAS, 1.0),
                    device: str | torch.device | None = "cpu") -> RefinementPath:
    """Decode the α path of class k (default: the task's bad class) towards its spare exemplar `exemplar` and measure
    the held-out accuracy at every alpha (§6 steps 1-4 plus the design's diagnostic curve). Default alphas: the
    paper's 0, 0.1, ..., 0.9 and 1 (e itself, which the paper does not offer). Raises ValueError for k or exemplar
    out of range or a model without a decoder."""
    m = _model_of(model)
    k = task.bad_class if k is None else k
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < task.way:
        raise ValueError(f"k must be a class position in 0..{task.way - 1}, got {k!r}")
    n_ex = task.exemplars.shape[1]
    if isinstance(exemplar, bool) or not isinstance(exemplar, numbers.Integral) or not 0 <= exemplar < n_ex:
        raise ValueError(f"exemplar must be in 0..{n_ex - 1} (the task's spare images of the class), got {exemplar!r}")
    c, h, w = task.support.shape[2:]
    protos, decoded = decode_prototypes(m, task.support.reshape(-1, c, h, w), task.support_labels, task.way, device)
    e = embed_images(m, task.exemplars[k, exemplar][None], device=device)[0]
    q_emb = embed_images(m, task.query, device=device)
    a = np.asarray([_check_alpha(x, "alphas[i]") for x in alphas], dtype=np.float64)
    path = interpolate(protos[k], e, a.tolist())
    decoded_path = decode_embeddings(m, torch.cat([path, e[None]]), device=device)
    acc = np.array([prototype_accuracy(refine(protos, k, float(x), e), q_emb, task.query_labels) for x in a])
    return RefinementPath(int(k), protos, decoded, e, decoded_path[-1], a, path, decoded_path[:-1], acc, q_emb,
                          task.query_labels)
