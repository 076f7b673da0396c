"""Notebook 02: accuracy and loss curves, peak accuracy against learning speed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..training import History


def _seed_curves(run, name: str) -> dict[str, np.ndarray]:
    """test_acc / train_loss / train_acc of a Result (seeds x epochs) or a History (one seed), as arrays."""
    if isinstance(run, History):
        curves = {"test_acc": [run.test_acc], "train_loss": [run.train_loss], "train_acc": [run.train_acc]}
    elif all(hasattr(run, k) for k in ("test_acc", "train_loss", "train_acc", "seeds")):  # experiments.Result
        curves = {"test_acc": run.test_acc, "train_loss": run.train_loss, "train_acc": run.train_acc}
    else:
        raise ValueError(f"{name!r}: expected an experiments.Result or a training.History, got {type(run).__name__}")
    out = {}
    for key, per_seed in curves.items():
        lengths = {len(c) for c in per_seed}
        if not per_seed or lengths == {0}:
            raise ValueError(f"{name!r}: no {key} curve (a run with at least one epoch is needed)")
        if len(lengths) != 1:
            raise ValueError(f"{name!r}: the seeds' {key} curves have different lengths {sorted(lengths)}")
        out[key] = np.asarray(per_seed, dtype=float)
    return out


def _named_runs(results) -> dict[str, dict[str, np.ndarray]]:
    """{name: curves} from a Result/History, a mapping name -> Result/History, or a list of Results (by attack)."""
    if isinstance(results, History) or hasattr(results, "test_acc"):
        results = {getattr(results, "attack", "run"): results}
    elif not isinstance(results, Mapping):
        if isinstance(results, (str, bytes)) or not isinstance(results, Sequence):
            raise ValueError(f"expected Results, a dict name -> Result, or a list of Results; got {type(results)}")
        results = {getattr(r, "attack", f"run {i}"): r for i, r in enumerate(results)}
    if not results:
        raise ValueError("no results to plot: pass e.g. {'ar': evaluate('ar', ...)}")
    return {str(name): _seed_curves(run, str(name)) for name, run in results.items()}


def _label_peaks(ax, peaks: list[tuple[int, float, str]], longest: int, gap: float = 4.0) -> None:
    """Write "peak p% @ e" beside each peak dot, nudging labels up so that nearby ones (in %) do not overlap."""
    near = max(1.0, 0.15 * longest)  # labels closer than this in epochs compete for the same space
    placed: list[tuple[float, float]] = []
    for epoch, acc, color in sorted(peaks, key=lambda p: p[1]):
        y = acc + 1.5
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(px - epoch) < near and abs(py - y) < gap:
                y = py + gap
        placed.append((epoch, y))
        right = epoch > 0.6 * longest and longest > 1  # late peaks: write the label to the left of the dot
        dx = 0.08 * max(1, longest / 10) * (-1 if right else 1)
        ax.annotate(f"peak {acc:.1f}% @ {epoch}", (epoch, acc), xytext=(epoch + dx, y), textcoords="data",
                    fontsize=7, color=color, va="bottom", ha="right" if right else "left",
                    arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5} if y - acc > gap else None)


def accuracy_curves(results, mark_epoch: int | None = 8, reference=None, reference_label: str = "clean",
                    title: str = "") -> Figure:
    """Clean test accuracy per epoch (mean over seeds, ± std band with several), one line per poison.

    Each curve's peak gets a dot and "peak p% @ e"; a dashed vertical line marks `mark_epoch` when it is within
    the run (None = no line). `reference` (e.g. `result.clean`) is drawn in black as `reference_label`.
    """
    runs = _named_runs(results)
    if reference is not None:
        runs = {reference_label: _seed_curves(reference, reference_label), **runs}
    fig, ax = plt.subplots(figsize=(8, 4.4))
    longest, peaks = 0, []
    for name, c in runs.items():
        acc = 100 * c["test_acc"]
        mean = acc.mean(axis=0)
        epochs = np.arange(1, len(mean) + 1)
        longest = max(longest, len(mean))
        is_ref = reference is not None and name == reference_label
        style = {"color": "black", "ls": "--"} if is_ref else {}
        (line,) = ax.plot(epochs, mean, marker="o", ms=3, lw=1.5, label=name, **style)
        if acc.shape[0] > 1:
            sd = acc.std(axis=0, ddof=1)
            ax.fill_between(epochs, mean - sd, mean + sd, color=line.get_color(), alpha=0.15, lw=0)
        e = int(np.argmax(mean))  # first epoch on ties
        ax.plot([e + 1], [mean[e]], "o", ms=8, color=line.get_color(), mec="white", zorder=5)
        peaks.append((e + 1, float(mean[e]), line.get_color()))
    _label_peaks(ax, peaks, longest)
    if mark_epoch is not None and 1 <= mark_epoch <= longest:
        ax.axvline(mark_epoch, color="gray", ls="--", lw=1)
        ax.text(mark_epoch, 99, f" epoch {mark_epoch}", va="top", fontsize=8, color="gray")
    ax.set(xlabel="epoch", ylabel="clean test accuracy (%)", ylim=(0, 100), xlim=(0.5, longest + 0.5),
           title=title or "clean test accuracy per epoch (dot = peak)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def loss_curves(results, reference=None, reference_label: str = "clean", title: str = "") -> Figure:
    """Mean training loss on each (poisoned) training set per epoch, log scale: faster-learned poisons drop first."""
    runs = _named_runs(results)
    if reference is not None:
        runs = {reference_label: _seed_curves(reference, reference_label), **runs}
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for name, c in runs.items():
        mean = c["train_loss"].mean(axis=0)
        style = {"color": "black", "ls": "--"} if reference is not None and name == reference_label else {}
        ax.plot(np.arange(1, len(mean) + 1), np.maximum(mean, 1e-6), marker="o", ms=3, label=name, **style)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="training loss (mean over the epoch, log scale)",
           title=title or "training loss on each training set")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def speed_vs_peak(results, speed: str | Mapping[str, Sequence[float]] = "loss_auc@2", xlabel: str | None = None,
                  title: str = "") -> Figure:
    """One point per poison: x = a learning-speed measure, y = peak clean test accuracy; Spearman's ρ in the title.

    `speed` names a measure of `learning_speed.speed_of` ("loss_auc@2", "epochs_to_loss<0.5", "train_acc@1"),
    computed per seed from the training curves; or a mapping poison -> per-seed values of your own measure
    (then give `xlabel`). Points are means over seeds, with ± std error bars when there are several.
    """
    from ..learning_speed import spearman, speed_label, speed_of

    runs = _named_runs(results)
    if isinstance(speed, str):
        xs = {n: [speed_of(list(lo), list(ta), speed) for lo, ta in zip(c["train_loss"], c["train_acc"], strict=True)]
              for n, c in runs.items()}
        xlabel = xlabel or speed_label(speed)
    elif isinstance(speed, Mapping):
        missing = [n for n in runs if n not in speed]
        if missing:
            raise ValueError(f"speed has no values for {missing}; give one list of per-seed values per poison")
        xs = {n: [float(v) for v in np.atleast_1d(speed[n])] for n in runs}
        xlabel = xlabel or "learning speed"
    else:
        raise ValueError(f"speed must be a measure name such as 'loss_auc@2' or a dict poison -> values, got {speed!r}")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mx, my = [], []
    for name, c in runs.items():
        peaks = 100 * c["test_acc"].max(axis=1)
        x = np.asarray(xs[name], dtype=float)
        mx.append(float(x.mean()))
        my.append(float(peaks.mean()))
        xerr = x.std(ddof=1) if len(x) > 1 else None
        yerr = peaks.std(ddof=1) if len(peaks) > 1 else None
        ax.errorbar(mx[-1], my[-1], xerr=xerr, yerr=yerr, fmt="o", ms=7, capsize=3)
        ax.annotate(name, (mx[-1], my[-1]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    rho = spearman(mx, my) if len(mx) >= 2 else float("nan")
    rho_text = "undefined" if np.isnan(rho) else f"{rho:+.2f}"
    ax.set(xlabel=xlabel, ylabel="peak clean test accuracy (%)",
           title=(title + "\n" if title else "") + f"Spearman's ρ = {rho_text} over {len(mx)} training sets")
    ax.set_ylim(0, max(100.0, max(my) + 5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def final_vs_peak(results, title: str = "") -> Figure:
    """Two bars per poison, final and peak clean test accuracy (means over seeds), the ratio peak/final above."""
    runs = _named_runs(results)
    names = list(runs)
    final = np.array([100 * c["test_acc"][:, -1].mean() for c in runs.values()])
    peak = np.array([100 * c["test_acc"].max(axis=1).mean() for c in runs.values()])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(names)), 3.8))
    ax.bar(x - 0.2, final, 0.4, label="final (last epoch)")
    ax.bar(x + 0.2, peak, 0.4, label="peak (best epoch, oracle)")
    for i in range(len(names)):
        ratio = ("∞" if peak[i] > 0 else "-") if final[i] == 0 else f"×{peak[i] / final[i]:.2f}"
        ax.text(x[i], max(final[i], peak[i]) + 2, ratio, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set(ylabel="clean test accuracy (%)", ylim=(0, 110), title=title or "final vs peak accuracy (peak/final above)")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
