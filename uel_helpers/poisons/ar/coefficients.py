"""The AR processes themselves: the released sets, validation, and the matching filter that detects each one.

A process b_k (C, 3, 3) is one causal 3×3 filter per channel; its bottom-right tap is 0 and its other 8 taps sum to
1. The released sets are those of Sandoval-Segura et al., "Autoregressive Perturbations for Data Poisoning",
NeurIPS 2022 (arXiv 2206.03693), code psandovalsegura/autoregressive-poisoning@bf350b0: `params-classes-10-mr-10.pt`
(CIFAR-10, also used for SVHN and STL-10) and `params-classes-100-mr-3.pt` (CIFAR-100, also ImageNet-100), stored
bit-identically as float64 in `uel_helpers/resources/ar_coefficients.npz`. The CIFAR-100 set is the fixed one:
upstream replaced process 9 (b[9][1][0][0] ≈ 2.35e7, which diverges; psandovalsegura/autoregressive-poisoning#3) in
commit 424cc2e.

Licence of the shipped data: AR coefficients from psandovalsegura/autoregressive-poisoning, Sandoval-Segura et al.,
NeurIPS 2022. They are MIT-licensed, "Copyright (c) 2022 Pedro Sandoval"; the full notice ships beside them in
`uel_helpers/resources/AR_COEFFICIENTS_LICENSE.txt`.

The matching filter and its response follow upstream `ARProcessPerturb3Channel.get_filter` and `response`
(`autoregressive.py@bf350b0`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

RELEASED_SETS = ("cifar10", "cifar100")


@lru_cache(maxsize=1)
def _released() -> dict[str, np.ndarray]:
    path = resources.files("uel_helpers") / "resources" / "ar_coefficients.npz"
    with resources.as_file(path) as real, np.load(real, allow_pickle=False) as z:
        return {name: np.array(z[name], dtype=np.float64) for name in RELEASED_SETS}


def released_coefficients(name: str) -> np.ndarray:
    """The AR processes released with the paper: "cifar10" (10, 3, 3, 3) or "cifar100" (100, 3, 3, 3).

    A float64 copy (the caller may modify it). The CIFAR-10 set also served SVHN and STL-10, the
    CIFAR-100 set ImageNet-100. Source and MIT licence: see this module's docstring.
    """
    key = str(name).lower().replace("-", "")
    if key not in RELEASED_SETS:
        raise ValueError(f"no released AR coefficient set {name!r}; expected one of {RELEASED_SETS}")
    return _released()[key].copy()


def check_coefficients(coefficients, channels: int | None = None) -> torch.Tensor:
    """Validate AR coefficients and return them as a float64 tensor of shape (K, C, 3, 3).

    Each process needs a zero bottom-right tap (the recursion never reads the pixel it writes) and
    finite values. Channel sums of 1 are the paper's convention but are not required here.
    """
    if isinstance(coefficients, str):
        raise TypeError("check_coefficients takes an array; use released_coefficients(name) for a named set")
    if isinstance(coefficients, torch.Tensor):
        b = coefficients.detach().cpu()
    else:
        try:
            b = torch.from_numpy(np.array(coefficients, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"AR coefficients must be an array of shape (K, C, 3, 3), got "
                            f"{type(coefficients).__name__}") from err
    if b.dtype.is_complex or b.dtype == torch.bool:
        raise TypeError(f"AR coefficients must be real numbers, got dtype {b.dtype}")
    b = b.to(torch.float64)
    if b.ndim != 4 or tuple(b.shape[2:]) != (3, 3) or b.shape[0] < 1:
        raise ValueError(f"AR coefficients must have shape (K, C, 3, 3) (one 3×3 filter per class and channel), "
                         f"got {tuple(b.shape)}")
    if channels is not None and b.shape[1] != channels:
        raise ValueError(f"AR coefficients have {b.shape[1]} channel(s) but the images have {channels}; "
                         f"find matching ones with find_ar_coefficients(K, channels={channels})")
    if not torch.isfinite(b).all():
        bad = sorted({int(k) for k in torch.nonzero(~torch.isfinite(b))[:, 0]})
        raise ValueError(f"AR coefficients of class(es) {bad} contain NaN or Inf")
    if (b[:, :, 2, 2] != 0).any():
        bad = sorted({int(k) for k in torch.nonzero(b[:, :, 2, 2] != 0)[:, 0]})
        raise ValueError(f"AR coefficients of class(es) {bad} have a non-zero bottom-right tap b[c,2,2]; "
                         "it must be 0 (that pixel is the one the recursion writes)")
    return b


def matching_filter(b) -> torch.Tensor:
    """The matching filter of AR process(es) `b`: a copy with the bottom-right tap set to −1.

    b: (C, 3, 3) for one process or (K, C, 3, 3) for K. Returns (1, C, 3, 3) or (K, C, 3, 3), float64
    (conv2d weights, one output channel per process). Its taps sum to 0 per channel, and its
    convolution with noise of the same process is 0 wherever the 3×3 window was generated.
    """
    t = torch.as_tensor(b) if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b, dtype=np.float64))
    t = t.detach().to(torch.float64).clone()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or tuple(t.shape[2:]) != (3, 3):
        raise ValueError(f"AR coefficients must have shape (C, 3, 3) or (K, C, 3, 3), got {tuple(t.shape)}")
    t[:, :, 2, 2] = -1.0
    return t


def filter_response(f: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """R(f, s) = Σ ReLU(conv2d_valid(s, f)) over all output positions; the conv sums over channels.

    f: (C, 3, 3) or (K, C, 3, 3) matching filter(s); signal: (C, H, W) or (N, C, H, W).
    Returns (N, K), with the N and/or K axis dropped where that input had no batch axis.
    The response of a class's own filter on its noise is ~0; other filters respond strongly.
    """
    f = torch.as_tensor(f)
    signal = torch.as_tensor(signal)
    f_single, s_single = f.ndim == 3, signal.ndim == 3
    f4 = f[None] if f_single else f
    s4 = signal[None] if s_single else signal
    if f4.ndim != 4 or s4.ndim != 4 or f4.shape[1] != s4.shape[1]:
        raise ValueError(f"filter_response needs filters (K, C, 3, 3) and signals (N, C, H, W) with the same C; "
                         f"got {tuple(f.shape)} and {tuple(signal.shape)}")
    dtype = torch.promote_types(torch.promote_types(f4.dtype, s4.dtype), torch.float32)
    out = F.conv2d(s4.to(dtype), f4.to(device=s4.device, dtype=dtype)).clamp_min_(0).sum((2, 3))
    if f_single:
        out = out[:, 0]
    if s_single:
        out = out[0]
    return out


def _class_label(k: int, class_names: Sequence[str] | None) -> str:
    return f"class {k} ({class_names[k]!r})" if class_names is not None and k < len(class_names) else f"class {k}"
