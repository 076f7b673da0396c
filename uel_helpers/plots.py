"""Matplotlib figures shared by the notebooks, the CLI and the widgets: pure functions returning a Figure."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .data import ImageSet
from .training import History

if TYPE_CHECKING:
    from .poisons.base import Poison

__all__ = ["image_grid", "image_rows", "learning_curves", "bar_table", "accuracy_heatmap", "figure_to_png",
           "to_display"]


def to_display(images: torch.Tensor) -> np.ndarray:
    """uint8 or [0,1] float images (N, C, H, W) -> float arrays (N, H, W, C) or (N, H, W) for imshow."""
    x = images.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.permute(0, 2, 3, 1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def image_grid(ds: ImageSet, per_class: int = 8, seed: int = 0, title: str | None = None) -> Figure:
    """A grid with one row per class and `per_class` random examples of it."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    k = ds.num_classes
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 0.9 + 0.4), squeeze=False)
    for row in range(k):
        idx = np.flatnonzero(labels == row)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        imgs = to_display(ds.images[np.asarray(pick, dtype=np.int64)]) if len(pick) else []
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(imgs):
                ax.imshow(imgs[col], cmap="gray" if ds.channels == 1 else None, vmin=0, vmax=1,
                          interpolation="nearest")
        axes[row, 0].set_ylabel(ds.classes[row], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or f"{ds.name}: {len(ds)} images, {ds.shape[0]}x{ds.shape[1]}x{ds.shape[2]}", fontsize=10)
    fig.tight_layout()
    return fig


