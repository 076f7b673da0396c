"""How fast a training set is learned, and how much early stopping would give: pure functions on per-epoch lists.

Notebook 02 (Sandoval-Segura et al., "Poisons that are learned faster are more effective") relates the speed
at which a poison is learned (the training loss on the poisoned set drops fast) to its *peak* clean test
accuracy. The paper's exact speed measure is not available, so these are design choices, named on every axis:

- `epochs_to_loss(train_loss, tau)`: the first epoch (1-based) whose mean training loss is below `tau`;
- `loss_auc(train_loss, k)`: the mean training loss over the first `k` epochs (smaller = learned faster);
- `accuracy_at(test_acc, epoch)`, `peak_final_ratio(test_acc)`: reading a test-accuracy curve;
- `spearman(x, y)`: rank correlation (ties get their average rank), for "faster goes with a lower peak";
- `speed_of(train_loss, train_acc, measure)` and `speed_label(measure)`: a measure named by a short string
  ("loss_auc@2", "epochs_to_loss<0.5", "train_acc@1"), so that a plot can compute it and name it.

Epochs are 1-based everywhere, as in the papers ("stopped at epoch 8").
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

__all__ = ["epochs_to_loss", "loss_auc", "accuracy_at", "peak_final_ratio", "spearman", "rank_average",
           "speed_of", "speed_label", "SPEED_MEASURES"]

# measure syntax -> meaning (the number after the operator is the parameter)
SPEED_MEASURES = {
    "loss_auc@k": "mean training loss over epochs 1..k (smaller = learned faster)",
    "epochs_to_loss<tau": "first epoch with mean training loss < tau (T+1 when never reached; smaller = faster)",
    "train_acc@k": "training accuracy on the (poisoned) training set after epoch k (larger = faster)",
}


def _curve(values: Sequence[float], what: str) -> list[float]:
    """A non-empty list of finite floats, or a ValueError that says what was expected."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{what} must be a list of per-epoch numbers, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{what} is empty: expected one number per epoch (epoch 1 first)")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{what}[{i}] (epoch {i + 1}) must be a finite number, got {v!r}")
        out.append(float(v))
    return out


def _epoch_index(epoch: int, n: int, what: str) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or not 1 <= epoch <= n:
        raise ValueError(f"{what} must be an int epoch in 1..{n} (1-based, the run has {n} epochs), got {epoch!r}")
    return int(epoch) - 1


def epochs_to_loss(train_loss: Sequence[float], tau: float) -> int | None:
    """The first epoch (1-based) whose mean training loss is < `tau`; None when the run never gets there."""
    loss = _curve(train_loss, "train_loss")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive loss threshold (e.g. 0.5 or 0.1), got {tau!r}")
    return next((i + 1 for i, v in enumerate(loss) if v < tau), None)


def loss_auc(train_loss: Sequence[float], k: int) -> float:
    """Mean training loss over the first `k` epochs: the area under the loss curve per epoch (smaller = faster)."""
    loss = _curve(train_loss, "train_loss")
    k = _epoch_index(k, len(loss), "k") + 1
    return sum(loss[:k]) / k


def accuracy_at(test_acc: Sequence[float], epoch: int) -> float:
    """Test accuracy after `epoch` (1-based): what a victim who stops there gets."""
    acc = _curve(test_acc, "test_acc")
    return acc[_epoch_index(epoch, len(acc), "epoch")]


def peak_final_ratio(test_acc: Sequence[float]) -> float:
    """max_t acc_t / acc_T: how much better the (oracle) early stop is than the last epoch.

    1.0 when the last epoch is the best; inf when the final accuracy is 0 and the peak is not (nan if both are).
    """
    acc = _curve(test_acc, "test_acc")
    if any(a < 0 for a in acc):
        raise ValueError(f"test_acc must be accuracies >= 0, got a minimum of {min(acc)}")
    peak, final = max(acc), acc[-1]
    if final == 0:
        return math.nan if peak == 0 else math.inf
    return peak / final


def rank_average(values: Sequence[float]) -> list[float]:
    """1-based ranks of `values`, tied values sharing the average of their ranks (as scipy's rankdata)."""
    x = _curve(values, "values")
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation ρ: Pearson's correlation of the (tie-averaged) ranks of x and y.

    Needs two sequences of the same length >= 2; returns nan when either is constant (ρ is undefined then).
    """
    rx, ry = rank_average(x), rank_average(y)
    if len(rx) != len(ry):
        raise ValueError(f"spearman needs two sequences of the same length, got {len(rx)} and {len(ry)}")
    if len(rx) < 2:
        raise ValueError("spearman needs at least 2 pairs (e.g. one point per poison)")
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


_MEASURE = re.compile(r"^(loss_auc|train_acc)@(\d+)$|^epochs_to_loss<([0-9.eE+-]+)$")


def _parse_measure(measure: str) -> tuple[str, float]:
    m = _MEASURE.match(measure) if isinstance(measure, str) else None
    if m is None:
        raise ValueError(f"unknown speed measure {measure!r}; expected one of "
                         "'loss_auc@K', 'epochs_to_loss<TAU', 'train_acc@K' (e.g. 'loss_auc@2', 'epochs_to_loss<0.5')")
    if m.group(1):
        return m.group(1), int(m.group(2))
    try:
        return "epochs_to_loss", float(m.group(3))
    except ValueError:
        raise ValueError(f"speed measure {measure!r}: {m.group(3)!r} is not a number") from None


def speed_of(train_loss: Sequence[float], train_acc: Sequence[float] | None, measure: str) -> float:
    """The named speed measure of one run's curves (see SPEED_MEASURES).

    "epochs_to_loss<tau" gives T+1 for a run that never reaches tau (a censored value that still ranks last).
    """
    kind, param = _parse_measure(measure)
    if kind == "loss_auc":
        return loss_auc(train_loss, int(param))
    if kind == "train_acc":
        if train_acc is None:
            raise ValueError(f"speed measure {measure!r} needs the training-accuracy curve")
        return accuracy_at(train_acc, int(param))
    hit = epochs_to_loss(train_loss, param)
    return float(len(train_loss) + 1 if hit is None else hit)


def speed_label(measure: str) -> str:
    """An axis label that names the measure, e.g. 'mean training loss, epochs 1-2 (smaller = learned faster)'."""
    kind, param = _parse_measure(measure)
    if kind == "loss_auc":
        span = "epoch 1" if param == 1 else f"epochs 1-{int(param)}"
        return f"mean training loss, {span} (smaller = learned faster)"
    if kind == "train_acc":
        return f"training accuracy after epoch {int(param)} (larger = learned faster)"
    return f"first epoch with training loss < {param:g} (T+1 = never; smaller = faster)"
