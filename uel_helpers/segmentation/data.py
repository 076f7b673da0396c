"""Segmentation data: `SegScenes` (images + per-pixel label maps), synthetic scenes built from real object images,
and PASCAL VOC 2012 through torchvision.

Synthetic scenes (offline; our design, not the paper's data): a few grayscale object images (Fashion-MNIST by
default) are resized to a random side, tinted with a random colour and pasted at random positions on a textured
background (a smooth colour field plus stripes). An object's pixel mask is its thresholded intensity, its label is
its class + 1 (0 = background); a later object covers an earlier one. Everything is drawn from one seeded generator,
so a seed gives the same scenes bit for bit; `scenes_cached` keeps them in the package cache.

PASCAL VOC 2012 (online/Colab): `torchvision.datasets.VOCSegmentation` (21 classes, ignore label 255), each image
resized (shorter side) and centre-cropped to the profile's side. torchvision's `train` split has 1,464 images; the
fork's `train_aug` (10,582 images with SBD, `psandovalsegura/Robust-Semantic-Segmentation@2bf51a1`
`config/paper/voc2012/voc2012_pspnet50.yaml`) is not in torchvision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import atomic_write, cached, tensor_fingerprint
from ..checks import check_choice, check_count, check_rate, check_seed
from ..data import ImageSet, data_root, load_dataset, quantize

IGNORE = 255  # label of pixels that no loss or metric counts (VOC's object borders)
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
SCENES_FORMAT = 1  # bump when the generator changes: cached scenes of another format are rebuilt


@dataclass
class SegScenes:
    """Images with a label map each: images uint8 (N, 3, H, W) in 0..255; labels uint8 (N, H, W) with values in
    [0, K) or IGNORE (255); K class names (class 0 = background); optional `instances` uint8 (N, H, W): 0 on the
    background, i on the pixels of the i-th pasted object that stay visible (synthetic scenes only).

    Raises TypeError / ValueError on creation for the wrong dtypes, shapes (a label map must have the image's size),
    or label values outside [0, K) other than 255.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = "scenes"
    instances: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        who = "SegScenes"
        for what in ("images", "labels", "instances"):
            value = getattr(self, what)
            if isinstance(value, np.ndarray):
                setattr(self, what, torch.from_numpy(value))
            elif value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(f"{who}: {what} must be a torch.Tensor or numpy array, got {type(value).__name__}")
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"{who}: images must be uint8 (N, 3, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        n, _, h, w = self.images.shape
        check_label_map(self.labels, (n, h, w), "labels", who)
        self.labels = self.labels.to(torch.uint8)
        self.classes = tuple(str(c) for c in self.classes)
        if not 2 <= len(self.classes) < IGNORE:
            raise ValueError(f"{who}: need 2 to 254 class names (class 0 = background), got {len(self.classes)}")
        valid = (self.labels < len(self.classes)) | (self.labels == IGNORE)
        if not bool(valid.all()):
            bad = sorted(set(self.labels[~valid].tolist()))[:5]
            raise ValueError(f"{who}: labels must lie in [0, {len(self.classes)}) or be {IGNORE} (ignore), got {bad}")
        if self.instances is not None:
            check_label_map(self.instances, (n, h, w), "instances", who)
            self.instances = self.instances.to(torch.uint8)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n, _, h, w = self.images.shape
        return f"SegScenes(name={self.name!r}, n={n}, size={h}x{w}, classes={len(self.classes)})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def to_float(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return self.images.float().div_(255.0)

    def subset(self, indices) -> SegScenes:
        """The scenes at `indices` (a slice, a sequence or tensor of ints)."""
        idx = torch.arange(len(self))[indices] if isinstance(indices, slice) else torch.as_tensor(indices).long()
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise ValueError(f"SegScenes.subset: indices must lie in [0, {len(self)}), got {idx.tolist()[:8]}")
        inst = None if self.instances is None else self.instances[idx].clone()
        return SegScenes(self.images[idx].clone(), self.labels[idx].clone(), self.classes, self.name, inst,
                         dict(self.meta))

    def fingerprint(self) -> str:
        return tensor_fingerprint(self.images) + tensor_fingerprint(self.labels)

    def save(self, path: str | os.PathLike) -> Path:
        """Write as an uncompressed .npz (no pickle), atomically."""
        arrays = {"images": self.images.numpy(), "labels": self.labels.numpy(),
                  "classes": np.array(self.classes), "name": np.array(self.name)}
        if self.instances is not None:
            arrays["instances"] = self.instances.numpy()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        return atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SegScenes:
        with np.load(Path(path), allow_pickle=False) as z:
            inst = torch.from_numpy(z["instances"]) if "instances" in z else None
            return cls(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]),
                       tuple(z["classes"].tolist()), str(z["name"]), inst)


