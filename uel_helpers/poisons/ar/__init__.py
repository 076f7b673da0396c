"""Autoregressive (AR) perturbations: Sandoval-Segura et al., "Autoregressive Perturbations for Data Poisoning",
NeurIPS 2022 (arXiv 2206.03693); upstream code psandovalsegura/autoregressive-poisoning@bf350b0.

Every class k owns a causal AR process b_k, one 3×3 filter per channel whose bottom-right tap is 0 and
whose other 8 taps sum to 1. A perturbation is made by drawing a fresh N(0,1) start signal for each
image, running the class's recursion over the pixels (rows top to bottom, columns left to right)

    x[c, i+2, j+2] = Σ_{u,v} b_k[c, u, v] · x[c, i+u, j+v]        (cross-correlation, b[c,2,2] = 0)

cropping the top-left `crop` rows and columns, and scaling to an exact Lp norm (L2 = 1 for 32×32×3 in
the paper, or L∞ = 8/255). Each class's "matching filter" (b_k with the bottom-right tap set to −1)
then answers ~0 on its own class's noise and strongly on every other class's: a shortcut a network
learns at once.

Registered attacks: `ar` (L2, ε = 1 for 3×32×32, the paper's recommended threat model) and `ar-linf`
(L∞, ε = 8/255). `generate_ar` is the batched generator, `generate_ar_reference` the paper's per-pixel loop it is
checked against, `find_ar_coefficients` the coefficient search of the paper, `matching_filter`/`filter_response`
the detector used by both and by the notebook. Diverging processes are refused by a scale-free guard (NaN/Inf,
growth per recursion step, own-filter response), so the paper's larger settings (96 px, 224 px) run with the
defaults.

Modules, each importing only those before it: `coefficients` (the released processes, validation, the matching
filter), `reference` (the per-pixel loop), `generate` (the fast generator and its guard), `finder` (the coefficient
search), `diagnostics` (the own/other filter-response check), `attack` (the registered attacks).

Licence of the shipped data: AR coefficients from psandovalsegura/autoregressive-poisoning, Sandoval-Segura et al.,
NeurIPS 2022. They are MIT-licensed, "Copyright (c) 2022 Pedro Sandoval"; the full notice ships beside them in
`uel_helpers/resources/AR_COEFFICIENTS_LICENSE.txt`. The CIFAR-100 set is the fixed one (process 9 replaced
upstream in commit 424cc2e; the old one diverges).
"""

from .attack import COEFFICIENT_CHOICES, DIAGNOSTIC_IMAGES, ar, ar_linf, default_l2_eps
from .coefficients import RELEASED_SETS, check_coefficients, filter_response, matching_filter, released_coefficients
from .diagnostics import OWN_OTHER_LIMIT, filter_responses, own_other_ratio
from .finder import FINDER_NORM_BOUND, default_required_response, find_ar_coefficients
from .generate import DRAW_BLOCK, GROWTH_SLACK, MAX_GROWTH, ARNoise, generate_ar, growth_per_step, recursion_steps
from .reference import generate_ar_reference

__all__ = [
    "RELEASED_SETS", "released_coefficients", "check_coefficients", "matching_filter", "filter_response",
    "generate_ar_reference",
    "MAX_GROWTH", "GROWTH_SLACK", "DRAW_BLOCK", "ARNoise", "recursion_steps", "growth_per_step", "generate_ar",
    "FINDER_NORM_BOUND", "default_required_response", "find_ar_coefficients",
    "OWN_OTHER_LIMIT", "filter_responses", "own_other_ratio",
    "COEFFICIENT_CHOICES", "DIAGNOSTIC_IMAGES", "default_l2_eps", "ar", "ar_linf",
]
