"""The orthogonal projection attack (Sandoval-Segura et al., "What Can We Learn from Unlearnable Datasets?",
NeurIPS 2023, arXiv 2305.19254, §4.4 and Algorithm 1; code `psandovalsegura/learn-from-unlearnable@605dea2`,
`orthogonal_projection_step_1.py`, `orthogonal_projection_step_2.py`, `utils_projection.py`).

A class-wise additive perturbation is what a linear classifier latches onto, so the directions that
classifier learns on the poisoned set span (nearly) the perturbations. Projecting those K directions out
of every training image removes the class-wise shortcut, along with a K-dimensional sliver of the images.

Step 1 (`fit_linear_weights`): multinomial logistic regression W (K x D), a bias-free `nn.Linear(D, K)` on the
raw flattened poisoned pixels (C, H, W order, [0,1], not normalised, not centred), cross-entropy, SGD lr 0.1
without momentum or weight decay, MultiStepLR x0.1 at 50% and 75% of the epochs (20), batch 1,024 in
dataset order (the reference's DataLoader does not shuffle; the last partial batch is used). That is
ceil(N / batch_size) x epochs SGD steps: 980 for CIFAR-10, but only 40 for the 1,347 digits training images,
too few for W to move far from its random initialisation; lower `batch_size` on small sets.

Step 2 (`projection_basis`, `project_out`): V = the rows of W normalised to unit L2 norm, Q = the reduced QR
of Vᵀ (D x K, orthonormal columns; normalising does not change the span), X_r = X - X Q Qᵀ. Only the
training set is projected; the test set is left clean, as in the reference.

Storage (design). X_r leaves [0, 1] (it is often negative), and it is NOT clipped. The projected set stores
an exact affine uint8 code: u8 = round((X_r - o) / s * 255) with o = min(X_r) and s = max(X_r) - min(X_r) over
the whole set, and records `meta["decode"] = {"scale": s, "offset": o}` so that float = u8 / 255 * s + o
(`uel_helpers.data.decode_images`; the trainer decodes training images this way). The quantisation step is
s / 255 instead of 1 / 255 (for projected CIFAR-10, X_r spans about [-2, 1.8], so a step of about 0.015);
the round trip is exact to half a step. The reference keeps X_r in float32.

Not reproduced here: the reference's training recipe on X_r (ResNet-18, 50 epochs, strong augmentation and
CutMix by default, which are defenses of their own); train on the projected set with any protocol.

Where it cannot help (our analysis, not a result of the paper): sample-wise perturbations are not confined to K
directions. `project` warns when the set's `meta["attack"]` names one of the package's sample-wise attacks
(`SAMPLEWISE_ATTACKS`).

W for plots: `project` does not return W (a purifier returns an ImageSet). `fit_linear_weights(train_set,
...)` with the same arguments gives the same W, and with `cache=True` (the default) both read it from the same
cache file, so a notebook calls `fit_linear_weights` to show the rows of W and `project` to purify, at the
cost of one fit.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..cache import cached
from ..checks import check_count, check_rate, check_seed
from ..data import DECODE_KEY, ImageSet, affine_code, decode_images, encode_images
from ..device import check_finite_loss, pick_device
from ..poisons.base import dataset_fingerprint
from .registry import register

CACHE_VERSION = 1
CHUNK = 4096  # images per chunk when projecting (bounds the float temporaries)

# The package's attacks whose perturbation is one per image (poisons/: em.py, tap.py, ar.py, random_noise.py).
# The poison registry does not record class-wise vs sample-wise, and a poisoned ImageSet only keeps the
# attack's name in meta["attack"], so the list is kept here; tests check that every name is a registered attack.
# LSP (one Gaussian-cluster sample per image, clustered by class) counts as class-wise here, as in the paper.
SAMPLEWISE_ATTACKS = frozenset({"em-samplewise", "tap", "ar", "ar-linf", "random-noise-samplewise"})


def _check_args(train_set: ImageSet, epochs, batch_size, lr, seed) -> tuple[int, int, float, int]:
    if not isinstance(train_set, ImageSet):
        raise TypeError(f"projection: expected an ImageSet of uint8 images (load_dataset(...)), "
                        f"got {type(train_set).__name__}")
    if len(train_set) == 0:
        raise ValueError("projection: the training set is empty")
    d, k = math.prod(train_set.shape), train_set.num_classes
    if k >= d:
        raise ValueError(f"projection: projecting out K={k} class directions from D={d}-dimensional images "
                         "would leave (almost) nothing; it needs fewer classes than pixels x channels")
    epochs = check_count(epochs, "epochs", "projection")
    batch_size = check_count(batch_size, "batch_size", "projection")
    seed = check_seed(seed, "seed", "projection")
    lr = check_rate(lr, "lr", "projection", lo=0.0, lo_open=True)  # the reference uses 0.1
    return epochs, batch_size, lr, seed


def milestones(epochs: int) -> tuple[int, int]:
    """The reference's MultiStepLR milestones: 50% and 75% of the epochs ((10, 15) for 20 epochs)."""
    return int(0.5 * epochs), int(0.75 * epochs)