def check_label_map(labels, shape: tuple[int, int, int], name: str, who: str) -> torch.Tensor:
    """`labels` is an integer tensor of exactly `shape` (N, H, W), one label per pixel; ValueError naming `name`
    and both shapes otherwise."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor (N, H, W) of integer labels, got "
                        f"{type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"{who}: {name} must hold integer labels, got {labels.dtype}")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"{who}: {name} must be a label map per image of the images' size {tuple(shape)} "
                         f"(N, H, W), got {tuple(labels.shape)}")
    return labels


# --- synthetic scenes --------------------------------------------------------------------------------


def _background(size: int, gen: torch.Generator) -> torch.Tensor:
    """A textured background (3, S, S) in [0, 1]: a smooth random colour field plus stripes of random frequency,
    orientation and colour."""
    coarse = torch.rand(1, 3, 4, 4, generator=gen)
    field_ = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    theta = float(torch.rand((), generator=gen)) * np.pi
    freq = 2 + 6 * float(torch.rand((), generator=gen))  # stripes across the image
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    wave = torch.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy))
    tint = torch.rand(3, 1, 1, generator=gen) - 0.5
    return (0.25 + 0.5 * field_ + 0.25 * tint * wave).clamp(0, 1)


def make_scenes(source: ImageSet, n: int, size: int = 64, objects: tuple[int, int] = (1, 3),
                scale: tuple[float, float] = (0.35, 0.6), threshold: float = 0.1, seed: int = 0,
                classes: tuple[int, ...] | None = None, name: str | None = None) -> SegScenes:
    """`n` synthetic scenes of `size` x `size` px with `objects` = (min, max) objects each.

    source: the object images (an ImageSet, 1 or 3 channels, dark background, e.g. Fashion-MNIST); each object is a
    random image of it, resized to a side of `scale` x `size` px (uniform in the range), tinted with a random colour
    c in [0.2, 1]^3 (pixel = c * (0.3 + 0.7 * intensity)) and pasted at a random position fully inside the scene.
    Its mask: resized intensity > `threshold` (in [0, 1]). Labels: class + 1 on the mask, 0 elsewhere; classes
    ("background", *source.classes), or with `classes` (indices into source.classes) only those objects, labelled
    1..len(classes) in that order. Deterministic in `seed`.

    Raises TypeError/ValueError for a non-ImageSet source, n < 1, size < 8, objects not 1 <= min <= max, a scale
    outside (0, 1] or min > max, a threshold outside [0, 1), classes not distinct indices of source.classes.
    """
    who = "make_scenes"
    if not isinstance(source, ImageSet):
        raise TypeError(f"{who}: source must be an ImageSet of object images (e.g. load_dataset('fashion-mnist')), "
                        f"got {type(source).__name__}")
    n = check_count(n, "n", who)
    size = check_count(size, "size", who, lo=8)
    lo_k, hi_k = (check_count(k, "objects", who) for k in objects)
    if lo_k > hi_k:
        raise ValueError(f"{who}: objects must be (min, max) with min <= max, got {objects}")
    s_lo, s_hi = (check_rate(s, "scale", who, lo=0.0, hi=1.0, lo_open=True) for s in scale)
    if s_lo > s_hi:
        raise ValueError(f"{who}: scale must be (min, max) with min <= max, got {scale}")
    threshold = check_rate(threshold, "threshold", who, lo=0.0, hi=1.0, hi_open=True)
    seed = check_seed(seed, "seed", who)
    names = source.classes
    if classes is not None:
        classes = tuple(check_count(k, "classes", who, lo=0, hi=source.num_classes - 1) for k in classes)
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"{who}: classes must be distinct class indices of the source, got {classes}")
        keep = torch.isin(source.labels, torch.tensor(classes))
        relabel = torch.zeros(source.num_classes, dtype=torch.int64)
        relabel[list(classes)] = torch.arange(len(classes))
        source = ImageSet(source.images[keep], relabel[source.labels[keep]], [names[k] for k in classes],
                          source.name, dict(source.meta))
    gen = torch.Generator().manual_seed(seed)
    src = source.to_float()
    if src.shape[1] == 3:
        src = (src * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    images = torch.empty(n, 3, size, size)
    labels = torch.zeros(n, size, size, dtype=torch.uint8)
    instances = torch.zeros(n, size, size, dtype=torch.uint8)
    for i in range(n):
        img = _background(size, gen)
        k = int(torch.randint(lo_k, hi_k + 1, (), generator=gen))
        for j in range(k):
            pick = int(torch.randint(0, len(source), (), generator=gen))
            side = int(round(size * (s_lo + (s_hi - s_lo) * float(torch.rand((), generator=gen)))))
            side = max(4, min(size, side))
            obj = F.interpolate(src[pick:pick + 1], size=(side, side), mode="bilinear", align_corners=False,
                                antialias=True)[0, 0].clamp(0, 1)
            mask = obj > threshold
            top = int(torch.randint(0, size - side + 1, (), generator=gen))
            left = int(torch.randint(0, size - side + 1, (), generator=gen))
            colour = 0.2 + 0.8 * torch.rand(3, 1, 1, generator=gen)
            region = (slice(top, top + side), slice(left, left + side))
            img[:, region[0], region[1]] = torch.where(mask, colour * (0.3 + 0.7 * obj), img[:, region[0], region[1]])
            labels[i][region][mask] = int(source.labels[pick]) + 1
            instances[i][region][mask] = j + 1
        images[i] = img
    return SegScenes(quantize(images), labels, ("background", *source.classes),
                     name or f"scenes({source.name}, seed {seed})", instances,
                     {"source": source.name, "seed": seed, "size": size, "objects": [lo_k, hi_k],
                      "scale": [s_lo, s_hi], "threshold": threshold})


def scenes_cached(split: str, n: int, size: int = 64, seed: int = 0, source: str = "fashion-mnist",
                  cache: bool = True, **options) -> SegScenes:
    """`make_scenes` from the named dataset's `split` ("train" or "test": test scenes use only test-split objects),
    cached by configuration and the source's content. `options`: make_scenes' objects, scale, threshold."""
    check_choice(split, "split", ("train", "test"), "scenes_cached")
    src = load_dataset(source, split)
    config = {"kind": "seg-scenes", "format": SCENES_FORMAT, "source": source, "split": split, "n": n, "size": size,
              "seed": seed, "options": options, "data": tensor_fingerprint(src.images)}
    return cached("seg-scenes", config, lambda: make_scenes(src, n, size, seed=seed, name=f"scenes-{split}",
                                                            **options),
                  lambda s, p: s.save(p), SegScenes.load, enabled=cache)


# --- PASCAL VOC 2012 ---------------------------------------------------------------------------------


def _voc_dataset_class():
    """torchvision's VOCSegmentation (a function so that tests can put a stand-in here)."""
    from torchvision.datasets import VOCSegmentation

    return VOCSegmentation


