"""Surrogate networks for optimisation-based poisons (EM, TAP): building, SGD steps, a training loop.

EM trains its surrogate *while* it crafts the noise (a few SGD steps per round, on the noisy data);
TAP trains one on the clean data first and then attacks it. Both need the same small pieces, which
live here so that the attack modules read like their algorithms:

- `default_surrogate_arch`: ResNet-18 at the `paper` profile, smaller `build_model` networks at
  `quick`/`smoke` (a documented deviation: a laptop CPU cannot run ResNet-18 through these loops).
- `SurrogateNet`: optional per-channel normalisation, an optional differentiable transform in the
  normalised space (TAP augments there), then the network. It takes [0,1] pixels.
- `SGDStepper`: one optimiser step with mixed precision (GradScaler for fp16) and grad-norm clipping.
- `train_surrogate`: a plain training loop without a test set (SGD, multi-step schedule, augmentation).
- `surrogate_metrics`: mean cross-entropy and accuracy of a surrogate on given float images.
- `frozen`: a context manager for input-only gradients (`device.deterministic_backend` gives repeatability).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import check_count, check_rate, check_seed
from ..data import ImageSet
from ..device import OptimizerStep, amp_dtype, autocast
from ..models import MODELS, FastNet, build_model
from ..training import Normalize, channel_stats

# The network each profile uses as a surrogate. `paper` is the papers' CIFAR ResNet-18; the smaller
# ones are deviations for CPUs (FastNet needs images of at least 16x16, SmallCNN takes any size).
PAPER_SURROGATE = "resnet18"
SMALL_SURROGATE = "fastnet-small"
TINY_SURROGATE = "smallcnn"


def default_surrogate_arch(profile: str, image_size: tuple[int, int]) -> str:
    """`resnet18` at `paper`; `fastnet-small` at `quick` (`smallcnn` under 16 px); `smallcnn` at `smoke`."""
    if profile == "paper":
        return PAPER_SURROGATE
    if profile == "smoke":
        return TINY_SURROGATE  # seconds: what CI runs through every notebook
    return SMALL_SURROGATE if min(image_size) >= MODELS[SMALL_SURROGATE][1] else TINY_SURROGATE


def check_surrogate_arch(arch: str, attack: str) -> str:
    """A surrogate must be a `build_model` name; anything else is a ValueError naming the choices."""
    if arch not in MODELS:
        raise ValueError(f"{attack}: unknown surrogate {arch!r}; expected one of {', '.join(MODELS)}")
    return arch


class SurrogateNet(nn.Module):
    """[0,1] pixels -> (normalise) -> (transform, e.g. TAP's differentiable augmentation) -> network.

    The transform is applied in the *normalised* space, as in the TAP code, so that its zero padding
    means "the dataset's mean colour" there; without normalisation it means black.
    """

    def __init__(self, net: nn.Module, normalize: Normalize | None = None) -> None:
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> torch.Tensor:
        z = self.normalize(x)
        if transform is not None:
            z = transform(z)
        return self.net(z)


def build_surrogate(arch: str, ds: ImageSet, *, seed: int, device: torch.device, normalize: bool) -> SurrogateNet:
    """A freshly initialised surrogate for `ds` (init seeded by `seed`; global RNG state left untouched).

    FastNet's frozen whitening layer is fitted on (up to 5,000) clean images; with `normalize` the
    network is preceded by the clean set's per-channel mean/std. TypeError for a seed that is not an integer.
    """
    seed = check_seed(seed, "seed", "build_surrogate")
    c, h, w = ds.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = build_model(arch, c, ds.num_classes, (h, w))
    if isinstance(net, FastNet):
        gen = torch.Generator().manual_seed(int(seed))
        pick = torch.randperm(len(ds), generator=gen)[:5000]
        net.fit_whitening(ds.images[pick].float() / 255.0)
    norm = Normalize(*channel_stats(ds.images)) if normalize else None
    return SurrogateNet(net, norm).to(device)


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False
        ) -> torch.optim.SGD:
    """SGD over the trainable parameters (FastNet keeps some frozen)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=nesterov and momentum > 0)


SGDStepper = OptimizerStep  # the name this module used before the step moved to `device` (kept for imports)


