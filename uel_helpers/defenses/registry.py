"""The defense registry: name -> `Defense`, and `apply_defense(name, train_set, protocol, **params)`.

A defense acts in one of four ways (its `kind`):

- `purify`: a function ImageSet -> ImageSet run once on the *training* set before training (the test set
  is never touched), e.g. ISS's grayscale / JPEG / bit-depth reduction;
- `train`: a change to the training protocol (fields of `uel_helpers.training.Protocol`), e.g. adversarial
  training, cutout, mixup;
- `reading`: the same training, read differently (`reading="peak"`: the best epoch, i.e. early stopping);
- `none`: the undefended baseline.

`reading` says which accuracy a result reports: "final" (the last epoch, as APBench reports) or "peak".
This module does not import `uel_helpers.training` (data flows data -> poisons -> defenses -> training);
`apply_defense` only calls `protocol.with_(...)` on the Protocol it is given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..data import ImageSet

if TYPE_CHECKING:  # pragma: no cover - typing only; defenses sit below training in the data flow
    from ..training import Protocol

KINDS = ("purify", "train", "reading", "none")
READINGS = ("final", "peak")


@dataclass(frozen=True)
class Defense:
    """One registered defense: what it is, how it acts (`kind`), and which accuracy it reports (`reading`).

    purify: for kind "purify", the function (ImageSet, **params) -> ImageSet applied to the training set.
    protocol_changes: for kind "train", the `Protocol.with_(...)` fields at the default parameters
        (for 32x32 images where they depend on the image size).
    configure: optional (train_set, **params) -> protocol changes, when they depend on parameters or data.
    """

    name: str
    description: str
    kind: str
    purify: Callable[..., ImageSet] | None = None
    protocol_changes: dict = field(default_factory=dict, hash=False)
    reading: str = "final"
    configure: Callable[..., dict] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"defense {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.reading not in READINGS:
            raise ValueError(f"defense {self.name!r}: reading must be one of {READINGS}, got {self.reading!r}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"defense {self.name!r} needs a description")
        if (self.kind == "purify") != (self.purify is not None):
            raise ValueError(f"defense {self.name!r}: a purify function is needed exactly when kind is 'purify'")
        if self.kind != "train" and (self.protocol_changes or self.configure is not None):
            raise ValueError(f"defense {self.name!r}: only kind 'train' changes the protocol")
        if self.kind == "train" and not self.protocol_changes:
            raise ValueError(f"defense {self.name!r}: kind 'train' needs its protocol_changes")

    @property
    def params(self) -> dict[str, Any]:
        """The keyword-only parameters this defense takes, with their defaults."""
        fn = self.purify or self.configure
        if fn is None:
            return {}
        sig = inspect.signature(fn)
        return {p.name: p.default for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}


REGISTRY: dict[str, Defense] = {}


def add(defense: Defense) -> Defense:
    """Put a `Defense` into REGISTRY (for entries without a function of their own, e.g. `none`)."""
    if not isinstance(defense, Defense):
        raise TypeError(f"add() takes a Defense, got {type(defense).__name__}")
    if defense.name in REGISTRY:
        raise ValueError(f"defense {defense.name!r} is registered twice")
    REGISTRY[defense.name] = defense
    return defense


def register(
    name: str,
    description: str,
    kind: str = "purify",
    *,
    protocol_changes: dict | None = None,
    reading: str = "final",
) -> Callable[[Callable], Callable]:
    """Decorator: register a defense under `name`.

    For kind "purify" the decorated function is the purifier (ImageSet, *, **params) -> ImageSet; for kind
    "train" it is `configure` (train_set, *, **params) -> the Protocol fields to change.
    """

    def deco(fn: Callable) -> Callable:
        if kind == "purify":
            add(Defense(name, description, kind, purify=fn, reading=reading))
        else:
            add(Defense(name, description, kind, protocol_changes=dict(protocol_changes or {}), reading=reading,
                        configure=fn))
        return fn

    return deco


def get_defense(name: str) -> Defense:
    """The registered `Defense` called `name`; an unknown name is a ValueError listing the known ones."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown defense {name!r}; expected one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def defense_params(name: str) -> dict[str, Any]:
    """The parameters defense `name` accepts, with their defaults."""
    return get_defense(name).params


def apply_defense(name: str, train_set: ImageSet, protocol: Protocol, **params) -> tuple[ImageSet, Protocol]:
    """Apply defense `name`: (the purified training set, the changed protocol); unchanged parts are returned as is.

    Purification touches the training set only; evaluate on the untouched test set. Parameters not given
    take the defense's defaults; unknown ones are a ValueError. What to report is `get_defense(name).reading`.
    """
    defense = get_defense(name)
    if not isinstance(train_set, ImageSet):
        raise TypeError(f"defense {name!r}: expected an ImageSet training set, got {type(train_set).__name__}")
    if len(train_set) == 0:
        raise ValueError(f"defense {name!r}: the training set (train_set) is empty")
    fields = getattr(protocol, "__dataclass_fields__", None)
    if fields is None or not callable(getattr(protocol, "with_", None)):
        raise TypeError(
            f"defense {name!r}: expected a uel_helpers.training.Protocol (get_protocol(...)), "
            f"got {type(protocol).__name__}"
        )
    accepted = defense.params
    unknown = set(params) - set(accepted)
    if unknown:
        raise ValueError(
            f"defense {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(accepted) or 'none'}"
        )
    call = {**accepted, **params}
    out = defense.purify(train_set, **call) if defense.purify is not None else train_set
    if defense.configure is not None:
        changes = defense.configure(train_set, **call)
    else:
        changes = dict(defense.protocol_changes)
    missing = set(changes) - set(fields)
    if missing:
        raise ValueError(
            f"defense {name!r} needs Protocol field(s) {sorted(missing)}, which this version of "
            "uel_helpers.training.Protocol does not have"
        )
    return out, (protocol.with_(**changes) if changes else protocol)


add(Defense("none", "no defense: train on the (poisoned) training set as it is, report the final epoch", "none"))
