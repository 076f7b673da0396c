"""How a (Auto)ProtoNet is trained and evaluated: one settings dataclass, one row per profile.

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929. The defaults are the paper's scripts in the upstream code,
psandovalsegura/AdversarialQuerying@9992e0e: `train_autoprotonet.py`,
`scripts/workshop_paper_scripts/train_cifarfs_*_5w5s.sh`, `test.py`, `data/CIFAR_FS.py`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

from ..profiles import resolve_profile


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