def _square(img, size: int, resample) -> np.ndarray:
    """Resize a PIL image so its shorter side is `size`, then centre-crop size x size."""
    w, h = img.size
    r = size / min(w, h)
    img = img.resize((max(size, round(w * r)), max(size, round(h * r))), resample)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def load_voc_scenes(split: str = "train", size: int = 64, root: str | os.PathLike | None = None,
                    download: bool = False, max_images: int | None = None) -> SegScenes:
    """PASCAL VOC 2012 segmentation (`torchvision.datasets.VOCSegmentation`, year "2012") as SegScenes: each image
    resized so its shorter side is `size` (bilinear; label maps nearest) and centre-cropped to size x size; labels
    0..20 and 255 (ignore) as in the dataset. split: "train" (1,464 images) or "val" (1,449).

    Raises FileNotFoundError when the dataset is not on disk and download=False (how to get it is in the message).
    """
    from PIL import Image

    who = "load_voc_scenes"
    check_choice(split, "split", ("train", "val", "trainval"), who)
    size = check_count(size, "size", who, lo=8)
    folder = Path(root).expanduser() if root is not None else data_root()
    try:
        ds = _voc_dataset_class()(str(folder), year="2012", image_set=split, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        raise FileNotFoundError(f"{who}: PASCAL VOC 2012 is not in {folder} ({err}); pass download=True (about 2 GB "
                                "from host.robots.ox.ac.uk) or root= a folder holding VOCdevkit/VOC2012") from None
    count = len(ds) if max_images is None else min(len(ds), check_count(max_images, "max_images", who))
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    labels = np.empty((count, size, size), dtype=np.uint8)
    for i in range(count):
        img, target = ds[i]
        images[i] = _square(img.convert("RGB"), size, Image.BILINEAR)
        labels[i] = _square(target, size, Image.NEAREST)
    return SegScenes(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels),
                     VOC_CLASSES, f"voc2012-{split}", meta={"source": str(folder)})
