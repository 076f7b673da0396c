"""Data attribution (notebook 06): a test image beside its top-k training images; support figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..data import ImageSet
from ._common import _show, to_display


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
        axes[r, 0].set_title(f"test index {int(test_index)}\n"
                             f"{test_set.classes[int(test_set.labels[int(test_index)])]}", fontsize=7)
        axes[r, 0].set_ylabel(_attribution_label(att), fontsize=8)
        imgs = to_display(train_set.images[torch.as_tensor(idx)])
        for j, (i, img) in enumerate(zip(idx, imgs, strict=True)):
            ax = axes[r, j + 1]
            _show(ax, img, c)
            score = float(att.scores[row, j])
            ax.set_title(f"#{j + 1} · {i}\n{train_set.classes[int(train_set.labels[i])]} · {score:.3g}", fontsize=7)
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