def fit_linear_weights(
    train_set: ImageSet,
    *,
    epochs: int = 20,
    batch_size: int = 1024,
    lr: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
) -> torch.Tensor:
    """Step 1: the weights W (K x D, float32, CPU) of a bias-free logistic regression on the flattened pixels.

    The pixels are the set's floats (u8 / 255, or its `meta["decode"]` code), flattened in C, H, W order and
    neither normalised nor centred. SGD (lr `lr`, no momentum, no weight decay), x0.1 at 50% and 75% of
    `epochs`, batches of `batch_size` in dataset order. W's rows, reshaped to (C, H, W), are the paper's
    "recovered perturbations". Initialisation: PyTorch's default for nn.Linear, drawn from a generator seeded
    with `seed`. Cached by the data's fingerprint and the settings when `cache` is True.
    Raises NonFiniteLossError (device.py; a FloatingPointError) when an epoch's loss is NaN or infinite (lower
    `lr`), TypeError for a seed that is not an integer.
    """
    epochs, batch_size, lr, seed = _check_args(train_set, epochs, batch_size, lr, seed)
    dev = pick_device(device)
    key = {"kind": "projection-weights", "version": CACHE_VERSION, "data": dataset_fingerprint(train_set),
           "decode": train_set.meta.get(DECODE_KEY), "num_classes": train_set.num_classes, "epochs": epochs,
           "batch_size": batch_size, "lr": lr, "seed": seed, "device": dev.type}

    def build() -> torch.Tensor:
        return _fit(train_set, epochs, batch_size, lr, seed, dev, quiet)

    return cached("projection-weights", key, build, _save_weights, _load_weights, suffix=".npz", enabled=cache)


def _fit(train_set: ImageSet, epochs: int, batch_size: int, lr: float, seed: int, dev: torch.device,
         quiet: bool) -> torch.Tensor:
    n, d, k = len(train_set), math.prod(train_set.shape), train_set.num_classes
    model = nn.Linear(d, k, bias=False)
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(d)  # nn.Linear's default, kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(D), 1/sqrt(D))
    with torch.no_grad():
        model.weight.copy_(torch.empty(k, d).uniform_(-bound, bound, generator=gen))
    model = model.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones(epochs)), gamma=0.1)
    x_u8 = train_set.images.reshape(n, d).to(dev)  # uint8 on the device; decoded per batch
    y = train_set.labels.to(dev)
    for epoch in tqdm(range(epochs), desc="projection: logistic regression", disable=quiet or None, leave=False):
        total = torch.zeros((), device=dev)
        for start in range(0, n, batch_size):
            xb = decode_images(x_u8[start:start + batch_size], train_set.meta)
            loss = F.cross_entropy(model(xb), y[start:start + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        # NaN weights would span nothing: stop here rather than project out NaN directions (or cache them)
        check_finite_loss(total, "projection: logistic regression", where=f"in epoch {epoch + 1} (lr {lr:g})",
                          fix=f"lower lr (now {lr:g}; the reference uses 0.1), or check the images for NaN/inf")
        sched.step()
    return model.weight.detach().float().cpu().clone()


def _save_weights(w: torch.Tensor, path: Path) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, weights=w.numpy())


def _load_weights(path: Path) -> torch.Tensor:
    with np.load(path, allow_pickle=False) as z:
        return torch.from_numpy(z["weights"].copy())


def projection_basis(weights: torch.Tensor) -> torch.Tensor:
    """Step 2a: Q (D x K, float64, orthonormal columns) spanning the rows of `weights` (K x D).

    The rows are normalised to unit L2 norm first (as the reference; the span is the same), then Q is the
    reduced QR decomposition of Vᵀ. A zero row has no direction and is an error.
    """
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"projection_basis expects a (K, D) tensor of weights, got {type(weights).__name__}")
    if weights.ndim != 2:
        raise ValueError(f"projection_basis expects a (K, D) weight matrix, got shape {tuple(weights.shape)}")
    k, d = weights.shape
    if not 1 <= k < d:
        raise ValueError(f"projection_basis needs 1 <= K < D rows (K classes, D pixels), got K={k}, D={d}")
    w = weights.detach().double()
    if not torch.isfinite(w).all():
        raise ValueError("projection_basis: the weights contain NaN or Inf values")
    norms = w.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("projection_basis: a row of the weights is zero and has no direction to project out")
    q, _ = torch.linalg.qr((w / norms).T, mode="reduced")
    return q