def image_rows(sets: Mapping[str, ImageSet], n: int = 8, seed: int = 0, title: str | None = None) -> Figure:
    """The same `n` images (random indices, shared) from several versions of one dataset, one row per version.

    For before/after comparisons: original vs resized, clean vs poisoned vs purified. The sets must have
    the same length (they are versions of the same images); sizes and channel counts may differ.
    """
    if not sets:
        raise ValueError("image_rows needs at least one ImageSet, e.g. {'clean': ds}")
    lengths = {name: len(ds) for name, ds in sets.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"image_rows compares versions of the same images; lengths differ: {lengths}")
    size = next(iter(lengths.values()))
    if n < 1 or size < 1:
        raise ValueError(f"image_rows needs n >= 1 and non-empty sets, got n={n}, {size} images")
    pick = np.sort(np.random.default_rng(seed).choice(size, size=min(n, size), replace=False))
    figsize = (len(pick) * 1.0, len(sets) * 1.1 + 0.4)
    fig, axes = plt.subplots(len(sets), len(pick), figsize=figsize, squeeze=False)
    for row, (name, ds) in enumerate(sets.items()):
        imgs = to_display(ds.images[torch.as_tensor(pick)])
        for col in range(len(pick)):
            ax = axes[row, col]
            ax.imshow(imgs[col], cmap="gray" if ds.channels == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(ds.classes[int(ds.labels[pick[col]])], fontsize=8)
        c, h, w = ds.shape
        axes[row, 0].set_ylabel(f"{name}\n{c}x{h}x{w}", rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(histories: Mapping[str, History] | History, title: str = "", show_peak: bool = True) -> Figure:
    """Clean test accuracy and training loss per epoch, one line per run; the peak is marked."""
    if isinstance(histories, History):
        histories = {"run": histories}
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, h in histories.items():
        epochs = np.arange(1, h.epochs + 1)
        (line,) = ax_acc.plot(epochs, 100 * np.asarray(h.test_acc), marker="o", ms=3,
                              label=f"{label} (final {100 * h.final_acc:.1f}%, peak {100 * h.peak_acc:.1f}%)")
        if show_peak and h.epochs:
            ax_acc.plot([h.peak_epoch], [100 * h.peak_acc], marker="*", ms=12, color=line.get_color())
        ax_loss.plot(epochs, h.train_loss, marker="o", ms=3, color=line.get_color(), label=label)
    ax_acc.set(xlabel="epoch", ylabel="clean test accuracy (%)", ylim=(0, 100), title="test accuracy (* = peak)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_loss.set_yscale("log")
    ax_acc.legend(fontsize=8, loc="lower right")
    ax_acc.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_table(values: Mapping[str, float], ylabel: str = "clean test accuracy (%)", title: str = "",
              reference: Mapping[str, float] | None = None) -> Figure:
    """Bars of measured values (in %), with optional published values beside them."""
    names: Sequence[str] = list(values)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names)), 3.4))
    width = 0.4 if reference else 0.7
    ax.bar(x - (width / 2 if reference else 0), [values[n] for n in names], width, label="measured here")
    if reference:
        ax.bar(x + width / 2, [reference.get(n, np.nan) for n in names], width, label="paper", alpha=0.7)
        ax.legend(fontsize=8)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set(ylabel=ylabel, ylim=(0, 100), title=title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def accuracy_heatmap(values: Mapping[tuple[str, str], float], title: str = "",
                     clean: float | None = None) -> Figure:
    """Attack (rows) × defense (columns) heatmap of clean test accuracy in %, each cell annotated.

    `values` maps (attack, defense) to a percentage (NaN = not run); `clean`, if given, is drawn as the
    colour scale's top so that "recovered" reads the same in every figure.
    """
    rows = list(dict.fromkeys(a for a, _ in values))
    cols = list(dict.fromkeys(d for _, d in values))
    grid = np.full((len(rows), len(cols)), np.nan)
    for (a, d), v in values.items():
        grid[rows.index(a), cols.index(d)] = v
    fig, ax = plt.subplots(figsize=(1.3 + 1.15 * len(cols), 0.9 + 0.45 * len(rows)))
    top = clean if clean is not None else (np.nanmax(grid) if np.isfinite(grid).any() else 100.0)
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=max(top, 1e-6), aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = "-" if np.isnan(grid[i, j]) else f"{grid[i, j]:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="clean test accuracy (%)")
    fig.tight_layout()
    return fig


def figure_to_png(fig: Figure, dpi: int = 100, close: bool = True) -> bytes:
    """Render a figure to PNG bytes (for ipywidgets.Image and files); closes it by default."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return buf.getvalue()


# --- poisons: clean / poisoned / perturbation ------------------------------------------------------

def _effective_delta(clean: ImageSet, poison: Poison, indices: np.ndarray, check: bool) -> torch.Tensor:
    """poisoned − clean of the chosen images, float in [0,1] units (what a victim trains on)."""
    if check:
        poison.check_matches(clean)
    elif clean.shape != poison.poisoned.shape or len(clean) != len(poison.poisoned):
        raise ValueError(f"poison {poison.attack!r} has {len(poison.poisoned)} images of shape "
                         f"{poison.poisoned.shape}, the clean set {len(clean)} of shape {clean.shape}")
    idx = torch.as_tensor(indices, dtype=torch.int64)
    return (poison.poisoned.images[idx].float() - clean.images[idx].float()) / 255.0


def _amplified(delta: torch.Tensor, amplify: float | None) -> tuple[torch.Tensor, float]:
    """Map δ to a displayable image around mid-gray 0.5: auto (max |δ| -> 0.5) or times `amplify`."""
    if amplify is None:
        peak = float(delta.abs().max()) if delta.numel() else 0.0
        factor = 0.5 / peak if peak > 0 else 1.0
    else:
        if isinstance(amplify, bool) or not isinstance(amplify, (int, float)) or not np.isfinite(amplify) \
                or amplify <= 0:
            raise ValueError(f"amplify must be a positive number (e.g. 16) or None for automatic, got {amplify!r}")
        factor = float(amplify)
    return (0.5 + factor * delta).clamp(0.0, 1.0), factor


def _show(ax, image: np.ndarray, channels: int) -> None:
    ax.imshow(image, cmap="gray" if channels == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def render_poison_grid(clean: ImageSet, poison: Poison, n: int = 8, amplify: float | None = None,
                       seed: int = 0, check: bool = True) -> Figure:
    """Three rows for `n` random images: clean, poisoned, and the effective perturbation amplified.

    The perturbation row shows poisoned − clean (uint8, so clipping and rounding are included) around
    mid-gray 0.5 = no change; `amplify=None` scales so that the largest |δ| among the shown images
    reaches 0 or 1, a number multiplies δ by it. `check=False` skips the fingerprint check (widgets).
    """
    if n < 1 or len(clean) < 1:
        raise ValueError(f"render_poison_grid needs n >= 1 and a non-empty dataset, got n={n}, {len(clean)} images")
    pick = np.sort(np.random.default_rng(seed).choice(len(clean), size=min(n, len(clean)), replace=False))
    delta = _effective_delta(clean, poison, pick, check)
    shown, factor = _amplified(delta, amplify)
    rows = [to_display(clean.images[torch.as_tensor(pick)]), to_display(poison.poisoned.images[torch.as_tensor(pick)]),
            to_display(shown)]
    labels = ["clean", f"poisoned\n({poison.attack})", f"δ ×{factor:.3g}\n(gray = 0)"]
    fig, axes = plt.subplots(3, len(pick), figsize=(len(pick) * 1.0 + 0.6, 3 * 1.05 + 0.5), squeeze=False)
    for r in range(3):
        for col in range(len(pick)):
            _show(axes[r, col], rows[r][col], clean.channels)
        axes[r, 0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=8)
    for col, i in enumerate(pick):
        axes[0, col].set_title(clean.classes[int(clean.labels[i])], fontsize=8)
    linf = float(delta.abs().max()) * 255
    fig.suptitle(f"{poison.attack}: effective perturbation of the shown images, L∞ = {linf:.1f}/255", fontsize=10)
    fig.tight_layout()
    return fig


def render_perturbation(clean: ImageSet, poison: Poison, index: int, amplify: float | None = None,
                        show_fft: bool = True, check: bool = True) -> Figure:
    """One training image: clean, poisoned, amplified perturbation (mid-gray = 0) and its Fourier spectrum.

    The spectrum is log10 |FFT2(δ)| per channel, averaged over channels and centred (fftshift): noise
    spread over high frequencies (EM, TAP) looks flat, smooth or patterned noise (AR, regions) does not.
    Three panels with `show_fft=False`. `check=False` skips the fingerprint check (widgets).
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < len(clean):
        raise ValueError(f"index must be an int in [0, {len(clean)}), got {index!r}")
    index = int(index)
    delta = _effective_delta(clean, poison, np.array([index]), check)
    shown, factor = _amplified(delta, amplify)
    c = clean.channels
    panels = 4 if show_fft else 3
    fig, axes = plt.subplots(1, panels, figsize=(2.3 * panels, 2.7), squeeze=False)
    axes = axes[0]
    _show(axes[0], to_display(clean.images[index:index + 1])[0], c)
    axes[0].set_title(f"clean: {clean.classes[int(clean.labels[index])]}", fontsize=9)
    _show(axes[1], to_display(poison.poisoned.images[index:index + 1])[0], c)
    axes[1].set_title(f"poisoned ({poison.attack})", fontsize=9)
    _show(axes[2], to_display(shown)[0], c)
    axes[2].set_title(f"δ ×{factor:.3g} (gray = 0)", fontsize=9)
    if show_fft:
        d = delta[0].double().numpy()
        mag = np.abs(np.fft.fft2(d, axes=(-2, -1))).mean(axis=0)
        spec = np.log10(np.fft.fftshift(mag) + 1e-6)
        axes[3].imshow(spec, cmap="magma", vmin=min(float(spec.min()), float(spec.max()) - 1e-3),
                       interpolation="nearest")
        axes[3].set_xticks([])
        axes[3].set_yticks([])
        axes[3].set_title("log10 |FFT(δ)|, centred", fontsize=9)
    d = delta[0]
    fig.suptitle(f"image {index}: L∞ = {float(d.abs().max()) * 255:.1f}/255, L2 = {float(d.norm()):.3f}, "
                 f"{int((d != 0).any(0).sum())} pixels changed", fontsize=9)
    fig.tight_layout()
    return fig


__all__ += ["render_poison_grid", "render_perturbation"]


# --- notebook 02: peak accuracy and learning speed -------------------------------------------------

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
    from .learning_speed import spearman, speed_label, speed_of

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


__all__ += ["accuracy_curves", "loss_curves", "speed_vs_peak", "final_vs_peak"]


# --- notebook 03: D-VAE and rate-constrained VAEs --------------------------------------------------

def _display_row(name: str, images: torch.Tensor, signed: Sequence[str]) -> tuple[np.ndarray, str]:
    """One row of images for imshow and its label; a row named in `signed` is a perturbation, amplified around
    mid-gray with its factor in the label."""
    if name not in signed:
        return to_display(images), name
    shown, factor = _amplified(images.detach().float().cpu(), None)
    return to_display(shown), f"{name}\n×{factor:.3g}, gray = 0"


def signed_rows(rows: Mapping[str, torch.Tensor], signed: Sequence[str] = (),
                column_titles: Sequence[str] | None = None, title: str = "") -> Figure:
    """Rows of the same images (N, C, H, W), one row per name; rows named in `signed` are perturbations.

    Image rows are uint8 or float in [0,1] and drawn as they are. A signed row is drawn around mid-gray (0 =
    no change), amplified so that its largest |value| reaches 0 or 1; the factor is in the row's label, so two
    rows with different factors are never mistaken for the same scale.
    """
    if not rows:
        raise ValueError("signed_rows needs at least one row, e.g. {'input': x}")
    shapes = {name: tuple(t.shape) for name, t in rows.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 4:
        raise ValueError(f"signed_rows: every row must hold the same (N, C, H, W) images, got {shapes}")
    unknown = set(signed) - set(rows)
    if unknown:
        raise ValueError(f"signed_rows: signed rows {sorted(unknown)} are not among the rows {list(rows)}")
    n, c = next(iter(shapes.values()))[:2]
    if column_titles is not None and len(column_titles) != n:
        raise ValueError(f"signed_rows: {len(column_titles)} column titles for {n} images")
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.05 + 1.2, len(rows) * 1.1 + 0.4), squeeze=False)
    for r, (name, t) in enumerate(rows.items()):
        imgs, label = _display_row(name, t, signed)
        for col in range(n):
            _show(axes[r, col], imgs[col], c)
            if r == 0 and column_titles is not None:
                axes[r, col].set_title(column_titles[col], fontsize=8)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cap_sweep(caps: Sequence[float], psnr_db: Sequence[float], transfer: Sequence[float], accuracy: Sequence[float],
              clean_accuracy: float | None = None, poisoned_accuracy: float | None = None, title: str = "") -> Figure:
    """Three panels against the KL cap (log scale): PSNR of the clean content, perturbation transfer, judge accuracy.

    accuracy values are fractions (0..1), drawn in %; the clean and poisoned (no defense) accuracies are drawn as
    dashed reference lines when given.
    """
    caps = [float(c) for c in caps]
    series = {"PSNR(x̂, clean x) (dB)": psnr_db, "perturbation transfer": transfer, "accuracy": accuracy}
    bad = {k: len(v) for k, v in series.items() if len(v) != len(caps)}
    if not caps or bad:
        raise ValueError(f"cap_sweep needs one value per cap ({len(caps)} caps), got lengths {bad or 'no caps'}")
    if min(caps) <= 0:
        raise ValueError(f"cap_sweep: caps must be > 0 (drawn on a log axis), got {caps}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(caps, psnr_db, "o-")
    axes[0].set(ylabel="PSNR (dB)", title="(a) clean content kept")
    axes[1].plot(caps, transfer, "o-", color="C3")
    axes[1].axhline(1.0, color="gray", ls=":", lw=1)
    axes[1].axhline(0.0, color="gray", ls=":", lw=1)
    axes[1].set(ylabel="Σ⟨x̂(x+δ) − x̂(x), δ⟩ / Σ‖δ‖²", title="(b) perturbation passed through (1 = all)")
    axes[2].plot(caps, [100 * a for a in accuracy], "o-", color="C2", label="VAE reconstructions")
    if clean_accuracy is not None:
        axes[2].axhline(100 * clean_accuracy, color="k", ls="--", lw=1, label="clean training set")
    if poisoned_accuracy is not None:
        axes[2].axhline(100 * poisoned_accuracy, color="C3", ls="--", lw=1, label="poisoned, no defense")
    axes[2].set(ylabel="clean test accuracy (%)", title="(c) judge trained on the reconstructions", ylim=(0, 100))
    axes[2].legend(fontsize=7, loc="lower right")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("KL cap C (nats per latent position)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ += ["signed_rows", "cap_sweep"]


# --- notebook 04: CUDA, sharpening and the DCT low-pass ----------------------------------------------

def kernel_grid(kernels: Mapping[str, np.ndarray | torch.Tensor], title: str = "") -> Figure:
    """3x3 (or k x k) kernels as annotated heatmaps, one panel per name (e.g. CUDA's class kernels, SSK)."""
    if not kernels:
        raise ValueError("kernel_grid needs at least one kernel, e.g. {'class 0': k}")
    arrays = {name: np.asarray(torch.as_tensor(k, dtype=torch.float64)) for name, k in kernels.items()}
    bad = {name: a.shape for name, a in arrays.items() if a.ndim != 2}
    if bad:
        raise ValueError(f"kernel_grid expects 2-D kernels (one channel), got shapes {bad}")
    n = len(arrays)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.1 * rows + 0.3), squeeze=False)
    top = max(float(np.abs(a).max()) for a in arrays.values()) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, a) in zip(axes.flat, arrays.items(), strict=False):
        ax.imshow(a, cmap="RdBu_r", vmin=-top, vmax=top)
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(f"{name}\nsum {a.sum():.2f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def frequency_responses(kernels: Mapping[str, np.ndarray | torch.Tensor], size: int = 32, title: str = "") -> Figure:
    """|H(f)| of small 2-D kernels: the magnitude of their 2-D DFT on a size x size grid, centred (DC in the middle).

    A blur is bright in the middle and dark at the edges (it removes high frequencies); a sharpening kernel is
    the opposite. A product of two responses is the response of the two kernels applied one after the other.
    """
    if not kernels:
        raise ValueError("frequency_responses needs at least one kernel")
    if isinstance(size, bool) or not isinstance(size, int) or size < 3:
        raise ValueError(f"frequency_responses: size must be an int >= 3, got {size!r}")
    mags = {}
    for name, k in kernels.items():
        a = np.asarray(torch.as_tensor(k, dtype=torch.float64))
        if a.ndim != 2 or max(a.shape) > size:
            raise ValueError(f"frequency_responses: kernel {name!r} must be 2-D and at most {size} wide, got {a.shape}")
        mags[name] = np.fft.fftshift(np.abs(np.fft.fft2(a, s=(size, size))))
    top = max(float(m.max()) for m in mags.values())
    n = len(mags)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    im = None
    for ax, (name, m) in zip(axes.flat, mags.items(), strict=False):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=top)
        ax.set_title(f"{name}\nDC gain {m[size // 2, size // 2]:.2f}", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="|H(f)|")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def dct_spectra(images: Mapping[str, torch.Tensor], title: str = "") -> Figure:
    """Each named image (C, H, W, floats in [0,1]) above the log-magnitude of its orthonormal 2-D DCT (channel mean).

    Low frequencies are at the top-left of a DCT spectrum; a low-pass filter keeps only a top-left block.
    """
    from .defenses.sharpen import dct2  # plots sit above defenses in the data flow

    if not images:
        raise ValueError("dct_spectra needs at least one image")
    fig, axes = plt.subplots(2, len(images), figsize=(2.4 * len(images), 5.0), squeeze=False)
    for col, (name, x) in enumerate(images.items()):
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"dct_spectra: {name!r} must be one image tensor (C, H, W), got "
                             f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
        x = x.detach().float().cpu()
        _show(axes[0, col], to_display(x[None])[0], x.shape[0])
        axes[0, col].set_title(f"{name}\n{x.shape[1]}x{x.shape[2]}", fontsize=8)
        spec = np.log10(dct2(x.double()).abs().mean(0).numpy() + 1e-4)
        axes[1, col].imshow(spec, cmap="magma", vmin=-4, vmax=max(1.0, float(spec.max())), interpolation="nearest")
        axes[1, col].set_xticks([])
        axes[1, col].set_yticks([])
    axes[1, 0].set_ylabel("log10 |DCT|", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ += ["kernel_grid", "frequency_responses", "dct_spectra"]


def demo_figure(rows: Mapping[str, torch.Tensor], curves: Mapping[str, Sequence[float]],
                finals: Mapping[str, float], signed: Sequence[str] = (), title: str = "") -> Figure:
    """The demo's one-look figure: example images, per-epoch test accuracy of every run, the final numbers.

    rows: name -> (N, C, H, W) images (uint8, or float in [0,1]); a row named in `signed` is a perturbation,
    drawn around mid-gray and amplified (the factor is in its label). curves: run name -> clean test accuracy
    per epoch (fractions in [0,1]). finals: run name -> the number to print (fraction in [0,1]).
    Returns a Figure with three labelled panels: "examples", "test accuracy per epoch", "final accuracy".
    """
    if not rows or not curves:
        raise ValueError("demo_figure needs at least one image row and one accuracy curve")
    shapes = {tuple(t.shape) for t in rows.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ValueError(f"demo_figure: every image row must hold the same (N, C, H, W) images, got {shapes}")
    n, c = next(iter(shapes))[:2]
    fig = plt.figure(figsize=(max(11.0, 1.0 * n + 6.5), max(4.2, 1.0 * len(rows) + 1.4)))
    grid = fig.add_gridspec(len(rows), n + 6, wspace=0.15, hspace=0.15)
    for r, (name, t) in enumerate(rows.items()):
        imgs, label = _display_row(name, t, signed)
        for col in range(n):
            ax = fig.add_subplot(grid[r, col])
            _show(ax, imgs[col], c)
            if col == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col == 0:
                ax.set_title("examples", loc="left", fontsize=9)
    ax_acc = fig.add_subplot(grid[:, n + 1:n + 4])
    for name, acc in curves.items():
        epochs = np.arange(1, len(acc) + 1)
        ax_acc.plot(epochs, 100 * np.asarray(acc), marker="o", ms=2.5, label=name)
    ax_acc.set(xlabel="epoch", ylabel="clean test accuracy (%)", ylim=(0, 100), title="test accuracy per epoch")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    ax_tab = fig.add_subplot(grid[:, n + 4:])
    ax_tab.axis("off")
    ax_tab.set_title("final accuracy", fontsize=10)
    lines = [f"{name}: {100 * acc:.1f}%" for name, acc in finals.items()]
    ax_tab.text(0.02, 0.95, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace",
                transform=ax_tab.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.98, top=0.86 if title else 0.92, bottom=0.12)
    return fig


# --- data attribution (notebook 06) ------------------------------------------------------------------

def _attribution_label(att) -> str:
    return f"{att.method}" + ("" if att.label_conditioning else " (all classes)")


def render_attribution(train_set: ImageSet, test_set: ImageSet, attributions, test_index: int, top: int = 10,
                       title: str | None = None) -> Figure:
    """The test image and, one row per attribution, its `top` most attributed training images with rank, training
    index, class and score (arXiv 2311.03386). attributions: one `attribution.Attribution` or a sequence of them, each
    computed with `test_index` among its test_indices. Raises ValueError when one of them did not attribute it."""
    atts = [attributions] if hasattr(attributions, "indices") else list(attributions)
    if not atts:
        raise ValueError("render_attribution: no attributions given")
    if not 0 <= int(test_index) < len(test_set):
        raise ValueError(f"test_index: expected 0..{len(test_set) - 1}, got {test_index}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top: expected a positive int, got {top!r}")
    top = min(top, min(a.k for a in atts))
    rows = [(a, a.top(int(test_index), top)) for a in atts]
    fig, axes = plt.subplots(len(atts), top + 1, figsize=(1.15 * (top + 1), 1.45 * len(atts) + 0.5), squeeze=False)
    c = test_set.channels
    test_img = to_display(test_set.images[int(test_index)][None])[0]
    for r, (att, idx) in enumerate(rows):
        row = (att.test_indices == int(test_index)).nonzero().flatten()[0]
        _show(axes[r, 0], test_img, c)
        axes[r, 0].set_title(f"test {int(test_index)}\n{test_set.classes[int(test_set.labels[int(test_index)])]}",
                             fontsize=7)
        axes[r, 0].set_ylabel(_attribution_label(att), fontsize=8)
        imgs = to_display(train_set.images[torch.as_tensor(idx)])
        for j, (i, img) in enumerate(zip(idx, imgs, strict=True)):
            ax = axes[r, j + 1]
            _show(ax, img, c)
            score = float(att.scores[row, j])
            ax.set_title(f"#{j + 1} · {i}\n{train_set.classes[int(train_set.labels[i])]} · {score:.3g}", fontsize=6)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or "most attributed training images (rank · train index, class · score)", fontsize=9)
    fig.tight_layout()
    return fig


def support_figure(rows: Sequence[Mapping], title: str = "") -> Figure:
    """Removal / mislabel support per method (rows of `attribution.support_table`): the fraction of test points
    flipped within k (bars) and the median support of the flipped ones (printed on the bars)."""
    if not rows:
        raise ValueError("support_figure: no rows")
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        rs = [r for r in rows if r["kind"] == kind]
        names = [r["method"] for r in rs]
        vals = [100 * r["flipped_frac"] for r in rs]
        bars = ax.bar(names, vals, color="tab:blue")
        for b, r in zip(bars, rs, strict=True):
            med = ("full-k check" if not r.get("budget", 1) else
                   "—" if r["median_support"] is None else f"median {r['median_support']:.0f}")
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 1, f"{r['flipped']}/{r['points']}\n{med}",
                    ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 115)
        ax.set_ylabel(f"test points flipped within k={rs[0]['k']} (%)")
        ax.set_title(f"{kind} support", fontsize=9)
        ax.tick_params(axis="x", labelsize=8, rotation=20)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- AutoProtoNet (notebook 07) ---------------------------------------------------------------------

