"""Error-minimising noise (EM): Huang et al., "Unlearnable Examples: Making Personal Data Unexploitable", ICLR 2021,
arXiv:2101.04898.

The poison solves the bi-level *min-min* problem

    min_θ  E_(x,y) [ min_{‖δ‖∞ ≤ ε}  CE(f_θ(x + δ), y) ]

by alternating a few SGD steps of a surrogate f_θ on the noisy data with a projected sign-gradient
descent on δ that *lowers* the surrogate's loss (the min-min objective of arXiv:2101.04898 §3; code
`HanxunH/Unlearnable-Examples@f347155`: `toolbox.py` `PerturbationTool.min_min_attack` and `perturbation.py`).
The noise becomes a shortcut that is easier to learn than the images, so a victim trained on the poisoned
set learns the noise and not the task.

Two registered variants:

- `em-samplewise`: one δ per image (N, C, H, W). Every round: `train_steps` (10) SGD steps on the next
  batches of a fixed-order loader, then 20 PGD steps (α = 0.8/255, ε = 8/255) on every batch in fixed
  order, then the stop check on the whole training set (`perturbation.py` `sample_wise_perturbation`, settings
  `scripts/cifar10/min-min-noise/samplewise-noise/exp_setting.sh`).
- `em-classwise`: one δ per class (K, C, H, W). Every round: 10 SGD steps on batches of the full,
  shuffled training set, then, on a stratified 20% subset (shuffled, drop_last), one PGD step per image
  followed by δ_c ← clip(mean of the updated noise of class c in the batch, ±ε); stop check on the
  subset (`perturbation.py` `universal_perturbation`, settings
  `scripts/cifar10/min-min-noise/classwise-noise/exp_setting.sh`).

Both stop when the surrogate (eval mode) classifies ≥ 1 − `stop_error` (99%) of the noisy training
images correctly. The original loops forever otherwise (`Unlearnable-Examples#24`); here `max_rounds`
caps the rounds, and hitting the cap records `info["converged"] = False` and warns (`NotConvergedWarning`, pointing at
the user's call); at the `smoke` profile's own cap, where it is expected, a one-line note is printed once instead.
A surrogate that diverges (NaN/inf training loss, or NaN/inf logits in the stop check, whose accuracy would
otherwise be read from argmax of NaN) stops the run with `device.NonFiniteLossError`.

Fixed behaviours and deviations from the original, all recorded in `Poison.info["notes"]`:

- The package **clamps** x + δ to [0, 1] in the surrogate's SGD steps and in the stop check. The
  original does not (`Unlearnable-Examples#13`, maintainer: "Good catch"); clamping is the fixed
  behaviour, a choice of this package. The PGD step itself clamps, as in the original.
- The noise is **signed** and applied as x̃ = quantise(clip(x + δ, 0, 1)) by `poison_from_delta`,
  never through the original loader's `clamp(0, 255)`-before-adding bug that deletes the negative half.
  The package rounds half up; the original loader truncates (`rounding="truncate"` reproduces it).
- Surrogate: the CIFAR ResNet-18 at the `paper` profile (SGD lr 0.1, momentum 0.9, wd 5e-4, grad-norm
  clip 5, constant lr, no augmentation, batch 512). At `quick` it is the smaller `fastnet-small`
  (`smallcnn` for images under 16 px), at `smoke` `smallcnn`: a deviation, because ResNet-18 through 20 PGD
  steps per image per round takes hours on a CPU.
- `quick` also uses APBench's cheaper noise step for the sample-wise variant (5 PGD steps of ε/5
  instead of 20 of 0.8/255; `lafeat/apbench:attack/em_poisons.py`), `smoke` fewer still, and both
  cap the rounds lower (see `PROFILE_SETTINGS`). Every value can be overridden by its parameter.
- Mixed precision (bf16/fp16 autocast) is used on CUDA when `amp=True`; the CPU computes in fp32.

Works for any channel count and image size (Fashion-MNIST 1×28×28, CIFAR 3×32×32). The same seed
gives the same poison bit for bit on the same device (tested on CPU; on CUDA cuDNN is put in
deterministic mode and per-class sums use a matmul instead of atomic adds).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_choice, check_count, check_rate, check_seed
from ..data import ImageSet, quantize
from ..device import autocast, check_finite_loss, deterministic_backend, make_generator, pick_device
from ..profiles import resolve_profile
from ..progress import progress, say_once, user_stacklevel
from .base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from .registry import register
from .surrogate import (
    SGDStepper,
    SurrogateNet,
    build_surrogate,
    check_surrogate_arch,
    default_surrogate_arch,
    diagnostic_indices,
    frozen,
    scaled_loss_for_grad,
    sgd,
    surrogate_metrics,
)


class NotConvergedWarning(RuntimeWarning):
    """An optimisation-based poison stopped at its round cap before meeting its stop condition."""


@dataclass(frozen=True)
class EMSettings:
    """Per-profile defaults of the values that make EM expensive."""

    batch_size: int
    samplewise_steps: int      # PGD steps per batch per round (sample-wise)
    samplewise_step_size: float
    classwise_steps: int       # PGD steps per image per round (class-wise)
    classwise_step_size: float
    max_rounds: int


PROFILE_SETTINGS: dict[str, EMSettings] = {
    # The paper's settings (exp_setting.sh). The original has no round cap; 10 rounds sufficed in
    # QuickStart.ipynb, so 50 only stops a run that will never converge.
    "paper": EMSettings(512, 20, 0.8 / 255, 1, 0.8 / 255, 50),
    # A laptop CPU: APBench's 5 steps of eps/5 for the sample-wise noise (see the module docstring).
    "quick": EMSettings(512, 5, 1.6 / 255, 1, 0.8 / 255, 20),
    # Seconds on tiny data: fewer steps, smaller batches, few rounds.
    "smoke": EMSettings(64, 5, 1.6 / 255, 1, 0.8 / 255, 5),
}

GRAD_CLIP = 5.0  # configs/cifar10/resnet18.yaml


@dataclass
class EMResult:
    """What an EM run produced: the float noise, the surrogate it was optimised against, diagnostics."""

    delta: torch.Tensor          # (N, C, H, W) sample-wise or (K, C, H, W) class-wise, in [-eps, eps]
    surrogate: SurrogateNet      # the final surrogate (eval mode), trained on the noisy data
    info: dict = field(default_factory=dict)


def min_min_step(model: SurrogateNet, x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor, *, steps: int,
                 step_size: float, eps: float, device: torch.device, amp: bool) -> torch.Tensor:
    """`PerturbationTool.min_min_attack`: `steps` signed-gradient steps that DESCEND CE(f(x + η), y).

    x' ← clip(x + η, 0, 1); repeat: x' ← x' − α·sign(∇CE); η ← clip(x' − x, ±ε); x' ← clip(x + η, 0, 1).
    Returns η (the difference before the last [0,1] clamp, as the original). `model` must be frozen.
    """
    xp = (x + eta).clamp(0.0, 1.0)
    for _ in range(steps):
        xp.requires_grad_(True)
        with autocast(device, amp):
            logits = model(xp)
        loss = scaled_loss_for_grad(F.cross_entropy(logits.float(), y), device, amp)
        (grad,) = torch.autograd.grad(loss, xp)
        xp = xp.detach() - step_size * grad.sign()
        eta = (xp - x).clamp(-eps, eps)
        xp = (x + eta).clamp(0.0, 1.0)
    return eta.detach()


@torch.no_grad()
def _noisy_accuracy(model: SurrogateNet, x_u8: torch.Tensor, y: torch.Tensor,
                    noise_of: Callable[[torch.Tensor], torch.Tensor], batch_size: int, device: torch.device,
                    amp: bool) -> float:
    """Accuracy (eval mode) on clip(x + δ, 0, 1), where `noise_of(idx)` gives δ for the indices; NaN when any
    logit is NaN or infinite (argmax would still pick a class, and the stop rule would read a made-up accuracy)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    n = len(x_u8)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size), device=device)
        x = (x_u8[idx].float().div_(255.0) + noise_of(idx)).clamp_(0.0, 1.0)
        with autocast(device, amp):
            logits = model(x)
        correct += (logits.argmax(1) == y[idx]).sum()
        bad |= ~torch.isfinite(logits).all()
    return float("nan") if bool(bad) else int(correct) / max(1, n)