def project_out(x_flat: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Step 2b: X_r = X - X Q Qᵀ for flattened images X (N x D) and an orthonormal basis Q (D x K).

    Computed in `x_flat`'s dtype (float) on its device; the result is orthogonal to every column of Q.
    """
    if not isinstance(x_flat, torch.Tensor) or not isinstance(q, torch.Tensor):
        raise TypeError("project_out expects two tensors: images (N, D) and a basis (D, K)")
    if x_flat.ndim != 2 or q.ndim != 2 or x_flat.shape[1] != q.shape[0]:
        raise ValueError(f"project_out expects images (N, D) and a basis (D, K) with the same D, got "
                         f"{tuple(x_flat.shape)} and {tuple(q.shape)}; flatten images with x.reshape(len(x), -1)")
    if not x_flat.dtype.is_floating_point:
        raise TypeError(f"project_out expects float images, got {x_flat.dtype}; decode uint8 ones first")
    q = q.to(device=x_flat.device, dtype=x_flat.dtype)
    return x_flat - (x_flat @ q) @ q.T


def warn_if_samplewise(train_set: ImageSet) -> bool:
    """Warn (UserWarning) when `train_set.meta["attack"]` is a sample-wise attack; True if it warned."""
    attack = train_set.meta.get("attack")
    if attack in SAMPLEWISE_ATTACKS:
        warnings.warn(
            f"projection: {train_set.name!r} was poisoned by {attack!r}, a sample-wise attack; its perturbations "
            "are not confined to K class directions, so the orthogonal projection is not expected to remove "
            "them (the attack of arXiv 2305.19254 §4.4 removes K class directions only). It runs anyway.",
            UserWarning, stacklevel=3)
        return True
    return False


@register("projection", "orthogonal projection attack (Sandoval-Segura et al., 'What Can We Learn from "
          "Unlearnable Datasets?', NeurIPS 2023): fit a bias-free logistic regression on the poisoned pixels, "
          "project its K weight directions out of every training image; for class-wise poisons (OPS, LSP, EM "
          "class-wise); stored with an affine uint8 code in meta['decode'], not clipped")
def project(
    train_set: ImageSet,
    *,
    epochs: int = 20,
    batch_size: int = 1024,
    lr: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    quiet: bool = False,
    cache: bool = True,
) -> ImageSet:
    """The orthogonal projection attack on a (poisoned) training set: X_r = X - X Q Qᵀ, stored as an affine code.

    W comes from `fit_linear_weights` with the same arguments (call it for the recovered perturbations);
    Q = `projection_basis(W)`. The result has the same labels and classes, name `<name>+projection`,
    `meta["decode"] = {"scale", "offset"}` (float = u8 / 255 * scale + offset; quantisation step scale / 255,
    error at most half a step) and `meta["projection"]` with the settings, the logistic regression's training
    accuracy and notes. Warns for a sample-wise poison (see `SAMPLEWISE_ATTACKS`). Nothing is clipped.
    """
    epochs, batch_size, lr, seed = _check_args(train_set, epochs, batch_size, lr, seed)
    warn_if_samplewise(train_set)
    weights = fit_linear_weights(train_set, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                                 quiet=quiet, cache=cache)
    dev = pick_device(device)
    q = projection_basis(weights).float().to(dev)
    w = weights.to(dev)
    n = len(train_set)
    flat = train_set.images.reshape(n, -1)

    def chunks():
        for start in range(0, n, CHUNK):
            x = decode_images(flat[start:start + CHUNK].to(dev), train_set.meta)
            yield start, x, project_out(x, q)

    # Pass 1: the range of X_r (for the code) and the linear model's training accuracy; pass 2: encode.
    lo, hi, correct = math.inf, -math.inf, 0
    for start, x, xr in chunks():
        lo, hi = min(lo, float(xr.min())), max(hi, float(xr.max()))
        pred = (x @ w.T).argmax(1).cpu()
        correct += int((pred == train_set.labels[start:start + len(x)]).sum())
    code = affine_code(lo, hi)
    out = torch.empty_like(train_set.images)
    for start, _, xr in chunks():
        out[start:start + len(xr)] = encode_images(xr, code).cpu().reshape(len(xr), *train_set.shape)
    step = code["scale"] / 255
    info = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "milestones": list(milestones(epochs)),
            "sgd_steps": epochs * math.ceil(n / batch_size),
            "rank": int(q.shape[1]), "linear_train_acc": correct / n, "range": [lo, hi], "quantisation_step": step,
            "notes": [f"X_r stored as an affine uint8 code (meta['decode']): float = u8/255*{code['scale']:.6g} + "
                      f"{code['offset']:.6g}; quantisation step {step:.6g} (vs 1/255 = {1 / 255:.6g} for plain "
                      "images), round-trip error at most half a step; not clipped",
                      "only the training set is projected; the test set stays clean (as the reference)"]}
    return train_set.with_images(out, name=f"{train_set.name}+projection",
                                 defenses=[*train_set.meta.get("defenses", []), "projection"],
                                 **{DECODE_KEY: code, "projection": info})


__all__ = ["SAMPLEWISE_ATTACKS", "fit_linear_weights", "milestones", "project", "project_out", "projection_basis",
           "warn_if_samplewise"]
