"""The attacks on a segmenter: BIM (training and evaluation) and PGD with a random start (a stronger evaluation).

BIM as in `psandovalsegura/Robust-Semantic-Segmentation@2bf51a1` (`tool_train/train_*_psp.py` `BIM`,
`tool_test/voc2012/test_voc_psp.py`): in [0, 1] pixel space, the model in eval mode, ground-truth labels, per-pixel
cross-entropy with the ignore label, `steps` signed-gradient steps of `step`, each followed by a projection onto the
L-inf ball of radius eps and onto [0, 1]; no random start. Training: eps 0.03, 3 steps of 0.01; evaluation: eps
0.03, step 0.01, n in {2, 4, 6}.

PGD-20 (asked for by users of the upstream code, `JIA-Lab-research/Robust-Semantic-Segmentation#5`; the settings
are ours): the same ball, a uniform random start in it, 20 steps of 2.5 * eps / 20 (the step rule of Madry et al.,
arXiv 1706.06083 §4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_count, check_rate
from ..device import NonFiniteLossError, autocast
from .data import IGNORE

EVAL_EPS = 0.03
EVAL_STEP = 0.01


@dataclass(frozen=True)
class Attack:
    """An L-inf attack: `steps` steps of `step` inside radius `eps`, from a uniform random start when
    `random_start` (PGD) or from the image (BIM)."""

    name: str
    eps: float
    steps: int
    step: float
    random_start: bool = False


def attack_by_name(name: str, eps: float = EVAL_EPS) -> Attack | None:
    """"clean" -> None; "bim-N" -> BIM with N steps of 0.01; "pgd-N" -> PGD with a random start and N steps of
    2.5 * eps / N. ValueError for any other name."""
    if name == "clean":
        return None
    m = re.fullmatch(r"(bim|pgd)-(\d+)", name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"attack must be 'clean', 'bim-N' or 'pgd-N' (e.g. 'bim-4', 'pgd-20'); got {name!r}")
    kind, steps = m.group(1), check_count(int(m.group(2)), "attack steps", "attack_by_name")
    if kind == "bim":
        return Attack(name, eps, steps, EVAL_STEP)
    return Attack(name, eps, steps, 2.5 * eps / steps, random_start=True)


def pixel_ce(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-pixel cross-entropy of logits (N, K, H, W) against labels (N, H, W), pixels labelled 255 ignored;
    "per_image" gives the mean over each image's counted pixels, shape (N,)."""
    if reduction != "per_image":
        return F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE, reduction=reduction)
    loss = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE, reduction="none")
    counted = (labels != IGNORE).flatten(1).sum(1).clamp_min(1)
    return loss.flatten(1).sum(1) / counted


def linf_attack(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, steps: int, step: float,
                random_start: bool = False, gen: torch.Generator | None = None) -> torch.Tensor:
    """Maximise the per-pixel cross-entropy of `model` on `x` within the L-inf ball of radius `eps` (BIM, or PGD
    with `random_start`).

    x: float images (N, C, H, W) in [0, 1]; labels: (N, H, W) integer label map (255 ignored). eps, step: [0, 1]
    pixel units. The model runs in eval mode (BatchNorm running statistics; for MixBN models, the route the caller
    set) and is put back in its previous mode. Returns x_adv with |x_adv - x| <= eps and 0 <= x_adv <= 1.
    Raises ValueError for eps <= 0 (or > 1), step <= 0, steps < 1, a label map of another size than x;
    NonFiniteLossError when the loss becomes NaN or infinite.
    """
    who = "linf_attack"
    eps = check_rate(eps, "eps", who, lo=0.0, hi=1.0, lo_open=True)
    step = check_rate(step, "step", who, lo=0.0, lo_open=True)
    steps = check_count(steps, "steps", who)
    if x.ndim != 4 or tuple(labels.shape) != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"{who}: labels must be a label map (N, H, W) = {(x.shape[0], *x.shape[2:])} matching "
                         f"the images {tuple(x.shape)}, got {tuple(labels.shape)}")
    was_training = model.training
    model.eval()
    x = x.detach()
    labels = labels.long()
    if random_start:
        noise = torch.rand(x.shape, generator=gen, device=gen.device if gen is not None else "cpu").to(x.device)
        x_adv = (x + eps * (2 * noise - 1)).clamp(0, 1)
    else:
        x_adv = x.clone()
    finite = torch.ones((), dtype=torch.bool, device=x.device)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with autocast(x.device):
            logits = model(x_adv)
        loss = pixel_ce(logits, labels, "sum")
        finite &= torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, [x_adv])
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    model.train(was_training)
    if not bool(finite):
        raise NonFiniteLossError(f"{who}: the attack's loss became NaN or infinite; check the model and the inputs")
    return x_adv.detach()


def bim_attack(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float = EVAL_EPS, steps: int = 3,
               step: float | None = None) -> torch.Tensor:
    """BIM (no random start): `steps` steps of `step` (default eps / steps, the training attack's 0.01 for eps 0.03
    and 3 steps) within radius eps. See `linf_attack` for shapes, units and errors."""
    return linf_attack(model, x, labels, eps, steps, eps / steps if step is None else step)


def run_attack(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, attack: Attack | None,
               gen: torch.Generator | None = None) -> torch.Tensor:
    """`x` under `attack` (None = clean: x unchanged)."""
    if attack is None:
        return x
    return linf_attack(model, x, labels, attack.eps, attack.steps, attack.step, attack.random_start, gen)