def _stratified_indices(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """About `fraction` of each class (at least one image per present class), chosen with `seed`."""
    rng = np.random.default_rng(seed)
    lab = labels.numpy()
    keep: list[int] = []
    for k in np.unique(lab):
        idx = np.flatnonzero(lab == k)
        rng.shuffle(idx)
        keep.extend(idx[: max(1, int(round(fraction * len(idx))))].tolist())
    return torch.as_tensor(np.sort(np.asarray(keep, dtype=np.int64)))


def _resolve(value, default):
    return default if value is None else value


def em_noise(
    train_set: ImageSet,
    *,
    classwise: bool,
    eps: float = 8 / 255,
    steps: int | None = None,
    step_size: float | None = None,
    train_steps: int = 10,
    stop_error: float = 0.01,
    max_rounds: int | None = None,
    batch_size: int | None = None,
    subset_fraction: float = 0.2,
    surrogate: str | None = None,
    lr: float = 0.1,
    random_start: bool = False,
    amp: bool = True,
    profile: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    quiet: bool = False,
) -> EMResult:
    """Run the EM min-min optimisation and return the noise, the final surrogate and diagnostics.

    The registered attacks `em-samplewise` / `em-classwise` wrap this and build the poisoned ImageSet;
    call it directly when you want the surrogate (e.g. to show that the noise lowers its loss).
    Parameters left as None take the profile's value (`PROFILE_SETTINGS`, `default_surrogate_arch`).
    Raises NonFiniteLossError (device.py; a FloatingPointError and a RuntimeError) when the surrogate's training
    loss, or its logits in the stop check, become NaN or infinite: the stop rule never reads a NaN accuracy, and
    the run does not go on to `max_rounds` with a diverged surrogate (lower `lr`, or amp=False).
    TypeError for a seed that is not an integer.
    """
    attack = "em-classwise" if classwise else "em-samplewise"
    check_uint8_imageset(train_set, attack)
    seed = check_seed(seed, "seed", attack)
    eps = check_eps(eps, "linf", attack)
    profile = resolve_profile(profile)
    cfg = PROFILE_SETTINGS[profile]
    steps = check_count(_resolve(steps, cfg.classwise_steps if classwise else cfg.samplewise_steps), "steps", attack)
    step_size = check_rate(_resolve(step_size, cfg.classwise_step_size if classwise else cfg.samplewise_step_size),
                           "step_size (pixel units, 0.8/255 in the paper)", attack, lo=0.0, hi=1.0, lo_open=True)
    train_steps = check_count(train_steps, "train_steps", attack)
    stop_error = check_rate(stop_error, "stop_error", attack, lo=0.0, hi=1.0, hi_open=True)
    max_rounds = check_count(_resolve(max_rounds, cfg.max_rounds), "max_rounds", attack)
    batch_size = check_count(_resolve(batch_size, cfg.batch_size), "batch_size", attack)
    subset_fraction = check_rate(subset_fraction, "subset_fraction", attack, lo=0.0, hi=1.0, lo_open=True)
    arch = check_surrogate_arch(_resolve(surrogate, default_surrogate_arch(profile, train_set.image_size)), attack)
    lr = check_rate(lr, "lr", attack, lo=0.0, lo_open=True)
    if len(train_set) == 0:
        raise ValueError(f"{attack}: the training set is empty")
    dev = pick_device(device)

    t0 = time.perf_counter()
    with deterministic_backend(dev):
        gen = make_generator(seed, dev)            # noise init, on the device
        order_gen = torch.Generator().manual_seed(seed)  # data order, on the CPU
        model = build_surrogate(arch, train_set, seed=seed, device=dev, normalize=False)
        stepper = SGDStepper(sgd(model, lr, 0.9, 5e-4, nesterov=False), dev, amp, grad_clip=GRAD_CLIP)
        x_u8, y_all = train_set.images.to(dev), train_set.labels.to(dev)
        n, k = len(train_set), train_set.num_classes
        shape = (k if classwise else n, *train_set.shape)
        if random_start:
            delta = (torch.rand(shape, generator=gen, device=dev) * 2 - 1) * eps
        else:
            delta = torch.zeros(shape, device=dev)

        def noise_of(idx: torch.Tensor, sub: torch.Tensor | None = None) -> torch.Tensor:
            rows = idx if sub is None else sub[idx]
            return delta[y_all[rows]] if classwise else delta[rows]

        # The model-step batches: sample-wise, the next batches of a FIXED-order loader (persistent
        # across rounds); class-wise, the next batches of the full training set, SHUFFLED with drop_last.
        def model_batches() -> Iterator[torch.Tensor]:
            while True:
                if classwise:
                    perm = torch.randperm(n, generator=order_gen)
                    m = max(1, n // batch_size) if n >= batch_size else 1
                    for i in range(m):
                        yield perm[i * batch_size:(i + 1) * batch_size].to(dev)
                else:
                    for start in range(0, n, batch_size):
                        yield torch.arange(start, min(n, start + batch_size), device=dev)

        batches = model_batches()
        subset = _stratified_indices(train_set.labels, subset_fraction, seed).to(dev) if classwise else None
        onehot_eye = torch.eye(k, device=dev)
        history: list[float] = []
        converged = False
        bar = progress(range(max_rounds), desc=attack, unit="round", quiet=quiet)
        round_seconds: list[float] = []
        for _round in bar:
            t_round = time.perf_counter()
            # 1. surrogate steps on clip(x + δ, 0, 1)
            model.train()
            for _ in range(train_steps):
                idx = next(batches)
                x = (x_u8[idx].float().div_(255.0) + noise_of(idx)).clamp_(0.0, 1.0)
                with autocast(dev, amp):
                    logits = model(x)
                stepper.step(F.cross_entropy(logits.float(), y_all[idx]))
            stepper.check_finite(f"{attack} surrogate", f"in round {_round + 1} (lr {lr:g})",
                                 f"lower its learning rate (lr={lr:g}), or turn mixed precision off (amp=False)")
            # 2. noise steps, surrogate frozen
            with frozen(model):
                if classwise:
                    assert subset is not None
                    m = len(subset)
                    perm = subset[torch.randperm(m, generator=order_gen).to(dev)]
                    nb = max(1, m // batch_size) if m >= batch_size else 1
                    for i in range(nb):
                        idx = perm[i * batch_size:(i + 1) * batch_size]
                        x, y = x_u8[idx].float().div_(255.0), y_all[idx]
                        eta = min_min_step(model, x, y, delta[y], steps=steps, step_size=step_size, eps=eps,
                                           device=dev, amp=amp)
                        onehot = onehot_eye[y]                                   # (b, K)
                        counts = onehot.sum(0)                                   # (K,)
                        sums = (onehot.T @ eta.flatten(1)).view(k, *train_set.shape)
                        present = counts > 0
                        means = sums[present] / counts[present].view(-1, 1, 1, 1)
                        delta[present] = means.clamp(-eps, eps)
                else:
                    inner = progress(range(0, n, batch_size), desc="noise", leave=False, quiet=quiet)
                    for start in inner:
                        idx = torch.arange(start, min(n, start + batch_size), device=dev)
                        x = x_u8[idx].float().div_(255.0)
                        delta[idx] = min_min_step(model, x, y_all[idx], delta[idx], steps=steps,
                                                  step_size=step_size, eps=eps, device=dev, amp=amp)
            # 3. stop check: accuracy of the surrogate on the noisy (clamped) training set / subset
            if classwise:
                assert subset is not None
                acc = _noisy_accuracy(model, x_u8[subset], y_all[subset], lambda i: noise_of(i, subset),
                                      1024, dev, amp)
            else:
                acc = _noisy_accuracy(model, x_u8, y_all, noise_of, 1024, dev, amp)
            # a NaN accuracy (NaN/inf logits) must neither meet the stop rule nor run on silently to max_rounds
            check_finite_loss(acc, f"{attack} surrogate", "stop-check accuracy (its logits on the noisy images)",
                              f"in round {_round + 1}: NaN or infinite logits in eval mode",
                              f"lower its learning rate (lr={lr:g}), or turn mixed precision off (amp=False)")
            history.append(acc)
            round_seconds.append(time.perf_counter() - t_round)
            bar.set_postfix(acc=f"{acc:.4f}")
            if acc >= 1.0 - stop_error:
                converged = True
                break
        bar.close()
        model.eval()

        # Diagnostics on (up to) 2,048 images: the surrogate's loss on clean vs. poisoned (stored) images.
        diag = diagnostic_indices(n).to(dev)
        clean = x_u8[diag].float() / 255.0
        poisoned = quantize((clean + noise_of(diag)).clamp(0.0, 1.0)).float() / 255.0
        loss_clean, acc_clean = surrogate_metrics(model, clean, y_all[diag])
        loss_poisoned, acc_poisoned = surrogate_metrics(model, poisoned, y_all[diag])

    elapsed = time.perf_counter() - t0
    notes = [
        "x+delta is clamped to [0,1] in the surrogate steps and the stop check (fixed behaviour; "
        "the original does not clamp, Unlearnable-Examples#13)",
        "signed noise applied as quantise(clip(x+delta)) (never the clamp(0,255)-before-adding bug)",
    ]
    if arch != "resnet18":
        notes.append(f"surrogate {arch} instead of the paper's ResNet-18 ({profile} profile)")
    paper = PROFILE_SETTINGS["paper"]
    paper_steps = paper.classwise_steps if classwise else paper.samplewise_steps
    paper_alpha = paper.classwise_step_size if classwise else paper.samplewise_step_size
    if steps != paper_steps or abs(step_size - paper_alpha) > 1e-12:
        notes.append(f"{steps} PGD steps of {step_size * 255:.3g}/255 per round instead of the paper's "
                     f"{paper_steps} of {paper_alpha * 255:.3g}/255")
    if batch_size != paper.batch_size:
        notes.append(f"batch size {batch_size} instead of 512")
    info = {
        "profile": profile, "surrogate": arch, "rounds": len(history), "converged": converged,
        "max_rounds": max_rounds, "stop_error": stop_error, "train_acc_per_round": history,
        "final_train_acc": history[-1], "steps": steps, "step_size": step_size, "train_steps": train_steps,
        "batch_size": batch_size, "seconds": elapsed, "round_seconds": round_seconds, "device": str(dev),
        "surrogate_loss_clean": loss_clean, "surrogate_loss_poisoned": loss_poisoned,
        "surrogate_acc_clean": acc_clean, "surrogate_acc_poisoned": acc_poisoned,
        "diagnostic_images": len(diag), "notes": notes,
    }
    if classwise:
        info["subset_size"] = int(len(subset))  # type: ignore[arg-type]
    if not converged and profile == "smoke" and max_rounds == cfg.max_rounds:
        # expected: the smoke profile caps the rounds to finish in seconds; said once, in plain words
        if not quiet:
            say_once(("em-smoke-cap", attack),
                     f"note: {attack} stopped after the smoke profile's {max_rounds} rounds (surrogate accuracy on the "
                     f"noisy data {history[-1]:.2f}, the paper runs to {1 - stop_error:.2f}), as smoke runs do: its "
                     "noise is weaker than the paper's. Use profile='quick' or 'paper' for a real poison.")
    elif not converged:
        warnings.warn(
            f"{attack}: the surrogate reached {history[-1]:.4f} accuracy on the noisy training data after "
            f"max_rounds={max_rounds} rounds, short of the stop condition >= {1 - stop_error:.4f}; the noise "
            "may be weaker than the paper's. Raise max_rounds (or stop_error) to go on.",
            NotConvergedWarning, stacklevel=user_stacklevel(),  # the user's call, however deep the registry goes
        )
    return EMResult(delta.detach().float().cpu(), model, info)


@register("em-samplewise", "Error-minimising noise, one perturbation per image (Huang et al., ICLR 2021)",
          "Linf 8/255")
def em_samplewise(
    train_set: ImageSet,
    *,
    eps: float = 8 / 255,
    steps: int | None = None,
    step_size: float | None = None,
    train_steps: int = 10,
    stop_error: float = 0.01,
    max_rounds: int | None = None,
    batch_size: int | None = None,
    surrogate: str | None = None,
    lr: float = 0.1,
    random_start: bool = False,
    rounding: str = "round",
    amp: bool = True,
    profile: str | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """Sample-wise error-minimising noise: δ of shape (N, C, H, W), ‖δ‖∞ ≤ eps (the reference's
    `sample_wise_perturbation`, `HanxunH/Unlearnable-Examples:perturbation.py@f347155`).

    Paper settings (profile `paper`): ResNet-18 surrogate, batch 512, 10 surrogate steps and then
    20 PGD steps of 0.8/255 over every batch in fixed order per round, until ≥ 99% accuracy on the
    noisy training set. `quick`/`smoke` use a smaller surrogate and 5 steps of eps/5 (deviations; see
    the module docstring). Not converging within `max_rounds` warns and sets `info["converged"]`; a surrogate
    whose loss or logits become NaN/inf raises NonFiniteLossError (see `em_noise`).
    `rounding="truncate"` quantises like the original EM loader (the package rounds half up).
    """
    attack = "em-samplewise"
    check_choice(rounding, "rounding", ("round", "truncate"), attack)
    res = em_noise(train_set, classwise=False, eps=eps, steps=steps, step_size=step_size, train_steps=train_steps,
                   stop_error=stop_error, max_rounds=max_rounds, batch_size=batch_size, surrogate=surrogate, lr=lr,
                   random_start=random_start, amp=amp, profile=profile, seed=seed, device=device, quiet=quiet)
    params = {"eps": eps, "steps": res.info["steps"], "step_size": res.info["step_size"], "train_steps": train_steps,
              "stop_error": stop_error, "max_rounds": res.info["max_rounds"], "batch_size": res.info["batch_size"],
              "surrogate": res.info["surrogate"], "lr": lr, "random_start": random_start, "amp": amp,
              "profile": res.info["profile"]}
    return poison_from_delta(attack, train_set, res.delta, params, seed, rounding, res.info, classwise=False)


@register("em-classwise", "Error-minimising noise, one perturbation per class (Huang et al., ICLR 2021)",
          "Linf 8/255")
def em_classwise(
    train_set: ImageSet,
    *,
    eps: float = 8 / 255,
    steps: int | None = None,
    step_size: float | None = None,
    train_steps: int = 10,
    stop_error: float = 0.01,
    max_rounds: int | None = None,
    batch_size: int | None = None,
    subset_fraction: float = 0.2,
    surrogate: str | None = None,
    lr: float = 0.1,
    random_start: bool = False,
    rounding: str = "round",
    amp: bool = True,
    profile: str | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """Class-wise error-minimising noise: δ of shape (K, C, H, W), ‖δ‖∞ ≤ eps, indexed by label (the
    reference's `universal_perturbation`, `HanxunH/Unlearnable-Examples:perturbation.py@f347155`).

    Per round: 10 surrogate steps on shuffled batches of the full set; then, over a stratified
    `subset_fraction` (20%) of it, one PGD step of 0.8/255 per image and δ_c ← clip(mean over the
    batch's images of class c, ±eps); stop at ≥ 99% accuracy on the noisy subset. Smaller surrogate
    at `quick`/`smoke` (deviation). `rounding="truncate"` quantises like the original loader. A surrogate whose
    loss or logits become NaN/inf raises NonFiniteLossError (see `em_noise`).
    """
    attack = "em-classwise"
    check_choice(rounding, "rounding", ("round", "truncate"), attack)
    res = em_noise(train_set, classwise=True, eps=eps, steps=steps, step_size=step_size, train_steps=train_steps,
                   stop_error=stop_error, max_rounds=max_rounds, batch_size=batch_size,
                   subset_fraction=subset_fraction, surrogate=surrogate, lr=lr, random_start=random_start, amp=amp,
                   profile=profile, seed=seed, device=device, quiet=quiet)
    params = {"eps": eps, "steps": res.info["steps"], "step_size": res.info["step_size"], "train_steps": train_steps,
              "stop_error": stop_error, "max_rounds": res.info["max_rounds"], "batch_size": res.info["batch_size"],
              "subset_fraction": subset_fraction, "surrogate": res.info["surrogate"], "lr": lr,
              "random_start": random_start, "amp": amp, "profile": res.info["profile"]}
    return poison_from_delta(attack, train_set, res.delta, params, seed, rounding, res.info, classwise=True)
