"""Three trainings with one schedule: standard, SAT and AdvProp (MixBN), cached by configuration.

Per SGD step on a batch of B scenes (after random flips of image and label map together):
- standard: loss on the batch;
- SAT (`tool_train/train_sat_psp.py`): the second half of the batch replaced by its BIM adversarial examples
  (eps 0.03, 3 steps of 0.01, ground-truth labels, the model in eval mode), i.e. [B/2 clean; B/2 adversarial];
- AdvProp (`tool_train/train_advprop_psp.py`, `model/mixbn.py`): the same, with every BN a MixBN: the attack runs
  with the `adv` route (the auxiliary BNs' running statistics), training with the `mix` route (clean half through
  the main BNs, adversarial half through the auxiliary BNs), evaluation with the `clean` route;
loss = CE(main) + 0.4 * CE(aux), SGD with the poly schedule, all from `psandovalsegura/Robust-Semantic-Segmentation
@2bf51a1`. Upstream attacks the whole batch and keeps the second half; we attack only the second half, which gives
the same adversarial examples (the model is in eval mode, so each image's attack is independent) at half the cost.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..cache import atomic_write, cached
from ..checks import check_bool, check_choice, check_seed
from ..device import OptimizerStep, autocast, make_generator, pick_device, seed_everything
from ..progress import progress
from .attacks import bim_attack, pixel_ce
from .data import IGNORE, SegScenes
from .model import build_segmenter, convert_mixbn, set_bn_route
from .settings import METHODS, SegSettings, seg_settings

SEGMENTER_FORMAT = 1


@dataclass
class SegHistory:
    """Per-epoch mean training loss (main + aux), pixel accuracy on the training batches (adversarial halves
    included), seconds."""

    loss: list[float] = field(default_factory=list)
    pixel_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@dataclass
class TrainedSegmenter:
    """A trained network (CPU, eval mode, MixBN on the clean route) with how it was trained."""

    model: nn.Module
    method: str
    settings: SegSettings
    history: SegHistory
    seed: int
    data: str
    classes: tuple[str, ...]
    image_size: int

    @property
    def name(self) -> str:
        return {"standard": "standard", "sat": "SAT", "advprop": "AdvProp"}[self.method]


def poly_lr(settings: SegSettings, step: int, total: int) -> float:
    """lr * (1 - step / total) ** power (the poly schedule of semseg, per step)."""
    return settings.lr * (1 - step / max(1, total)) ** settings.power


def _flip(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip of a random half of the batch, image and label map together."""
    m = torch.rand(x.shape[0], generator=gen, device=gen.device).to(x.device) < 0.5
    return torch.where(m[:, None, None, None], x.flip(3), x), torch.where(m[:, None, None], y.flip(2), y)


def adversarial_batch(model: nn.Module, method: str, x: torch.Tensor, y: torch.Tensor, s: SegSettings
                      ) -> torch.Tensor:
    """The training batch of `method`: x for standard; [first half clean; second half BIM] for SAT and AdvProp
    (AdvProp attacks on the `adv` route and leaves the model on the `mix` route for the SGD step)."""
    if method == "standard":
        return x
    half = x.shape[0] // 2
    if method == "advprop":
        set_bn_route(model, "adv")
    adv = bim_attack(model, x[half:], y[half:], s.eps, s.attack_steps, s.attack_step)
    if method == "advprop":
        set_bn_route(model, "mix")
    return torch.cat([x[:half], adv])


def _payload(t: TrainedSegmenter) -> dict:
    return {"format": SEGMENTER_FORMAT, "method": t.method, "settings": asdict(t.settings),
            "history": asdict(t.history), "seed": t.seed, "data": t.data, "classes": list(t.classes),
            "image_size": t.image_size, "state": t.model.state_dict()}


def save_segmenter(t: TrainedSegmenter, path: str | Path) -> Path:
    """Write a trained segmenter (weights, settings, history) atomically."""
    return atomic_write(Path(path), lambda tmp: torch.save(_payload(t), tmp))


