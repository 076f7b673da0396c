"""`describe(poisons, clean)`: one table row per poison with its budget, norms, PSNR and linear separability.

Every number is measured on the EFFECTIVE perturbation, stored poisoned image − clean image in [0,1]
units: the original pipelines clip to [0, 1] and store uint8 images (e.g. `export_poison` in
`lafeat/apbench:poisons_generate.py@9a6fb91`), and clipping and quantisation are what a victim really trains
on, so a nominal budget and the attack's float δ can both differ from what reaches the model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_bool, check_count, check_rate, check_seed
from ..data import ImageSet
from .base import Poison
from .registry import REGISTRY

__all__ = ["describe", "format_table", "PoisonTable", "heldout_separability"]

# parameter names that describe a budget (matched as regular expressions against poison.params keys)
_BUDGET_PARAM = re.compile(r"eps|norm|budget|pixel|patch|kernel|blur|region|grid|^k$|freq")
_CHUNK = 2048  # images per chunk when measuring norms: bounded memory on CIFAR-sized sets


class PoisonTable(list):
    """A list of row dicts (one per poison) that prints as an aligned text table in a notebook or a REPL."""

    def __repr__(self) -> str:
        return format_table(self)

    __str__ = __repr__


def _fmt_eps(v: float) -> str:
    """8/255 for small budgets that are whole steps of 1/255 (how papers write L∞ budgets), else a short float."""
    if 0 < v <= 64 / 255 and abs(v * 255 - round(v * 255)) < 1e-6:
        return f"{round(v * 255)}/255"
    return f"{v:.3g}"


def _budget(poison: Poison) -> tuple[str, dict]:
    """The budget parameters of a poison (eps, norm, pixels, ...) and a short text for the table."""
    params = {k: v for k, v in poison.params.items()
              if v is not None and _BUDGET_PARAM.search(str(k).lower())}
    parts = []
    for k, v in params.items():
        if isinstance(v, float) and "eps" in str(k).lower():
            parts.append(f"{k}={_fmt_eps(v)}")
        elif isinstance(v, float):
            parts.append(f"{k}={v:g}")
        else:
            parts.append(f"{k}={v}")
    text = " ".join(parts)
    if not text and poison.attack in REGISTRY:
        text = REGISTRY[poison.attack].budget
    return text or "-", params


def _norms(clean: ImageSet, poisoned: ImageSet) -> dict:
    """Per-image L2, L∞, L0 and MSE of poisoned − clean (uint8 → [0,1]), summarised over images."""
    n = len(clean)
    c, h, w = clean.shape
    l2 = np.empty(n)
    linf = np.empty(n)
    l0_values = np.empty(n)
    l0_pixels = np.empty(n)
    sq = np.empty(n)
    for s in range(0, n, _CHUNK):
        d = poisoned.images[s:s + _CHUNK].to(torch.int32) - clean.images[s:s + _CHUNK].to(torch.int32)
        d = d.reshape(len(d), c, h * w)
        ssq = (d * d).sum(dim=(1, 2)).to(torch.float64)  # exact integers
        sq[s:s + len(d)] = ssq.numpy()
        l2[s:s + len(d)] = ssq.sqrt().numpy() / 255.0
        linf[s:s + len(d)] = d.abs().amax(dim=(1, 2)).numpy() / 255.0
        changed = d != 0
        l0_values[s:s + len(d)] = changed.sum(dim=(1, 2)).numpy()
        l0_pixels[s:s + len(d)] = changed.any(dim=1).sum(dim=1).numpy()
    mse = sq / (255.0 ** 2 * c * h * w)
    hit = mse > 0
    # PSNR = 10 log10(1 / MSE) for [0,1] images; unchanged images (MSE 0, PSNR inf) are left out of the
    # mean, and their share is reported as `changed_images`. All unchanged -> inf.
    psnr = float(np.mean(10 * np.log10(1.0 / mse[hit]))) if hit.any() else math.inf
    if n == 0:
        return {"l2": 0.0, "linf_max": 0.0, "linf_mean": 0.0, "l0_fraction": 0.0, "l0_pixels": 0.0,
                "psnr": math.inf, "changed_images": 0.0}
    return {
        "l2": float(l2.mean()),
        "linf_max": float(linf.max()),
        "linf_mean": float(linf.mean()),
        "l0_fraction": float(l0_values.mean() / (c * h * w)),
        "l0_pixels": float(l0_pixels.mean()),
        "psnr": psnr,
        "changed_images": float(hit.mean()),
    }


def _stratified_split(labels: np.ndarray, max_samples: int, heldout: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_samples` indices, the same share of each class, split into (fit, held-out) per class."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    frac = min(1.0, max_samples / max(n, 1))
    fit, test = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        take = idx[: max(1, int(round(frac * len(idx))))]
        n_test = int(round(heldout * len(take))) if len(take) > 1 else 0
        test.extend(take[:n_test].tolist())
        fit.extend(take[n_test:].tolist())
    return np.sort(np.asarray(fit, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))


def heldout_separability(
    features: torch.Tensor, labels: torch.Tensor, fit_idx: np.ndarray, test_idx: np.ndarray,
    num_classes: int, steps: int = 50,
) -> tuple[float, float]:
    """(train accuracy, held-out accuracy) of a linear softmax classifier on flattened `features`.

    The quick held-out variant behind `describe`'s columns; `uel_helpers.separability.linear_separability` is
    the reference's own recipe (500 L-BFGS steps, training accuracy only), used by notebook 05.

    As Yu et al.'s test, as run by Sandoval-Segura et al. (NeurIPS 2023, arXiv 2305.19254, §4.3;
    `psandovalsegura/learn-from-unlearnable:test_linear_separability.py@605dea2`): one global min-max scaling
    of the whole tensor, a linear layer with bias, cross-entropy, full-batch L-BFGS. Here the fit is a fixed
    budget of `steps` L-BFGS iterations from zero weights (deterministic, a second or two on 5k Fashion-MNIST
    images), and the features are mean-centred (a linear model with bias is unchanged by that; L-BFGS
    converges faster).
    Train accuracy is the paper's score; on a subsample with few images per dimension any features can
    be fitted, so the held-out accuracy says whether the shortcut is real.
    """
    x = features.reshape(len(features), -1).float()
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    fit = torch.as_tensor(fit_idx, dtype=torch.int64)
    test = torch.as_tensor(test_idx, dtype=torch.int64)
    x = x - x[fit].mean(0, keepdim=True)
    y = labels.to(torch.int64)
    xf, yf = x[fit], y[fit]
    w = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, max_eval=int(steps * 1.25) + 1, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xf @ w + b, yf)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        correct = (x @ w + b).argmax(1) == y
    train_acc = float(correct[fit].float().mean()) if len(fit) else math.nan
    test_acc = float(correct[test].float().mean()) if len(test) else math.nan
    return train_acc, test_acc


def describe(
    poisons: Poison | Mapping[str, Poison],
    clean: ImageSet,
    separability: bool = True,
    max_samples: int = 5000,
    heldout: float = 0.2,
    steps: int = 50,
    seed: int = 0,
) -> PoisonTable:
    """One row per poison: budget, L2 / L∞ / L0 / PSNR of the effective perturbation, linear separability.

    Row keys: name, attack, budget (text), params (budget parameters), l2 (mean per-image L2 norm),
    linf_max / linf_mean (max and mean of per-image L∞), l0_fraction (mean share of changed values),
    l0_pixels (mean number of changed pixels, any channel), psnr (dB, mean over changed images; inf when
    none changed), changed_images (share of images that differ at all), and with `separability`:
    separability / separability_heldout (train / held-out accuracy of a linear classifier on the
    flattened effective perturbations → labels), clean_separability / clean_separability_heldout (the
    same on the clean images, the reference) and sep_samples (images used: a stratified subsample of at
    most `max_samples`, `heldout` of them held out). Norms are in [0,1] pixel units.
    The result is a list of dicts that prints as a table (`format_table`).
    """
    if isinstance(poisons, Poison):
        poisons = {poisons.attack: poisons}
    if not isinstance(poisons, Mapping) or not poisons:
        raise ValueError("describe needs a Poison or a non-empty dict name -> Poison, e.g. {'ar': poison}")
    if not isinstance(clean, ImageSet):
        raise TypeError(f"describe needs the clean ImageSet the poisons were made from, got {type(clean).__name__}")
    separability = check_bool(separability, "separability", "describe")
    max_samples = check_count(max_samples, "max_samples", "describe", lo=2)
    heldout = check_rate(heldout, "heldout", "describe", lo=0.0, hi=1.0, hi_open=True)
    steps = check_count(steps, "steps", "describe")
    seed = check_seed(seed, "seed", "describe")
    for name, poison in poisons.items():
        if not isinstance(poison, Poison):
            raise TypeError(f"describe: {name!r} is a {type(poison).__name__}, not a Poison")
        try:
            poison.check_matches(clean)
        except ValueError as err:
            raise ValueError(f"describe: poison {name!r} does not match the clean set: {err}") from err

    if separability:
        fit_idx, test_idx = _stratified_split(clean.labels.numpy(), max_samples, heldout, seed)
        sub = np.sort(np.concatenate([fit_idx, test_idx]))
        # positions of the fit / held-out images inside the subsample
        fit_pos, test_pos = np.searchsorted(sub, fit_idx), np.searchsorted(sub, test_idx)
        sub_t = torch.as_tensor(sub)
        labels = clean.labels[sub_t]
        clean_sep = heldout_separability(clean.images[sub_t].float() / 255.0, labels, fit_pos, test_pos,
                                         clean.num_classes, steps)

    rows = PoisonTable()
    for name, poison in poisons.items():
        text, params = _budget(poison)
        row = {"name": str(name), "attack": poison.attack, "budget": text, "params": params}
        row.update(_norms(clean, poison.poisoned))
        if separability:
            delta = (poison.poisoned.images[sub_t].float() - clean.images[sub_t].float()) / 255.0
            sep = heldout_separability(delta, labels, fit_pos, test_pos, clean.num_classes, steps)
            row.update({"separability": sep[0], "separability_heldout": sep[1],
                        "clean_separability": clean_sep[0], "clean_separability_heldout": clean_sep[1],
                        "sep_samples": len(sub)})
        rows.append(row)
    return rows


# column key -> (header, formatter); other keys are shown with a generic format
_COLUMNS: dict[str, tuple[str, object]] = {
    "name": ("poison", str),
    "attack": ("attack", str),
    "budget": ("budget", str),
    "l2": ("L2", lambda v: f"{v:.3f}"),
    "linf_max": ("L∞ max", lambda v: f"{v * 255:.1f}/255"),
    "linf_mean": ("L∞ mean", lambda v: f"{v * 255:.1f}/255"),
    "l0_fraction": ("L0 frac", lambda v: f"{v:.3f}"),
    "l0_pixels": ("L0 px", lambda v: f"{v:.1f}"),
    "psnr": ("PSNR dB", lambda v: "inf" if math.isinf(v) else f"{v:.1f}"),
    "changed_images": ("changed", lambda v: f"{100 * v:.0f}%"),
    "separability": ("linsep δ", lambda v: f"{100 * v:.1f}%"),
    "separability_heldout": ("held-out δ", lambda v: f"{100 * v:.1f}%"),
    "clean_separability": ("linsep clean", lambda v: f"{100 * v:.1f}%"),
    "clean_separability_heldout": ("held-out clean", lambda v: f"{100 * v:.1f}%"),
}
_DEFAULT_HIDDEN = ("params", "sep_samples")


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in _COLUMNS:
        return _COLUMNS[key][1](value)  # type: ignore[operator]
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """An aligned text table of `describe` rows (or any list of dicts); L∞ in /255 steps, accuracies in %.

    `columns` picks and orders the keys; by default every key except params and sep_samples.
    """
    rows = list(rows)
    if not rows:
        return "(no poisons)"
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns and k not in _DEFAULT_HIDDEN]
    header = [_COLUMNS[k][0] if k in _COLUMNS else k for k in columns]
    body = [[_cell(k, row.get(k)) for k in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    text_cols = {"name", "attack", "budget"}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(wd) if k in text_cols else c.rjust(wd)
                         for c, wd, k in zip(cells, widths, columns, strict=True)).rstrip()

    out = [line(header), "  ".join("-" * wd for wd in widths)]
    out += [line(r) for r in body]
    if any("sep_samples" in r for r in rows):
        n = max(int(r.get("sep_samples", 0)) for r in rows)
        out.append(f"(linsep = train accuracy of a linear classifier on {n} images; held-out = the same "
                   "classifier on images it did not see; chance = 1/classes)")
    return "\n".join(out)
