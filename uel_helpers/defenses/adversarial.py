"""Adversarial training (Madry et al.) as a defense against availability poisons.

APBench's `MadrysLoss`: L∞ PGD with 10 steps of 2/255 inside ε = 8/255, from a random start, the model in
eval mode while attacking (peers_and_protocols.md §1.3). Perturbing each training image inside an ε-ball
larger than the poison's budget lets the model ignore the poison; the price is clean accuracy and time
(about 11 forward/backward passes per batch).

The training itself is `training.train` with these protocol changes; it stops with a FloatingPointError naming the
epoch when the (adversarial) training loss becomes NaN or infinite, as for any protocol (lower the lr).
"""

from __future__ import annotations

import math
import numbers

from ..data import ImageSet
from .registry import register


def _check_fraction(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"adversarial-training: {what} must be a number in (0, 1] (pixel units), got {value!r}")
    if not math.isfinite(value) or not 0 < value <= 1:
        raise ValueError(f"adversarial-training: {what} must be in (0, 1] (pixel units, e.g. 8/255), got {value}")
    return float(value)


@register("adversarial-training", "adversarial training (APBench 'AT'): L-inf PGD, 10 steps of 2/255 inside "
          "eps = 8/255 by default, on every training batch", kind="train",
          protocol_changes={"adv_eps": 8 / 255, "adv_steps": 10, "adv_step_size": 2 / 255})
def adversarial_training(
    train_set: ImageSet, *, eps: float = 8 / 255, steps: int = 10, step_size: float = 2 / 255
) -> dict:
    """Protocol changes for PGD adversarial training (radius `eps`, `steps` steps of `step_size`)."""
    eps = _check_fraction(eps, "eps")
    step_size = _check_fraction(step_size, "step_size")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"adversarial-training: steps must be an int >= 1, got {type(steps).__name__} {steps!r}")
    if steps < 1:
        raise ValueError(f"adversarial-training: steps must be an int >= 1, got {steps}")
    return {"adv_eps": eps, "adv_steps": int(steps), "adv_step_size": step_size}
