"""The own/other diagnostic: does each image's AR noise still answer ~0 to its own class's matching filter?

The recursion makes conv2d(δ, f_own) = 0 on every 3×3 window it wrote, while other classes' filters respond
strongly: the property the paper's finder (psandovalsegura/autoregressive-poisoning:autoregressive_param_finder.py
@bf350b0) and its one-layer "perfect model" (`autoregressive_perfect_model.py@bf350b0`) rely on. Measured here as
median R(f_own, δ) / median R(f_other, δ) (our diagnostic): ~1e-7 (float32 rounding) for generated noise at any
size, larger once clipping and quantisation have touched it. The registered attacks refuse noise above
OWN_OTHER_LIMIT. Responses are computed in chunks, so the float64 temporaries stay at ~128 MB whatever the size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .coefficients import _class_label, filter_response, matching_filter

OWN_OTHER_LIMIT = 1e-2  # median own/other filter response of a class's generated noise above which it is refused
_DIAG_BYTES = 128 * 2**20  # temporaries of the own/other diagnostic per chunk (see _diagnostic_chunks)


def _diagnostic_bytes(images: int, filters: int, channels: int, h: int, w: int) -> int:
    """Bytes of the own/other diagnostic's temporaries for one chunk of `images` × `filters`: the images as float32
    and as float64 (C·H·W values each), conv2d's unfolded input (9·C values per output position, float64) and its
    output (one (H−2)·(W−2) map per image and filter, float64)."""
    positions = max(h - 2, 0) * max(w - 2, 0)
    return images * (channels * h * w * (4 + 8) + 9 * channels * positions * 8 + filters * positions * 8)


def _diagnostic_chunks(num_filters: int, channels: int, h: int, w: int, budget: int = _DIAG_BYTES) -> tuple[int, int]:
    """(images, filters) per chunk of `filter_responses`, so that `_diagnostic_bytes` stays within `budget` (at
    least one image and one filter: ~13 MB for one 3×224×224 image and one filter)."""
    per_map = max(1, 8 * max(h - 2, 0) * max(w - 2, 0))
    filters = max(1, min(num_filters, budget // 2 // per_map))
    return max(1, budget // max(1, _diagnostic_bytes(1, filters, channels, h, w))), filters


def filter_responses(filters: torch.Tensor, signal: Callable[[int, int], torch.Tensor], n: int,
                     shape: tuple[int, int, int], budget: int = _DIAG_BYTES) -> torch.Tensor:
    """R(f_k, s_i) for n signals and K filters, (n, K) float64 on the CPU: `filter_response` computed in chunks.

    signal(i0, i1) gives the signals i0..i1−1 (C, H, W each, any float dtype), fetched one chunk at a time so that
    the float64 temporaries stay within `budget` bytes (`_diagnostic_chunks`; ~128 MB by default, whatever the
    size: the whole (n, K, H−2, W−2) response map of 256 ImageNet-size images and 100 filters would be ~10 GB).
    The result equals `filter_response(filters, all signals)` up to float64 rounding.
    """
    filters = torch.as_tensor(filters).to(torch.float64)
    k = filters.shape[0]
    out = torch.zeros(n, k, dtype=torch.float64)
    c, h, w = shape
    if h < 3 or w < 3:  # no 3×3 window: no response
        return out
    n_chunk, k_chunk = _diagnostic_chunks(k, c, h, w, budget)
    for i0 in range(0, n, n_chunk):
        i1 = min(n, i0 + n_chunk)
        s = signal(i0, i1).to(torch.float64)
        for k0 in range(0, k, k_chunk):
            out[i0:i1, k0:k0 + k_chunk] = filter_response(filters[k0:k0 + k_chunk].to(s.device), s).cpu()
        del s
    return out


def _own_and_other(r: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The own-filter response of every image, and the responses of every other filter (flattened)."""
    rows = torch.arange(len(labels))
    mask = torch.ones_like(r, dtype=torch.bool)
    mask[rows, labels] = False
    return r[rows, labels], r[mask]


def _ratio(r: torch.Tensor, labels: torch.Tensor) -> float | None:
    """median own response / median other response; None when undefined (no images, one filter, no response)."""
    if len(r) == 0 or r.shape[1] < 2:
        return None
    own, other = _own_and_other(r, labels.cpu())
    other_median = other.median()
    return float(own.median() / other_median) if other_median > 0 else None


def _check_separable(r: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None, who: str,
                     limit: float = OWN_OTHER_LIMIT) -> None:
    """Refuse AR noise that no longer answers ~0 to its own class's matching filter: the generated noise of a sound
    process gives a median own/other response ratio of ~1e-7 (float32 rounding) at any size; a ratio above `limit`
    (1e-2) means the recursion lost its precision (huge cancelling taps) and the classes are no longer told apart
    by their filters. r: (n, K) responses of the generated δ (filter_responses)."""
    if len(r) == 0 or r.shape[1] < 2:
        return
    labels = labels.cpu()
    own, other = _own_and_other(r, labels)
    if not (torch.isfinite(own).all() and torch.isfinite(other).all()):
        raise ValueError(f"{who}: the AR noise gives NaN or Inf filter responses; its processes diverge (use the "
                         "released sets or find_ar_coefficients(...))")
    other_median = float(other.median())
    if other_median <= 0:
        return
    bad = []
    for k in labels.unique().tolist():
        ratio = float(own[labels == k].median()) / other_median
        if ratio > limit:
            bad.append((k, ratio))
    if bad:
        k, ratio = bad[0]
        raise ValueError(
            f"{who}: the AR noise of {_class_label(k, class_names)} no longer answers ~0 to its own matching filter "
            f"(median own/other response ratio {ratio:.3g}, limit {limit:g}; sound processes give ~1e-7; classes "
            f"failing: {[c for c, _ in bad][:10]}{' ...' if len(bad) > 10 else ''}): the recursion lost its "
            "precision in float32, so the classes are not separable by their filters. Its coefficients are "
            "unstable; use the released sets or find_ar_coefficients(...)")


def own_other_ratio(delta: torch.Tensor, labels: torch.Tensor, coefficients) -> float | None:
    """median R(f_own, δ) / median R(f_other, δ) (this module's diagnostic): ~0 for the generated δ, larger once
    clipping and quantisation have touched it (the stored poison). None when it is undefined (no images, one class,
    images smaller than 3×3). Computed in chunks (`filter_responses`): a few hundred MB at most at any image size."""
    if len(delta) == 0 or len(coefficients) < 2:
        return None
    labels = torch.as_tensor(labels).to(torch.int64).cpu()
    r = filter_responses(matching_filter(coefficients), lambda i0, i1: delta[i0:i1], len(delta),
                         tuple(delta.shape[1:]))
    return _ratio(r, labels)
