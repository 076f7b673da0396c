"""Adversarial training (Madry et al.) as a defense against availability poisons.

APBench's `MadrysLoss`: L∞ PGD with 10 steps of 2/255 inside ε = 8/255, from a random start, the model in eval mode
while attacking (`lafeat/apbench:madrys.py@9a6fb91`, used by `train.py --at`). Perturbing each training image inside
an ε-ball larger than the poison's budget lets the model ignore the poison; the price is clean accuracy and time
(about 11 forward/backward passes per batch).

The training itself is `training.train` with these protocol changes; it stops with a FloatingPointError naming the
epoch when the (adversarial) training loss becomes NaN or infinite, as for any protocol (lower the lr).
"""

from __future__ import annotations

from ..checks import check_count, check_rate
from ..data import ImageSet
from .registry import register


@register("adversarial-training", "adversarial training (APBench 'AT'): L-inf PGD, 10 steps of 2/255 inside "
          "eps = 8/255 by default, on every training batch", kind="train",
          protocol_changes={"adv_eps": 8 / 255, "adv_steps": 10, "adv_step_size": 2 / 255})
def adversarial_training(
    train_set: ImageSet, *, eps: float = 8 / 255, steps: int = 10, step_size: float = 2 / 255
) -> dict:
    """Protocol changes for PGD adversarial training (radius `eps`, `steps` steps of `step_size`)."""
    who = "adversarial-training"
    eps = check_rate(eps, "eps", who, lo=0.0, hi=1.0, lo_open=True)  # pixel units: 8/255, not 8
    step_size = check_rate(step_size, "step_size", who, lo=0.0, hi=1.0, lo_open=True)
    steps = check_count(steps, "steps", who)
    return {"adv_eps": eps, "adv_steps": steps, "adv_step_size": step_size}