def _float_images(images, what: str, ndim: int) -> torch.Tensor:
    """uint8 (0..255) or float images with `ndim` dims -> float in [0, 1] for display (decoder outputs, which are
    >= 0 but unbounded above, are clamped here, for display only)."""
    if not isinstance(images, torch.Tensor) or images.ndim != ndim:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what}: expected a tensor with {ndim} dims, got {got}")
    x = images.detach().cpu()
    return (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).clamp(0, 1)


def render_prototypes(support, decoded, classes: Sequence[str], optimised=None, title: str = "") -> Figure:
    """One row per class of a few-shot episode: its support images, the decoded prototype D(c_k) and, when given,
    the image found by optimisation (Adam + TV) for the same prototype (arXiv:2204.00929 §3, the prototype figure).

    support: (way, shot, C, H, W) uint8 or float in [0, 1]; decoded, optimised: (way, C, H, W) float (clamped to
    [0, 1] for display). Raises ValueError when the shapes disagree or `classes` has the wrong length."""
    s = _float_images(support, "support", 5)
    d = _float_images(decoded, "decoded", 4)
    o = None if optimised is None else _float_images(optimised, "optimised", 4)
    way, shot, c = s.shape[:3]
    if d.shape != (way, *s.shape[2:]) or (o is not None and o.shape != d.shape):
        raise ValueError(f"render_prototypes: support {tuple(s.shape)}, decoded {tuple(d.shape)} and optimised "
                         f"{None if o is None else tuple(o.shape)} must describe the same way x (C, H, W)")
    if len(classes) != way:
        raise ValueError(f"render_prototypes: {way} classes in the episode, {len(classes)} class names")
    cols = shot + 1 + (o is not None)
    fig, axes = plt.subplots(way, cols, figsize=(1.1 * cols + 0.8, 1.1 * way + 0.5), squeeze=False)
    for k in range(way):
        for j in range(shot):
            _show(axes[k, j], to_display(s[k, j][None])[0], c)
        _show(axes[k, shot], to_display(d[k][None])[0], c)
        if o is not None:
            _show(axes[k, shot + 1], to_display(o[k][None])[0], c)
        axes[k, 0].set_ylabel(str(classes[k]), fontsize=8, rotation=0, ha="right", va="center")
    axes[0, 0].set_title("support", fontsize=8, loc="left")
    axes[0, shot].set_title("decoded\nprototype", fontsize=8)
    if o is not None:
        axes[0, shot + 1].set_title("Adam + TV", fontsize=8)
    fig.suptitle(title or "support images and decoded class prototypes", fontsize=9)
    fig.tight_layout()
    return fig


