"""Training-time augmentations as defenses: Cutout, CutMix, MixUp (APBench's augmentation columns).

They change the training protocol, not the data: the trainer applies them to every batch. APBench uses Cutout(16) on
32x32 images, CutMix and MixUp from kornia (`lafeat/apbench@9a6fb91`, `train.py --cutout`, `--cutmix`, `--mixup`); on
its leaderboard (`apbench/apbench.github.io:leaderboard.md@c7d70d6`) they barely help against most poisons (OPS is the
exception), which is the point of including them.
"""

from __future__ import annotations

from ..checks import check_count
from ..data import ImageSet
from .registry import register


def default_cutout_size(train_set: ImageSet) -> int:
    """Half the shorter image side, rounded half up: APBench's 16 for 32 px, 14 for 28 px, 4 for 8 px."""
    return max(1, int(min(train_set.image_size) / 2 + 0.5))


@register("cutout", "Cutout (DeVries & Taylor): zero a random size x size square of every training image; "
          "size=None means half the shorter image side, APBench's 16 for 32x32 images", kind="train",
          protocol_changes={"cutout": 16})
def cutout(train_set: ImageSet, *, size: int | None = None) -> dict:
    """Protocol changes for Cutout: the square's side, `size` or half the image side, a weak baseline defense."""
    if size is None:
        return {"cutout": default_cutout_size(train_set)}
    side = min(train_set.image_size)
    return {"cutout": check_count(size, "size", "cutout", lo=1, hi=side)}  # at most the shorter image side


@register("cutmix", "CutMix (Yun et al.): paste a random box of another training image and mix the labels "
          "by area (APBench uses kornia's)", kind="train", protocol_changes={"mix": "cutmix"})
def cutmix(train_set: ImageSet) -> dict:
    """Protocol changes for CutMix: train on box-mixed image pairs, a weak baseline defense."""
    return {"mix": "cutmix"}


@register("mixup", "MixUp (Zhang et al.): train on convex combinations of image pairs and of their labels "
          "(APBench uses kornia's)", kind="train", protocol_changes={"mix": "mixup"})
def mixup(train_set: ImageSet) -> dict:
    """Protocol changes for MixUp: train on blended image pairs, a weak baseline defense."""
    return {"mix": "mixup"}
