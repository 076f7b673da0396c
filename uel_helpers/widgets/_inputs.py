"""Checks and indices the explorers share: poisons against their clean set, per-class image lists."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..data import ImageSet
from ..poisons.base import Poison


def check_poisons(clean: ImageSet, poisons: Poison | Mapping[str, Poison], who: str) -> dict[str, Poison]:
    """A dict name -> Poison, every poison checked against `clean` (clear ValueError on a mismatch)."""
    if isinstance(poisons, Poison):
        poisons = {poisons.attack: poisons}
    if not isinstance(poisons, Mapping) or not poisons:
        raise ValueError(f"{who} needs a non-empty dict name -> Poison, e.g. {{'ar': make_poison('ar', train)}}")
    if not isinstance(clean, ImageSet):
        raise TypeError(f"{who} needs the clean ImageSet the poisons were made from, got {type(clean).__name__}")
    out = {}
    for name, poison in poisons.items():
        if not isinstance(poison, Poison):
            raise TypeError(f"{who}: {name!r} is a {type(poison).__name__}, not a Poison")
        try:
            poison.check_matches(clean)
        except ValueError as err:
            raise ValueError(f"{who}: poison {name!r} does not match this clean set: {err}") from err
        out[str(name)] = poison
    return out


def class_index(clean: ImageSet, who: str) -> tuple[dict[int, np.ndarray], list[tuple[str, int]], int]:
    """Per-class image indices, the class dropdown's options ("k: name (count)") and the first non-empty class."""
    labels = clean.labels.numpy()
    per_class = {k: np.flatnonzero(labels == k) for k in range(clean.num_classes)}
    class_options = [(f"{k}: {clean.classes[k]} ({len(idx)})", k) for k, idx in per_class.items() if len(idx)]
    if not class_options:
        raise ValueError(f"{who} needs a non-empty dataset")
    return per_class, class_options, class_options[0][1]
