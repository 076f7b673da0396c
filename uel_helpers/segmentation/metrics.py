"""Segmentation metrics, clean and under attack: mIoU, mean class accuracy (mAcc), pixel accuracy (allAcc).

From the confusion matrix C (rows: ground truth, columns: prediction; pixels labelled 255 not counted), as
hszhao/semseg's `intersectionAndUnion` used by `psandovalsegura/Robust-Semantic-Segmentation@2bf51a1`
(`tool_test/voc2012/test_voc_psp.py`):

    IoU_k = C_kk / (sum_j C_kj + sum_j C_jk - C_kk),   Acc_k = C_kk / sum_j C_kj,   allAcc = sum_k C_kk / sum C

mIoU and mAcc average over the classes present (a class with no ground-truth and no predicted pixel has no IoU;
semseg would count it as 0, which only matters for a test set that lacks a class).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from ..checks import check_count, check_seed
from ..device import autocast, make_generator, pick_device
from ..progress import progress
from .attacks import attack_by_name, run_attack
from .data import IGNORE, SegScenes, check_label_map

ROBUSTNESS_ATTACKS = ("clean", "bim-2", "bim-4", "bim-6", "pgd-20")


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """K x K int64 counts: entry [t, p] = pixels of ground-truth class t predicted as p; labels 255 skipped.
    pred and labels: integer tensors of the same shape. ValueError for different shapes."""
    if pred.shape != labels.shape:
        raise ValueError(f"confusion_matrix: pred {tuple(pred.shape)} and labels {tuple(labels.shape)} must have "
                         "the same shape")
    keep = labels != IGNORE
    t, p = labels[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


@dataclass(frozen=True)
class SegScores:
    """mIoU, mAcc and allAcc in [0, 1], and the per-class IoU (NaN for a class absent from both maps)."""

    miou: float
    macc: float
    allacc: float
    iou: tuple[float, ...]

    @classmethod
    def from_confusion(cls, conf: torch.Tensor) -> SegScores:
        c = conf.double()
        tp, gt, pr = c.diag(), c.sum(1), c.sum(0)
        union = gt + pr - tp
        iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp_min(1), torch.full_like(tp, float("nan")))
        total = float(c.sum())
        return cls(float(np.nanmean(iou.numpy())) if (union > 0).any() else float("nan"),
                   float(np.nanmean(acc.numpy())) if (gt > 0).any() else float("nan"),
                   float(tp.sum()) / total if total else float("nan"), tuple(iou.tolist()))

    def __str__(self) -> str:
        return f"mIoU {100 * self.miou:.1f}%, mAcc {100 * self.macc:.1f}%, allAcc {100 * self.allacc:.1f}%"


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel argmax (N, H, W) of `model` in eval mode on float images (N, 3, H, W) in [0, 1]."""
    was = model.training
    model.eval()
    with torch.no_grad(), autocast(x.device):
        out = model(x).argmax(1)
    model.train(was)
    return out


def as_network(model) -> nn.Module:
    """The network of `model` (a TrainedSegmenter or a bare nn.Module); TypeError otherwise."""
    net = getattr(model, "model", model)  # a TrainedSegmenter or a bare network
    if not isinstance(net, nn.Module):
        raise TypeError(f"model must be a segmentation nn.Module or a TrainedSegmenter, got {type(model).__name__}")
    return net


def evaluate_segmenter(model, scenes: SegScenes, attack: str = "clean", batch_size: int = 64,
                       device: str | torch.device | None = "auto", seed: int = 0) -> SegScores:
    """Scores of `model` (a network or a TrainedSegmenter; MixBN models are evaluated on their current route, "clean"
    after training) on `scenes`, each batch first attacked with `attack` ("clean", "bim-N", "pgd-N") against its
    ground-truth labels. Raises ValueError for an unknown attack, TypeError for a model that is not a network."""
    who = "evaluate_segmenter"
    net = as_network(model)
    if not isinstance(scenes, SegScenes):
        raise TypeError(f"{who}: scenes must be SegScenes, got {type(scenes).__name__}")
    spec = attack_by_name(attack)
    batch_size = check_count(batch_size, "batch_size", who)
    dev = pick_device(device)
    net = net.to(dev)
    gen = make_generator(check_seed(seed, "seed", who), dev)
    conf = torch.zeros(scenes.num_classes, scenes.num_classes, dtype=torch.int64)
    for xb, yb in zip(scenes.images.split(batch_size), scenes.labels.split(batch_size), strict=True):
        x, y = xb.to(dev).float().div_(255), yb.to(dev).long()
        conf += confusion_matrix(predict(net, run_attack(net, x, y, spec, gen)), y, scenes.num_classes)
    return SegScores.from_confusion(conf)


def robustness_table(models: Mapping[str, object], scenes: SegScenes, attacks: Sequence[str] = ROBUSTNESS_ATTACKS,
                     batch_size: int = 64, device: str | torch.device | None = "auto", quiet: bool = False
                     ) -> dict[str, dict[str, SegScores]]:
    """{model name: {attack: SegScores}} for every model and attack on the same scenes (same seed for PGD)."""
    for a in attacks:
        attack_by_name(a)  # every name checked before any work
    out: dict[str, dict[str, SegScores]] = {}
    bar = progress(total=len(models) * len(attacks), desc="robustness", unit="eval", quiet=quiet)
    for name, model in models.items():
        out[name] = {}
        for a in attacks:
            out[name][a] = evaluate_segmenter(model, scenes, a, batch_size, device)
            bar.update(1)
    bar.close()
    return out


def check_target(target: torch.Tensor, images: torch.Tensor, who: str) -> torch.Tensor:
    """A label map per image (N, H, W) for float images (N, C, H, W), as int64."""
    return check_label_map(target, (images.shape[0], *images.shape[2:]), "target", who).long()