def render_reconstructions(originals, reconstructions, title: str = "") -> Figure:
    """Two rows: images (N, C, H, W) and their reconstructions D(E(x)) (float, clamped to [0, 1] for display), with
    the per-image MSE on the reconstructions' titles. Raises ValueError when the shapes differ."""
    x = _float_images(originals, "originals", 4)
    r_raw = reconstructions.detach().cpu().float() if isinstance(reconstructions, torch.Tensor) else reconstructions
    r = _float_images(r_raw, "reconstructions", 4)
    if x.shape != r.shape:
        raise ValueError(f"render_reconstructions: originals {tuple(x.shape)} and reconstructions "
                         f"{tuple(r.shape)} differ")
    n, c = x.shape[:2]
    mse = ((r_raw - x) ** 2).mean((1, 2, 3))
    fig, axes = plt.subplots(2, n, figsize=(1.05 * n + 0.6, 2.6), squeeze=False)
    for i in range(n):
        _show(axes[0, i], to_display(x[i][None])[0], c)
        _show(axes[1, i], to_display(r[i][None])[0], c)
        axes[1, i].set_title(f"{float(mse[i]):.4f}", fontsize=7)
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("D(E(x))", fontsize=8)
    fig.suptitle(title or "reconstructions (MSE per image)", fontsize=9)
    fig.tight_layout()
    return fig


