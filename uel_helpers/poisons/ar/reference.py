"""The paper's AR generation, one pixel at a time: the plain loop that the fast generator is checked against.

Sandoval-Segura et al., "Autoregressive Perturbations for Data Poisoning", NeurIPS 2022 (arXiv 2206.03693); upstream
`ARProcessPerturb3Channel.generate` in psandovalsegura/autoregressive-poisoning:autoregressive.py@bf350b0.
"""

from __future__ import annotations

import torch


def generate_ar_reference(b, start: torch.Tensor, crop: int = 4, eps: float = 1.0, p: float = 2) -> torch.Tensor:
    """One AR perturbation as the paper generates it (Sandoval-Segura et al., arXiv 2206.03693; upstream
    `ARProcessPerturb3Channel.generate`, psandovalsegura/autoregressive-poisoning:autoregressive.py@bf350b0): row by
    row, column by column, in float64.

    Slow (a Python loop over every pixel: ~20 ms per CIFAR image here, ~0.1 s upstream): it exists to check the fast
    `generate_ar`, which must give the same δ from the same start signal up to float32 rounding. Upstream draws the
    start signal inside (torch.randn); here it is given, so that both generators can share it.
    b: the class's process (C, 3, 3), bottom-right tap 0. start: (C, H + crop, W + crop); only its first two rows
    and columns are read (the rest is overwritten before it is read). Returns δ (C, H, W) with ‖δ‖_p = eps,
    p = 2 or math.inf.
    """
    x = torch.as_tensor(start, dtype=torch.float64).clone()
    b = torch.as_tensor(b, dtype=torch.float64)
    _, sh, sw = x.shape
    for i in range(sh - 2):  # rows, top to bottom
        for j in range(sw - 2):  # columns, left to right
            # cross-correlation of the 3×3 window with b; b[:, 2, 2] = 0, so the pixel written is not read
            x[:, i + 2, j + 2] = (b * x[:, i:i + 3, j:j + 3]).sum((1, 2))
    delta = x[:, crop:, crop:]  # drop the top-left `crop` rows and columns: the start values and the burn-in
    norm = delta.norm() if p == 2 else delta.abs().max()
    return eps * delta / norm