def load_segmenter(path: str | Path) -> TrainedSegmenter:
    """Read a file written by `save_segmenter`; FileNotFoundError / ValueError for a missing or foreign file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no segmenter at {path}; train one with train_segmenter(...)")
    p = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(p, dict) or p.get("format") != SEGMENTER_FORMAT:
        raise ValueError(f"{path} is not a segmenter file of format {SEGMENTER_FORMAT}")
    s = SegSettings(**p["settings"])
    net = build_segmenter(s.model, len(p["classes"]), s.width, p["image_size"], mixbn=p["method"] == "advprop")
    net.load_state_dict(p["state"])
    return TrainedSegmenter(set_bn_route(net, "clean").eval(), p["method"], s, SegHistory(**p["history"]), p["seed"],
                            p["data"], tuple(p["classes"]), p["image_size"])


def train_segmenter(scenes: SegScenes, method: str = "standard", settings: SegSettings | None = None, seed: int = 0,
                    device: str | torch.device | None = "auto", quiet: bool = False, cache: bool = True,
                    cache_root: str | Path | None = None) -> TrainedSegmenter:
    """Train a segmenter on `scenes` with `method` ("standard", "sat" or "advprop"), or load it from the cache.

    settings: None = the current profile's (`seg_settings`). The three methods with the same seed share the
    initialisation (AdvProp's auxiliary BNs start as copies of the main ones), the batch order and the flips.
    Raises ValueError for an unknown method or model, TypeError for scenes that are not SegScenes;
    NonFiniteLossError (a FloatingPointError) when the training loss diverges.
    """
    who = "train_segmenter"
    check_choice(method, "method", METHODS, who)
    if not isinstance(scenes, SegScenes):
        raise TypeError(f"{who}: scenes must be SegScenes (make_scenes / scenes_cached / load_voc_scenes), got "
                        f"{type(scenes).__name__}")
    s = settings if settings is not None else seg_settings(None)
    if not isinstance(s, SegSettings):
        raise TypeError(f"{who}: settings must be SegSettings or None, got {type(s).__name__}")
    seed = check_seed(seed, "seed", who)
    quiet, cache = check_bool(quiet, "quiet", who), check_bool(cache, "cache", who)
    build_segmenter(s.model, scenes.num_classes, s.width, scenes.size)  # checks model and size before any work
    config = {"kind": "segmenter", "format": SEGMENTER_FORMAT, "method": method, "settings": asdict(s), "seed": seed,
              "data": scenes.fingerprint(), "classes": list(scenes.classes)}

    def build() -> TrainedSegmenter:
        return _train(scenes, method, s, seed, pick_device(device), quiet)

    return cached("segmenter", config, build, save_segmenter, load_segmenter, suffix=".pt", enabled=cache,
                  root=cache_root)


def _train(scenes: SegScenes, method: str, s: SegSettings, seed: int, dev: torch.device, quiet: bool
           ) -> TrainedSegmenter:
    seed_everything(seed)
    net = build_segmenter(s.model, scenes.num_classes, s.width, scenes.size, pretrained=s.pretrained)
    if method == "advprop":  # converted after the initialisation: all three methods start from the same weights
        convert_mixbn(net)
    net = net.to(dev).train()
    images, labels = scenes.images.to(dev), scenes.labels.to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    stepper = OptimizerStep(opt, dev, amp=s.amp)
    gen = make_generator(seed, dev)
    order = torch.Generator().manual_seed(seed)
    n = len(scenes)
    per_epoch = max(1, n // s.batch_size)
    total = s.epochs * per_epoch
    hist = SegHistory()
    bar = progress(total=total, desc=f"train {method}", unit="step", quiet=quiet, leave=True)
    step = 0
    for epoch in range(1, s.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=order).to(dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev)
        counted = 0
        for i in range(per_epoch):
            idx = perm[i * s.batch_size:(i + 1) * s.batch_size]
            x, y = images[idx].float().div_(255), labels[idx].long()
            if s.flip:
                x, y = _flip(x, y, gen)
            x = adversarial_batch(net, method, x, y, s)
            for g in opt.param_groups:
                g["lr"] = poly_lr(s, step, total)
            with autocast(dev, enabled=s.amp):
                main, aux = net(x, aux=True)
            loss = pixel_ce(main, y) + s.aux_weight * pixel_ce(aux, y)
            stepper.step(loss)
            set_bn_route(net, "clean")
            step += 1
            keep = y != IGNORE
            loss_sum += loss.detach()
            correct += (main.detach().argmax(1) == y)[keep].sum()
            counted += int(keep.sum())
            bar.update(1)
        stepper.check_finite("train_segmenter", f"in epoch {epoch} ({method}, lr {s.lr:g})",
                             fix=f"lower the learning rate (settings.lr = {s.lr:g}) or set amp=False")
        hist.loss.append(float(loss_sum) / per_epoch)
        hist.pixel_acc.append(float(correct) / max(1, counted))
        hist.seconds.append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{hist.loss[-1]:.3f}", acc=f"{100 * hist.pixel_acc[-1]:.1f}%")
    bar.close()
    net = set_bn_route(net.cpu(), "clean").eval()
    return TrainedSegmenter(net, method, s, hist, seed, scenes.fingerprint(), scenes.classes, scenes.size)
