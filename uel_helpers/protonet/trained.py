"""A trained (Auto)ProtoNet: its record (model, settings, history, seed, data fingerprint), where it is cached, and
how it is saved and loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..cache import atomic_write, cache_path, tensor_fingerprint
from ..data import ImageSet
from .model import AutoProtoNet
from .settings import ProtoSettings

PROTONET_FORMAT = 1  # bump when the checkpoint layout changes


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


def _model_of(model: AutoProtoNet | TrainedProtoNet) -> AutoProtoNet:
    m = model.model if isinstance(model, TrainedProtoNet) else model
    if not isinstance(m, AutoProtoNet):
        raise TypeError(f"model must be an AutoProtoNet or TrainedProtoNet, got {type(model).__name__}")
    return m