def multistep_milestones(epochs: int) -> tuple[int, ...]:
    """The TAP/Witches'-Brew "conservative" milestones: epochs // 2.667, // 1.6, // 1.142 ([14, 25, 35] for 40)."""
    return tuple(int(epochs / d) for d in (2.667, 1.6, 1.142))


def train_surrogate(
    model: SurrogateNet,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    gen: torch.Generator,
    order_gen: torch.Generator,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    milestones: tuple[int, ...] = (),
    gamma: float = 0.1,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    amp: bool = True,
    quiet: bool = False,
    desc: str = "surrogate",
) -> list[float]:
    """Train `model` in place on uint8 images (already on its device); returns the per-epoch train accuracy.

    Shuffled every epoch (order from `order_gen`, a CPU generator), last partial batch dropped (as
    torch loaders with drop_last do), lr multiplied by `gamma` at each epoch in `milestones`.
    `augment(z, gen)` is applied in the model's normalised space (see `SurrogateNet`).
    Raises NonFiniteLossError (device.py; a FloatingPointError and a RuntimeError) after an epoch whose loss was
    NaN or infinite, naming `desc`, the epoch and the fix (lower `lr`, or amp=False), instead of training on.
    """
    device = images_u8.device
    opt = sgd(model, lr, momentum, weight_decay, nesterov)
    stepper = SGDStepper(opt, device, amp)
    n = len(images_u8)
    steps = max(1, n // batch_size)
    accs: list[float] = []
    bar = tqdm(range(epochs), desc=desc, disable=quiet or None, leave=False)
    for epoch in bar:
        for group in opt.param_groups:
            group["lr"] = lr * gamma ** sum(epoch >= m for m in milestones)
        model.train()
        perm = torch.randperm(n, generator=order_gen).to(device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for i in range(steps):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            x, y = images_u8[idx].float().div_(255.0), labels[idx]
            transform = (lambda z: augment(z, gen)) if augment is not None else None
            with autocast(device, amp):
                logits = model(x, transform)
            loss = F.cross_entropy(logits.float(), y)
            stepper.step(loss)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(idx)
        stepper.check_finite(desc, f"in epoch {epoch + 1} (lr {lr:g})",
                             f"lower its learning rate (now {lr:g}), or turn mixed precision off (amp=False)")
        accs.append(int(correct) / max(1, seen))
        bar.set_postfix(train_acc=f"{accs[-1]:.3f}")
    model.eval()
    return accs


@torch.no_grad()
def surrogate_metrics(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024
                      ) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode on float images `x` in [0,1]."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct = 0.0, 0
    for xb, yb in zip(x.split(batch_size), labels.split(batch_size), strict=True):
        logits = model(xb.to(device)).float()
        yb = yb.to(device)
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(1, len(x))
    return loss_sum / n, correct / n


def diagnostic_indices(n: int, limit: int = 2048) -> torch.Tensor:
    """The images on which attack diagnostics are measured: the first `limit` (all of a small set)."""
    return torch.arange(min(n, limit))


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients (for input-gradient attacks); restores both afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def scaled_loss_for_grad(loss: torch.Tensor, device: torch.device, amp: bool) -> torch.Tensor:
    """Scale a loss before an input gradient under fp16 so tiny gradients do not underflow to 0.

    Only the sign of the gradient is used by EM and TAP, so a constant factor changes nothing else.
    """
    return loss * 1024.0 if amp and amp_dtype(device) == torch.float16 else loss


def check_positive_int(value: int, name: str, attack: str) -> int:
    """`value` must be an integer >= 1 (numpy integers accepted): `checks.check_count`. TypeError for a float or a
    bool, ValueError below 1. Returns a Python int. A thin alias kept for callers; the attacks call checks.py."""
    return check_count(value, name, attack)


def check_fraction(value: float, name: str, attack: str, low_open: bool = True, high_open: bool = False) -> float:
    """`value` must be a finite number in (0, 1] (bounds configurable; numpy numbers accepted): `checks.check_rate`.
    TypeError for a non-number or a bool, ValueError for NaN/inf or out of bounds. Returns a Python float.
    A thin alias kept for callers; the attacks call checks.py."""
    return check_rate(value, name, attack, lo=0.0, hi=1.0, lo_open=low_open, hi_open=high_open)
