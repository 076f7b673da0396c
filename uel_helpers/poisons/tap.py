"""Error-maximising adversarial poisons (TAP): Fowl et al., "Adversarial Examples Make Strong Poisons", NeurIPS 2021.

Every training image gets an L∞ (8/255) adversarial perturbation against a surrogate trained on the
CLEAN data; a victim trained on the perturbed set learns features that do not transfer to clean
images (arXiv 2106.10807; code `psandovalsegura/adversarial_poisons@a1d58d8`, a fork of
`lhfowl/adversarial_poisons` based on the "Witches' Brew" code; file paths below are in that repository).

Recipes (`recipe=`), each minimised over δ by signed-gradient descent:

- `"targeted"` (default; the repository's "most powerful attack"): CE(f(aug(x + δ)), π(y)) with the
  label map π(y) = (y + 1) mod K, i.e. every image is pushed towards the next class.
- `"untargeted"` (APBench's default): −CE(f(aug(x + δ)), y), i.e. the loss of the true label goes up.

The surrogate (`village/clients/models.py`, `village/clients/optimization_strategy.py`) is trained from
scratch on the clean set: at the `paper` profile the CIFAR ResNet-18, 40 epochs, SGD lr 0.1 Nesterov
(momentum 0.9), weight decay 5e-4, MultiStep [14, 25, 35] ×0.1, batch 128, inputs normalised with the
training set's per-channel mean/std and augmented by the differentiable `RandomTransform`
(`village/materials/diff_data_augmentation.py`). At `quick` it is `fastnet-small` (`smallcnn` under 16 px),
at `smoke` `smallcnn`, for fewer epochs: a deviation, stated in `info["notes"]`.

The forging loop (`village/shop/forgemaster_base.py`: `_forge`, `_run_trial`, `_pgd_step`): surrogate
frozen in eval mode; for each of `restarts` (8) restarts, δ starts at ε·N(0, 1) clipped to ±ε; then
`attack_iters` (250) passes over the data in fixed order in batches of 512, each batch taking one step
δ ← δ − τ·sign(∇δ L) on the recipe's objective L (with a fresh random augmentation), then δ is clipped to
±ε and so that x + δ stays in [0, 1]. The restart whose LAST pass had the smallest finite mean batch loss
is kept (a NaN/inf restart never wins; all of them non-finite is a `device.NonFiniteLossError`). Finally
x̃ = quantise(clip(x + δ)) (round half up, like TAP's PNG export, `village/materials/furnace.py`
`_torch_to_PIL`; `rounding="truncate"` is available).

**Pixel space vs. the original's normalised space (exact equivalence).** The original optimises
δ_n in normalised units z = (x − m)/s (per-channel mean m, std s) with the bound ε_n = ε/s and the
step τ_n = 0.05·ε/s, i.e. both scaled by 1/s per channel. Here δ lives in pixel units, δ = s·δ_n:

- the bound |δ_n| ≤ ε/s becomes |δ| ≤ ε in every channel;
- ∂L/∂δ_n = s·∂L/∂δ has the same sign (s > 0), so the step δ_n −= (0.05 ε/s)·sign(g_n) is
  δ −= 0.05·ε·sign(g): the pixel step is τ·ε = 0.4/255 for ε = 8/255, the same in every channel;
- the init N(0, 1)·ε_n becomes N(0, 1)·ε; the range clip [−m/s, (1 − m)/s] − x_n becomes [0, 1] − x;
- the augmentation is applied AFTER normalisation (`SurrogateNet`), so its zero padding is the
  dataset's mean colour, exactly as in the original.

So the iterates are the same up to floating-point rounding.

`quick` and `smoke` use far fewer iterations and restarts than 250 × 8 (and, to still travel a few ε,
a larger τ); `info["notes"]` says so. The same seed gives the same poison bit for bit on one device
(tested on CPU; on CUDA the augmentation uses an equivalent separable matmul instead of
`grid_sample`, whose backward adds atomically, and cuDNN is put in deterministic mode).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import check_choice, check_count, check_rate, check_seed
from ..data import ImageSet, quantize
from ..device import NonFiniteLossError, autocast, deterministic_backend, make_generator, pick_device
from ..profiles import resolve_profile
from .base import Poison, check_eps, check_uint8_imageset, poison_from_delta
from .registry import register
from .surrogate import (
    SurrogateNet,
    build_surrogate,
    check_surrogate_arch,
    default_surrogate_arch,
    diagnostic_indices,
    frozen,
    multistep_milestones,
    scaled_loss_for_grad,
    surrogate_metrics,
    train_surrogate,
)

RECIPES = ("targeted", "untargeted")


class RandomTransform:
    """TAP's differentiable augmentation (`village/materials/diff_data_augmentation.py@a1d58d8`).

    Per image, r ~ U(0,1)^4: a continuous shift of (r0 − 0.5)·2·d in x and (r1 − 0.5)·2·d in y, with
    d = linspace(0, 1, S)[shift] = shift/(S − 1) in [−1, 1] grid units, i.e. at most ±shift/2 pixels
    (±4 for shift=8); then a horizontal flip of the grid when r2 > 0.5 (flip after shift, as the
    original). Sampled bilinearly with `align_corners=True` and zero padding, via
    `affine_grid` + `grid_sample`. `impl="separable"` computes the same bilinear translation as two
    small matrix products (no atomic adds in its backward, hence deterministic on CUDA); `"auto"` uses
    `grid_sample` on the CPU and the separable form elsewhere.
    """

    def __init__(self, shift: int = 8, flip: bool = True, impl: str = "auto") -> None:
        shift = check_count(shift, "shift", "RandomTransform", lo=0)
        impl = check_choice(impl, "impl", ("auto", "grid_sample", "separable"), "RandomTransform")
        self.shift, self.flip, self.impl = shift, flip, impl

    def draw(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The random numbers r (n, 4) for a batch of n images."""
        return torch.rand(n, 4, generator=gen, device=gen.device)

    def theta(self, r: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The (n, 2, 3) affine matrices: x_src = s·(x + tx), y_src = y + ty, s = −1 when flipped."""
        h, w = size
        dx = self.shift / (w - 1) if w > 1 else 0.0
        dy = self.shift / (h - 1) if h > 1 else 0.0
        tx = (r[:, 0] - 0.5) * 2 * dx
        ty = (r[:, 1] - 0.5) * 2 * dy
        s = torch.where(r[:, 2] > 0.5, -1.0, 1.0) if self.flip else torch.ones_like(tx)
        zero = torch.zeros_like(tx)
        return torch.stack([torch.stack([s, zero, s * tx], 1), torch.stack([zero, torch.ones_like(tx), ty], 1)], 1)

    def apply(self, x: torch.Tensor, r: torch.Tensor, impl: str | None = None) -> torch.Tensor:
        """Transform the batch `x` with the random numbers `r`."""
        impl = impl or self.impl
        if impl == "auto":
            impl = "grid_sample" if x.device.type == "cpu" else "separable"
        theta = self.theta(r.to(device=x.device, dtype=torch.float32), (x.shape[2], x.shape[3]))
        if impl == "grid_sample":
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
            return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return _separable_affine(x, theta)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.draw(len(x), gen))


def _tent_matrix(coords: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size_out, size) bilinear weights max(0, 1 − |u − j|) for source pixel coordinates u (n, size_out)."""
    j = torch.arange(size, device=coords.device, dtype=coords.dtype)
    return (1.0 - (coords[:, :, None] - j).abs()).clamp_min(0.0)


def _separable_affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """grid_sample(x, affine_grid(theta), bilinear, zeros, align_corners=True) for shift/flip-only thetas.

    For θ = [[a, 0, b], [0, 1, c]] the sampling is separable: output column j reads source column
    u_j = ((a·x_j + b) + 1)/2·(W − 1), row i reads v_i = ((y_i + c) + 1)/2·(H − 1), with x, y the
    align_corners grid linspace(−1, 1, ·). Bilinear sampling with zero padding is then
    out = M_y · x · M_xᵀ with tent weights; out-of-range neighbours simply have no column.
    """
    _, _, h, w = x.shape
    xs = torch.linspace(-1.0, 1.0, w, device=x.device)
    ys = torch.linspace(-1.0, 1.0, h, device=x.device)
    u = (theta[:, 0, 0:1] * xs + theta[:, 0, 2:3] + 1.0) * 0.5 * (w - 1)
    v = (ys + theta[:, 1, 2:3] + 1.0) * 0.5 * (h - 1)
    mx = _tent_matrix(u, w).to(x.dtype)  # (n, W_out, W_src)
    my = _tent_matrix(v, h).to(x.dtype)  # (n, H_out, H_src)
    out = torch.matmul(x, mx.transpose(1, 2)[:, None])
    return torch.matmul(my[:, None], out)


@dataclass(frozen=True)
class TAPSettings:
    """Per-profile defaults of the values that make TAP expensive."""

    attack_iters: int
    restarts: int
    tau: float            # PGD step as a fraction of eps (0.05 in the paper)
    batch_size: int       # the poison batch ("pbatch")
    surrogate_epochs: int
    surrogate_batch_size: int


PROFILE_SETTINGS: dict[str, TAPSettings] = {
    "paper": TAPSettings(attack_iters=250, restarts=8, tau=0.05, batch_size=512, surrogate_epochs=40,
                         surrogate_batch_size=128),
    # A laptop CPU (~3 min for 10,000 Fashion-MNIST images on 2 cores): fastnet-small trained 8 epochs,
    # then 20 passes x 1 restart with steps of 0.1·eps (2 eps of travel). With 4 epochs and 10 passes of
    # 0.2·eps the quick judge only lost 13 points instead of 30 (see the module docstring).
    "quick": TAPSettings(attack_iters=20, restarts=1, tau=0.1, batch_size=512, surrogate_epochs=8,
                         surrogate_batch_size=128),
    # Seconds on tiny data (small batches so that a few hundred images still give the surrogate steps).
    "smoke": TAPSettings(attack_iters=5, restarts=2, tau=0.25, batch_size=64, surrogate_epochs=8,
                         surrogate_batch_size=32),
}


@dataclass
class TAPResult:
    """What a TAP run produced: the float noise (N, C, H, W), the clean-trained surrogate, diagnostics."""

    delta: torch.Tensor
    surrogate: SurrogateNet
    info: dict = field(default_factory=dict)


def label_map(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The targeted recipe's permutation π(y) = (y + 1) mod K (`_label_map` in `forgemaster_targeted.py`)."""
    return (labels + 1) % num_classes


def tap_objective(logits: torch.Tensor, labels: torch.Tensor, recipe: str) -> torch.Tensor:
    """The loss the forging loop MINIMISES: CE to π(y) (targeted) or −CE to y (untargeted)."""
    if recipe == "targeted":
        return F.cross_entropy(logits, label_map(labels, logits.shape[1]))
    return -F.cross_entropy(logits, labels)


@torch.no_grad()
def pgd_update(delta: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, step: float, eps: float) -> torch.Tensor:
    """`_pgd_step` in pixel units: δ − step·sign(g), clipped to ±eps, then so that x + δ stays in [0, 1].

    With step = tau·eps this equals the original's normalised-space step (see the module docstring).
    """
    d = (delta - step * grad.sign()).clamp_(-eps, eps)
    return torch.maximum(torch.minimum(d, 1.0 - x), -x)


def _resolve(value, default):
    return default if value is None else value


def train_tap_surrogate(
    train_set: ImageSet,
    *,
    surrogate: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float = 0.1,
    augment: bool = True,
    amp: bool = True,
    profile: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    quiet: bool = False,
) -> tuple[SurrogateNet, dict]:
    """TAP's surrogate (`village/clients/` of the reference), trained on the CLEAN set: returns it (eval mode,
    takes [0,1] pixels) and its info.

    SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4, MultiStep at epochs//2.667, //1.6, //1.142
    (×0.1), inputs normalised by the set's channel statistics and augmented by `RandomTransform`.
    Architecture, epochs and batch size default to the profile's (`PROFILE_SETTINGS`).
    Raises NonFiniteLossError (device.py) when the surrogate's training loss becomes NaN or infinite (lower
    surrogate_lr, or amp=False), TypeError for a seed that is not an integer.
    """
    attack = "tap"
    check_uint8_imageset(train_set, attack)
    seed = check_seed(seed, "seed", attack)
    if len(train_set) == 0:
        raise ValueError(f"{attack}: the training set is empty")
    profile = resolve_profile(profile)
    cfg = PROFILE_SETTINGS[profile]
    epochs = check_count(_resolve(epochs, cfg.surrogate_epochs), "surrogate_epochs", attack)
    batch_size = check_count(_resolve(batch_size, cfg.surrogate_batch_size), "surrogate_batch_size", attack)
    lr = check_rate(lr, "surrogate_lr", attack, lo=0.0, lo_open=True)
    arch = check_surrogate_arch(_resolve(surrogate, default_surrogate_arch(profile, train_set.image_size)), attack)
    dev = pick_device(device)
    t0 = time.perf_counter()
    with deterministic_backend(dev):
        gen = make_generator(seed, dev)                        # augmentation, on the device
        order_gen = torch.Generator().manual_seed(seed)        # data order, on the CPU
        model = build_surrogate(arch, train_set, seed=seed, device=dev, normalize=True)
        milestones = multistep_milestones(epochs)
        accs = train_surrogate(
            model, train_set.images.to(dev), train_set.labels.to(dev), epochs=epochs, batch_size=batch_size, lr=lr,
            gen=gen, order_gen=order_gen, momentum=0.9, nesterov=True, weight_decay=5e-4, milestones=milestones,
            augment=RandomTransform(shift=8, flip=True) if augment else None, amp=amp, quiet=quiet,
            desc="tap surrogate")
    info = {"surrogate": arch, "surrogate_epochs": epochs, "surrogate_batch_size": batch_size, "surrogate_lr": lr,
            "surrogate_milestones": list(milestones), "surrogate_train_acc_per_epoch": accs,
            "seconds_surrogate": time.perf_counter() - t0}
    return model, info


def tap_noise(
    train_set: ImageSet,
    *,
    recipe: str = "targeted",
    eps: float = 8 / 255,
    attack_iters: int | None = None,
    restarts: int | None = None,
    tau: float | None = None,
    batch_size: int | None = None,
    augment: bool = True,
    surrogate: str | None = None,
    surrogate_epochs: int | None = None,
    surrogate_batch_size: int | None = None,
    surrogate_lr: float = 0.1,
    surrogate_model: SurrogateNet | None = None,
    amp: bool = True,
    profile: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    quiet: bool = False,
) -> TAPResult:
    """Train the clean surrogate (or take `surrogate_model`), forge δ against it, return δ, surrogate, diagnostics.

    The registered attack `tap` wraps this and builds the poisoned ImageSet; call it directly when you
    want the surrogate, or pass one from `train_tap_surrogate` to forge several recipes against it.
    Parameters left as None take the profile's value (`PROFILE_SETTINGS`).
    The restart with the smallest FINITE last-pass loss is kept: a restart whose loss is NaN or infinite (the
    surrogate's logits were not finite; δ does not move there, since sign(NaN) = 0) never wins, and when no
    restart has a finite loss this raises NonFiniteLossError (a RuntimeError) saying what to try.
    """
    attack = "tap"
    check_uint8_imageset(train_set, attack)
    seed = check_seed(seed, "seed", attack)
    if recipe not in RECIPES:
        raise ValueError(f"{attack}: unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    eps = check_eps(eps, "linf", attack)
    profile = resolve_profile(profile)
    cfg = PROFILE_SETTINGS[profile]
    attack_iters = check_count(_resolve(attack_iters, cfg.attack_iters), "attack_iters", attack)
    restarts = check_count(_resolve(restarts, cfg.restarts), "restarts", attack)
    tau = check_rate(_resolve(tau, cfg.tau), "tau", attack, lo=0.0, hi=1.0, lo_open=True)
    batch_size = check_count(_resolve(batch_size, cfg.batch_size), "batch_size", attack)
    if surrogate is not None:
        check_surrogate_arch(surrogate, attack)
    dev = pick_device(device)

    t0 = time.perf_counter()
    if surrogate_model is None:
        model, sur_info = train_tap_surrogate(
            train_set, surrogate=surrogate, epochs=surrogate_epochs, batch_size=surrogate_batch_size, lr=surrogate_lr,
            augment=augment, amp=amp, profile=profile, seed=seed, device=dev, quiet=quiet)
    else:
        model = surrogate_model.to(dev).eval()
        sur_info = {"surrogate": "given", "surrogate_epochs": 0, "surrogate_batch_size": 0, "seconds_surrogate": 0.0}
    arch, surrogate_epochs = sur_info["surrogate"], sur_info["surrogate_epochs"]
    surrogate_batch_size = sur_info["surrogate_batch_size"]
    with deterministic_backend(dev):
        gen = make_generator(seed, dev)                        # initialisation and augmentation, on the device
        transform = RandomTransform(shift=8, flip=True)
        x_u8, y_all = train_set.images.to(dev), train_set.labels.to(dev)
        n = len(train_set)
        step = tau * eps
        starts = list(range(0, n, batch_size))
        best_delta: torch.Tensor | None = None
        best_restart = -1
        scores: list[float] = []
        aug = (lambda z: transform(z, gen)) if augment else None
        bar = tqdm(total=restarts * attack_iters, desc=f"tap {recipe}", disable=quiet or None)
        with frozen(model):
            for _restart in range(restarts):
                delta = (torch.randn(n, *train_set.shape, generator=gen, device=dev) * eps).clamp_(-eps, eps)
                last = float("nan")
                for _it in range(attack_iters):
                    total = torch.zeros((), device=dev)
                    for start in starts:
                        sl = slice(start, min(n, start + batch_size))
                        x, y = x_u8[sl].float().div_(255.0), y_all[sl]
                        d = delta[sl].clone().requires_grad_(True)
                        with autocast(dev, amp):
                            logits = model(x + d, aug)
                        loss = tap_objective(logits.float(), y, recipe)
                        (grad,) = torch.autograd.grad(scaled_loss_for_grad(loss, dev, amp), d)
                        delta[sl] = pgd_update(d.detach(), grad, x, step, eps)
                        total += loss.detach()
                    last = float(total) / len(starts)
                    bar.update(1)
                    bar.set_postfix(restart=_restart + 1, loss=f"{last:.4f}")
                scores.append(last)
                # keep the smallest FINITE score: NaN compares False with everything, so a NaN restart kept first
                # would never be replaced (and its δ never moved: sign(NaN) = 0)
                if math.isfinite(last) and (best_delta is None or last < scores[best_restart]):
                    best_delta, best_restart = delta, _restart
        bar.close()
        if best_delta is None:
            raise NonFiniteLossError(
                f"{attack}: the surrogate's loss was not finite in every restart (last-pass mean losses {scores} "
                f"over {restarts} restart(s)): the surrogate gives NaN or infinite logits on x + δ, so no restart "
                "moved δ. Try: a surrogate whose weights are finite (retrain it with a lower surrogate_lr, or pass "
                "another surrogate_model), amp=False (float16 logits can overflow), and check the images")

        # Diagnostics on (up to) 2,048 images, without augmentation: clean vs. poisoned (stored) images.
        diag = diagnostic_indices(n).to(dev)
        clean = x_u8[diag].float() / 255.0
        poisoned = quantize((clean + best_delta[diag]).clamp(0.0, 1.0)).float() / 255.0
        y_diag = y_all[diag]
        loss_clean, acc_clean = surrogate_metrics(model, clean, y_diag)
        loss_poisoned, acc_poisoned = surrogate_metrics(model, poisoned, y_diag)
        target = label_map(y_diag, train_set.num_classes)
        _, hit_clean = surrogate_metrics(model, clean, target)
        _, hit_poisoned = surrogate_metrics(model, poisoned, target)

    elapsed = time.perf_counter() - t0
    paper = PROFILE_SETTINGS["paper"]
    notes = ["delta optimised in pixel units with bound eps and step tau*eps in every channel: exactly the "
             "original's normalised-space PGD (bound eps/std, step tau*eps/std); augmentation applied after "
             "normalisation as in the original"]
    if (attack_iters, restarts) != (paper.attack_iters, paper.restarts):
        notes.append(f"{attack_iters} iterations x {restarts} restart(s) instead of the paper's "
                     f"{paper.attack_iters} x {paper.restarts} ({profile} profile): a weaker, cheaper attack")
    if tau != paper.tau:
        notes.append(f"step tau = {tau:g}*eps instead of 0.05*eps (so that few iterations still travel "
                     f"{attack_iters * tau:g} eps)")
    if arch == "given":
        notes.append("surrogate given by the caller (surrogate_model=...)")
    elif arch != "resnet18" or surrogate_epochs != paper.surrogate_epochs:
        notes.append(f"surrogate {arch} trained {surrogate_epochs} epochs instead of ResNet-18 for 40 "
                     f"({profile} profile)")
    if batch_size != paper.batch_size:
        notes.append(f"poison batch {batch_size} instead of 512")
    if arch != "given" and surrogate_batch_size != paper.surrogate_batch_size:
        notes.append(f"surrogate batch {surrogate_batch_size} instead of 128")
    if not augment:
        notes.append("no differentiable augmentation (the paper uses it in training and in the attack)")
    info = {
        "profile": profile, "recipe": recipe, **sur_info,
        "attack_iters": attack_iters, "restarts": restarts, "tau": tau, "batch_size": batch_size,
        "restart_scores": scores, "best_restart": best_restart,
        "surrogate_loss_clean": loss_clean, "surrogate_loss_poisoned": loss_poisoned,
        "surrogate_acc_clean": acc_clean, "surrogate_acc_poisoned": acc_poisoned,
        "target_rate_clean": hit_clean, "target_rate_poisoned": hit_poisoned,
        "diagnostic_images": len(diag), "seconds": elapsed, "device": str(dev), "notes": notes,
    }
    return TAPResult(best_delta.detach().float().cpu(), model, info)


@register("tap", "Adversarial (error-maximising) poisons against a clean surrogate (Fowl et al., NeurIPS 2021)",
          "Linf 8/255")
def tap(
    train_set: ImageSet,
    *,
    recipe: str = "targeted",
    eps: float = 8 / 255,
    attack_iters: int | None = None,
    restarts: int | None = None,
    tau: float | None = None,
    batch_size: int | None = None,
    augment: bool = True,
    surrogate: str | None = None,
    surrogate_epochs: int | None = None,
    surrogate_batch_size: int | None = None,
    surrogate_lr: float = 0.1,
    rounding: str = "round",
    amp: bool = True,
    profile: str | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    quiet: bool = False,
) -> Poison:
    """TAP poison: δ (N, C, H, W), ‖δ‖∞ ≤ eps, by PGD against a surrogate trained on the clean set.

    recipe: "targeted" (default; towards (y + 1) mod K) or "untargeted" (away from y).
    Paper (profile `paper`): ResNet-18 surrogate 40 epochs; 250 iterations x 8 restarts, step 0.05·eps,
    batch 512, differentiable shift/flip augmentation. `quick` uses a small surrogate trained 8 epochs and
    20 iterations x 1 restart with step 0.1·eps; `smoke` 5 x 2 with step 0.25·eps: deviations, listed in
    `info["notes"]`. `rounding="truncate"` quantises by truncation (TAP's own export rounds half up).
    Raises NonFiniteLossError (a RuntimeError) when the surrogate's training loss diverges or its loss is not
    finite in any restart (a NaN restart never wins; see `tap_noise`), TypeError for a non-integer seed.
    """
    check_choice(rounding, "rounding", ("round", "truncate"), "tap")
    res = tap_noise(train_set, recipe=recipe, eps=eps, attack_iters=attack_iters, restarts=restarts, tau=tau,
                    batch_size=batch_size, augment=augment, surrogate=surrogate, surrogate_epochs=surrogate_epochs,
                    surrogate_batch_size=surrogate_batch_size, surrogate_lr=surrogate_lr, amp=amp, profile=profile,
                    seed=seed, device=device, quiet=quiet)
    params = {"recipe": recipe, "eps": eps, "attack_iters": res.info["attack_iters"], "restarts": res.info["restarts"],
              "tau": res.info["tau"], "batch_size": res.info["batch_size"], "augment": augment,
              "surrogate": res.info["surrogate"], "surrogate_epochs": res.info["surrogate_epochs"],
              "surrogate_batch_size": res.info["surrogate_batch_size"], "surrogate_lr": surrogate_lr, "amp": amp,
              "profile": res.info["profile"]}
    return poison_from_delta("tap", train_set, res.delta, params, seed, rounding, res.info, classwise=False)