def render_prototype_path(support, decoded_prototype, decoded_path, alphas, accuracy, exemplar, decoded_exemplar,
                          chosen: int | None = None, class_name: str = "", title: str = "") -> Figure:
    """The refinement view (arXiv:2204.00929 §4, the case study): the class's support image(s), its decoded prototype,
    the exemplar x_new and its decoding; the decoded path p(alpha) = c + alpha (e - c); and the held-out query accuracy
    at each alpha (diagnostic: it uses the queries), the chosen alpha marked.

    support (shot, C, H, W); decoded_prototype, exemplar, decoded_exemplar (C, H, W); decoded_path (A, C, H, W);
    alphas, accuracy (A,) with accuracy in [0, 1]; chosen: an index into alphas or None.
    Raises ValueError for lengths that disagree or `chosen` out of range."""
    s = _float_images(support, "support", 4)
    path = _float_images(decoded_path, "decoded_path", 4)
    a, acc = np.asarray(alphas, dtype=float), np.asarray(accuracy, dtype=float)
    if not (len(a) == len(acc) == len(path)):
        raise ValueError(f"render_prototype_path: {len(a)} alphas, {len(acc)} accuracies, {len(path)} decoded images")
    if chosen is not None and not 0 <= int(chosen) < len(a):
        raise ValueError(f"chosen: expected an index in 0..{len(a) - 1}, got {chosen}")
    singles = [("support" if i == 0 else "", s[i]) for i in range(len(s))]
    singles += [("decoded\nprototype", _float_images(decoded_prototype, "decoded_prototype", 3)),
                ("exemplar\nx_new", _float_images(exemplar, "exemplar", 3)),
                ("decoded\nx_new", _float_images(decoded_exemplar, "decoded_exemplar", 3))]
    c = s.shape[1]
    cols = max(len(path), len(singles))
    fig = plt.figure(figsize=(max(7.0, 0.95 * cols + 0.6), 5.2))
    grid = fig.add_gridspec(3, cols, height_ratios=[1, 1, 1.5], hspace=0.55)
    for j, (label, img) in enumerate(singles):
        ax = fig.add_subplot(grid[0, j])
        _show(ax, to_display(img[None])[0], c)
        ax.set_title(label, fontsize=7)
    for j in range(len(path)):
        ax = fig.add_subplot(grid[1, j])
        _show(ax, to_display(path[j][None])[0], c)
        ax.set_title(f"α={a[j]:.2g}\n{100 * acc[j]:.0f}%", fontsize=7, fontweight="bold" if j == chosen else None,
                     color="tab:red" if j == chosen else "black")
        if j == chosen:
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(2)
    ax = fig.add_subplot(grid[2, :])
    ax.plot(a, 100 * acc, marker="o", ms=3)
    if chosen is not None:
        ax.plot([a[chosen]], [100 * acc[chosen]], "o", color="tab:red", ms=7, label=f"chosen α = {a[chosen]:.2g}")
        ax.legend(fontsize=7, loc="lower right")
    ax.set(xlabel="α (0 = old prototype, 1 = exemplar embedding)", ylabel="held-out query accuracy (%)",
           ylim=(0, 102))
    ax.grid(alpha=0.3)
    fig.suptitle(title or f"refining the prototype of {class_name or 'the class'} along the α path", fontsize=9)
    return fig


__all__ += ["render_prototypes", "render_reconstructions", "render_prototype_path"]
