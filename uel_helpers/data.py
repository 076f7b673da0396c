"""Datasets as `ImageSet`s: uint8 images (N, C, H, W), int64 labels and class names.

Every dataset, clean or poisoned, is an `ImageSet` of uint8 pixels, as a released dataset would be.
`load_dataset(name, split)` reads the datasets the notebooks use; conversions that change the data
(resizing, grayscale -> RGB) are explicit options, never automatic.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checks import (
    check_bool,
    check_choice,
    check_count,
    check_finite_tensor,
    check_number,
    check_rate,
    check_seed,
    check_size,
)

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR_ARCHIVES = {
    # name: (file name, md5 of the tarball as torchvision enforces it, folder inside, size for humans)
    "cifar10": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py", "163 MB"),
    "cifar100": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", "161 MB"),
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
DATASET_NAMES = ("digits", "fashion-mnist", "cifar10", "cifar100", "cifar-fs", "imagefolder:PATH")
# CIFAR-FS (Bertinetto et al., ICLR 2019, arXiv:1805.08136): CIFAR-100's 100 fine classes split 64 / 16 / 20 by
# class, train and test images pooled (600 per class). Class lists from
# tristandeleu/pytorch-meta@ac3c48e torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json; resolved to
# label indices at load time from the archive's own `fine_label_names` (never hard-coded indices).
CIFAR_FS_SPLITS = {
    "train": (
        "apple", "aquarium_fish", "bear", "bee", "bottle", "bowl", "boy", "bridge", "bus", "can", "castle",
        "caterpillar", "chair", "clock", "cloud", "cockroach", "couch", "cup", "dinosaur", "dolphin", "elephant",
        "forest", "girl", "hamster", "house", "kangaroo", "keyboard", "lawn_mower", "lion", "lizard", "lobster",
        "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "palm_tree", "pear", "pine_tree", "plate",
        "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "seal", "shrew", "skunk", "skyscraper", "snake",
        "spider", "squirrel", "streetcar", "sunflower", "tank", "tiger", "train", "trout", "tulip", "turtle",
        "willow_tree", "wolf",
    ),
    "val": (
        "beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish", "lamp", "maple_tree",
        "motorcycle", "otter", "sea", "shark", "television", "tractor",
    ),
    "test": (
        "baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck", "plain", "poppy", "rocket",
        "rose", "snail", "sweet_pepper", "table", "telephone", "wardrobe", "whale", "woman", "worm",
    ),
}
CIFAR_FS_ALIASES = ("cifar-fs", "cifar_fs", "cifarfs")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where downloaded datasets live: `root`, else `UEL_DATA`, else `<UEL_CACHE or ~/.cache/uel_helpers>/data`."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("UEL_DATA"):
        return Path(os.environ["UEL_DATA"]).expanduser()
    cache = os.environ.get("UEL_CACHE") or "~/.cache/uel_helpers"
    return Path(cache).expanduser() / "data"


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{what} must be a numpy array or torch tensor, got {type(x).__name__}")


@dataclass
class ImageSet:
    """A labelled image dataset: uint8 images (N, C, H, W) in 0..255, int64 labels in [0, K), K class names.

    Validated on creation; bad input raises ValueError/TypeError saying what was expected.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = _as_tensor(self.images, "images")
        self.labels = _as_tensor(self.labels, "labels")
        if self.images.dtype != torch.uint8:
            raise TypeError(
                f"ImageSet images must be uint8 in 0..255, got {self.images.dtype}; convert floats in [0,1] "
                "with ImageSet.from_float(...) or (x * 255).round().to(torch.uint8)"
            )
        if self.images.ndim != 4:
            raise ValueError(
                f"ImageSet images must have shape (N, C, H, W), got {tuple(self.images.shape)}; "
                "add a channel axis for grayscale images (images[:, None])"
            )
        n, c, h, w = self.images.shape
        if c not in (1, 3):
            raise ValueError(
                f"ImageSet images must have 1 or 3 channels in axis 1 (N, C, H, W), got C={c} "
                f"(shape {tuple(self.images.shape)}); channels-last arrays need .permute(0, 3, 1, 2)"
            )
        if h < 1 or w < 1:
            raise ValueError(f"ImageSet images must have positive height and width, got {h}x{w}")
        if self.labels.dtype.is_floating_point or self.labels.dtype == torch.bool or self.labels.is_complex():
            raise TypeError(f"ImageSet labels must be integers, got {self.labels.dtype}")
        self.labels = self.labels.to(torch.int64)
        if self.labels.ndim != 1:
            raise ValueError(f"ImageSet labels must be 1-D, got shape {tuple(self.labels.shape)}")
        if len(self.labels) != n:
            raise ValueError(f"ImageSet has {n} images but {len(self.labels)} labels; they must match")
        if isinstance(self.classes, str) or not isinstance(self.classes, Sequence):
            raise TypeError("ImageSet classes must be a sequence of class names, e.g. ('cat', 'dog')")
        self.classes = tuple(str(c) for c in self.classes)
        k = len(self.classes)
        if k < 1:
            raise ValueError("ImageSet needs at least one class name")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= k):
            raise ValueError(
                f"ImageSet labels must lie in [0, {k}) for {k} classes, got range "
                f"[{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    # --- basic properties -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"ImageSet(name={self.name!r}, n={n}, shape=({c}, {h}, {w}), classes={len(self.classes)})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    # --- conversions ------------------------------------------------------------------------
    def to_float(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return self.images.float().div_(255.0)

    @classmethod
    def from_float(
        cls, images: torch.Tensor, labels, classes, name: str = "dataset", rounding: str = "round", meta=None
    ) -> ImageSet:
        """Quantise float images in [0,1] to uint8 (round half up, or truncate as some originals do).

        Raises TypeError when `images` is not a tensor/array; ValueError for NaN or infinite pixels (they would
        silently become byte 0), for values outside [0,1] (clip them yourself if that is what you mean) and for
        a `rounding` other than "round"/"truncate".
        """
        who = "ImageSet.from_float"
        check_choice(rounding, "rounding", ("round", "truncate"), who)
        x = check_finite_tensor(_as_tensor(images, "images"), "images", who).float()
        if x.numel():
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"{who}: float images must lie in [0, 1], got range [{lo:.4f}, {hi:.4f}]; "
                                 "clamp them first")
        return cls(quantize(x, rounding), labels, classes, name=name, meta=dict(meta or {}))

    def with_images(self, images: torch.Tensor, name: str | None = None, **meta) -> ImageSet:
        """A new ImageSet with the same labels and classes and new uint8 images.

        The meta is carried over, except an affine code (`meta["decode"]`): it described the old bytes, so new
        images are plain 0..255 unless the caller passes a code for them again.
        """
        kept = {k: v for k, v in self.meta.items() if k != DECODE_KEY}
        return ImageSet(images, self.labels.clone(), self.classes, name=name or self.name, meta={**kept, **meta})

    def subset(self, indices) -> ImageSet:
        """The images at `indices`: integer indices (a sequence, array or tensor), a slice, or a boolean mask of
        length len(self). An empty selection gives an empty ImageSet (which train() and the other consumers refuse).

        Raises TypeError for non-integer indices (1.5 is not an index), ValueError for indices out of range or a
        mask of the wrong length.
        """
        if isinstance(indices, slice):
            idx = torch.arange(len(self))[indices]
        else:
            arr = np.asarray(indices.detach().cpu() if isinstance(indices, torch.Tensor) else indices)
            if arr.dtype == np.bool_:
                if arr.shape != (len(self),):
                    raise ValueError(f"ImageSet.subset: a boolean mask needs one entry per image ({len(self)}), "
                                     f"got shape {arr.shape}")
                arr = np.flatnonzero(arr)
            elif arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"ImageSet.subset: indices must be integers (or a boolean mask), got dtype "
                                f"{arr.dtype}; convert them with .astype(int) if that is what you mean")
            idx = torch.as_tensor(arr.astype(np.int64), dtype=torch.int64).reshape(-1)
        if len(idx) and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise ValueError(f"subset indices out of range for an ImageSet of {len(self)} images")
        return ImageSet(self.images[idx].clone(), self.labels[idx].clone(), self.classes, self.name, dict(self.meta))

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """A stratified split: (first part with ~`fraction` of each class, the rest), e.g. a hold-out test set.

        Raises TypeError/ValueError for a `fraction` outside (0, 1) or a bad `seed`, and ValueError when either
        part would be empty (too few images for that fraction).
        """
        who = "ImageSet.split"
        fraction = check_rate(fraction, "fraction", who, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        seed = check_seed(seed, "seed", who)
        rng = np.random.default_rng(seed)
        labels = self.labels.numpy()
        first: list[int] = []
        for k in range(self.num_classes):
            idx = np.flatnonzero(labels == k)
            rng.shuffle(idx)
            first.extend(idx[: int(round(fraction * len(idx)))].tolist())
        mask = np.zeros(len(self), dtype=bool)
        mask[first] = True
        if not mask.any() or mask.all():
            raise ValueError(f"{who}: fraction={fraction:g} of {len(self)} images ({self.class_counts()} per class) "
                             f"leaves the {'first' if not mask.any() else 'second'} part empty; pass a fraction "
                             "further from 0 and 1, or use a larger set")
        return self.subset(np.flatnonzero(mask)), self.subset(np.flatnonzero(~mask))

    def take_per_class(self, n_per_class: int, seed: int = 0) -> ImageSet:
        """A class-balanced random subset with at most `n_per_class` images of each class.

        Raises TypeError for a non-integer `n_per_class` or `seed`, ValueError for n_per_class < 1 or a negative seed.
        """
        n_per_class = check_count(n_per_class, "n_per_class", "ImageSet.take_per_class")
        seed = check_seed(seed, "seed", "ImageSet.take_per_class")
        rng = np.random.default_rng(seed)
        labels = self.labels.numpy()
        keep = []
        for k in range(self.num_classes):
            idx = np.flatnonzero(labels == k)
            keep.extend(rng.permutation(idx)[:n_per_class].tolist())
        return self.subset(np.sort(np.asarray(keep, dtype=np.int64)))

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    # --- storage ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save as a compressed `.npz` (images, labels, JSON metadata); never pickle. Atomic."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"ImageSet.save writes .npz files; got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"format": "uel-imageset-1", "classes": list(self.classes), "name": self.name,
                             "meta": self.meta})
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=self.images.numpy(), labels=self.labels.numpy(),
                                header=np.array(header))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageSet:
        """Load an ImageSet written by `save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no ImageSet file at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                images, labels = z["images"], z["labels"]
        except (KeyError, ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable ImageSet .npz file ({err})") from err
        if header.get("format") != "uel-imageset-1":
            raise ValueError(f"{path} is not an ImageSet file (format {header.get('format')!r})")
        return cls(images, labels, header["classes"], name=header["name"], meta=header.get("meta", {}))


# --- checks of whole sets (every function that takes a training or a test set uses these) ------------

def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def check_imageset(ds, name: str, who: str = "", *, allow_empty: bool = False) -> ImageSet:
    """`ds` must be an ImageSet (TypeError otherwise) holding at least one image (ValueError when empty, unless
    `allow_empty`): an empty training set cannot be trained on and an empty test set has no accuracy."""
    prefix = f"{who}: " if who else ""
    if not isinstance(ds, ImageSet):
        raise TypeError(f"{prefix}{name} must be an ImageSet (e.g. load_dataset(...) or synthetic_dataset(...)), "
                        f"got {type(ds).__name__}")
    if not allow_empty and len(ds) == 0:
        raise ValueError(f"{prefix}{name} is empty (0 images, {ds.num_classes} classes); pass a set with at least "
                         "one image (check the subset, filter or folder that produced it)")
    return ds


def check_same_classes(train_set: ImageSet, test_set: ImageSet, who: str = "", train_name: str = "train_set",
                       test_name: str = "test_set") -> None:
    """ValueError unless both sets have exactly the same class names in the same order.

    Labels are indices into `classes`, so label k must mean the same class in both sets: comparing class counts
    is not enough (train/ with n01, n02, n03 and test/ with n01, n02, n04 both have 3). The message names the
    classes found in only one set, or the first position where the orders differ.
    """
    a, b = tuple(train_set.classes), tuple(test_set.classes)
    if a == b:
        return
    prefix = f"{who}: " if who else ""
    only_a, only_b = [c for c in a if c not in b], [c for c in b if c not in a]
    if only_a or only_b:
        detail = (f"classes only in {train_name}: {_names(only_a)}; only in {test_name}: {_names(only_b)}. "
                  f"Give both sets the same classes (for imagefolder: the same class sub-folders under train/ "
                  f"and test/)")
    elif len(a) != len(b):
        detail = (f"{train_name} lists {len(a)} class names and {test_name} {len(b)} (repeated names); "
                  "give both the same class list")
    else:
        k = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        detail = (f"the same names in a different order: label {k} is {a[k]!r} in {train_name} but {b[k]!r} in "
                  f"{test_name}; relabel one set so that both use the same class order")
    raise ValueError(f"{prefix}{train_name} and {test_name} classes must match (the same names in the same order, "
                     f"since labels index them): {detail}")


def quantize(x: torch.Tensor, rounding: str = "round") -> torch.Tensor:
    """Float images in [0,1] -> uint8: `round` = floor(255x + 0.5) (the package's rule), `truncate` = floor(255x).

    Values outside [0, 1] are clamped; NaN or infinite values are a ValueError (a NaN would become byte 0 silently).
    """
    x = check_finite_tensor(x, "x", "quantize")
    if rounding == "round":
        return torch.floor(x * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
    if rounding == "truncate":
        return torch.floor(x * 255.0).clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}")


# --- affine uint8 codes for images outside [0, 1] ------------------------------------------------
#
# Some purifications (the orthogonal projection attack) produce float images outside [0, 1]. Clipping
# them would change the method, so such an ImageSet stores an exact affine code instead and says so in
# `meta["decode"] = {"scale": s, "offset": o}`: float = u8 / 255 * s + o (quantisation step s / 255).
# Without that entry the usual float = u8 / 255 holds. The trainer decodes training images this way.

DECODE_KEY = "decode"


def decode_affine(meta: dict | None) -> tuple[float, float]:
    """(scale, offset) of the uint8 code in `meta["decode"]`; (1.0, 0.0), the plain u8 / 255, when absent."""
    if not meta or DECODE_KEY not in meta:
        return 1.0, 0.0
    code = meta[DECODE_KEY]
    if not isinstance(code, dict) or set(code) != {"scale", "offset"}:
        raise ValueError(f"meta['{DECODE_KEY}'] must be a dict with exactly the keys 'scale' and 'offset' "
                         f"(float = u8 / 255 * scale + offset), got {code!r}")
    try:
        scale, offset = float(code["scale"]), float(code["offset"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta['{DECODE_KEY}'] scale and offset must be numbers, got {code!r}") from err
    if not (np.isfinite(scale) and np.isfinite(offset)) or scale <= 0:
        raise ValueError(f"meta['{DECODE_KEY}'] needs a finite scale > 0 and a finite offset, got {code!r}")
    return scale, offset


def decode_images(images_u8: torch.Tensor, meta: dict | None = None) -> torch.Tensor:
    """uint8 images -> float32 on their device: u8 / 255, or u8 / 255 * scale + offset when `meta` has a code.

    With no `meta["decode"]` this is exactly `images_u8.float().div_(255.0)`, bit for bit.
    """
    if not isinstance(images_u8, torch.Tensor) or images_u8.dtype != torch.uint8:
        raise TypeError(f"decode_images expects a uint8 tensor, got "
                        f"{images_u8.dtype if isinstance(images_u8, torch.Tensor) else type(images_u8).__name__}")
    scale, offset = decode_affine(meta)
    x = images_u8.float().div_(255.0)
    if (scale, offset) != (1.0, 0.0):
        x.mul_(scale).add_(offset)
    return x


def affine_code(lo: float, hi: float) -> dict:
    """The affine code {"scale", "offset"} that maps [lo, hi] onto 0..255 (scale 1 when lo == hi).

    lo, hi: finite numbers (Python, numpy or one-element torch scalars); TypeError/ValueError otherwise or for hi < lo.
    """
    lo, hi = (v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in (lo, hi))
    lo, hi = check_number(lo, "lo", "affine_code"), check_number(hi, "hi", "affine_code")
    if hi < lo:
        raise ValueError(f"affine_code needs finite lo <= hi, got [{lo}, {hi}]")
    return {"scale": (hi - lo) if hi > lo else 1.0, "offset": lo}


def encode_images(x: torch.Tensor, code: dict) -> torch.Tensor:
    """Float images -> uint8 with an affine code: floor((x - offset) / scale * 255 + 0.5).

    The inverse of `decode_images` up to half a quantisation step (scale / 510). Values outside
    [offset, offset + scale] are an error, not clipped: make the code from the data's min and max. NaN or infinite
    values are a ValueError (they would otherwise become byte 0).
    """
    x = check_finite_tensor(x, "x", "encode_images")
    scale, offset = decode_affine({DECODE_KEY: code})
    v = (x.double() - offset) * (255.0 / scale)
    lo, hi = (float(v.min()), float(v.max())) if v.numel() else (0.0, 0.0)
    if lo < -1e-6 or hi > 255.0 + 1e-6:  # float rounding only; anything more is a wrong code
        raise ValueError(f"encode_images: values span [{lo * scale / 255 + offset:.6g}, "
                         f"{hi * scale / 255 + offset:.6g}], outside the code's range "
                         f"[{offset:.6g}, {offset + scale:.6g}]; build the code with affine_code(min, max)")
    return torch.floor(v + 0.5).clamp_(0, 255).to(torch.uint8)


# --- explicit conversions ----------------------------------------------------------------------

def resize(ds: ImageSet, size: int | tuple[int, int]) -> ImageSet:
    """Resize every image to `size` (bilinear, antialiased), re-quantised to uint8.

    size: an int (square) or (height, width); TypeError for other types (e.g. 16.5), ValueError below 1.
    """
    hw = check_size(size, "size", "resize")
    if ds.image_size == hw:
        return ds
    x = F.interpolate(ds.to_float(), size=hw, mode="bilinear", align_corners=False, antialias=True)
    return ds.with_images(quantize(x.clamp_(0, 1)), resized_to=list(hw))


def pad(ds: ImageSet, size: int) -> ImageSet:
    """Zero-pad (black) every image, centred, to size x size: e.g. 28x28 Fashion-MNIST to CIFAR's 32x32.

    Raises ValueError when `size` is smaller than an image side (padding never crops) or not an int.
    """
    size = check_count(size, "size", "pad")
    h, w = ds.image_size
    if size < max(h, w):
        raise ValueError(f"pad: size {size} is smaller than the {h}x{w} images; padding never crops "
                         f"(use resize() to shrink)")
    if (h, w) == (size, size):
        return ds
    top, left = (size - h) // 2, (size - w) // 2
    x = F.pad(ds.images, (left, size - w - left, top, size - h - top))
    return ds.with_images(x, padded_to=size)


def to_rgb(ds: ImageSet) -> ImageSet:
    """Repeat a grayscale channel three times (e.g. to feed Fashion-MNIST to CIFAR models)."""
    if ds.channels == 3:
        return ds
    return ds.with_images(ds.images.repeat(1, 3, 1, 1), to_rgb=True)


def to_grayscale(ds: ImageSet, keep_channels: bool = True) -> ImageSet:
    """ITU-R 601 luma; with `keep_channels` the result keeps 3 identical channels (as ISS's Grayscale(3))."""
    keep_channels = check_bool(keep_channels, "keep_channels", "to_grayscale")
    if ds.channels == 1:
        return ds
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = (ds.to_float() * w).sum(1, keepdim=True)
    if keep_channels:
        y = y.repeat(1, 3, 1, 1)
    return ds.with_images(quantize(y.clamp_(0, 1)))


# --- loaders -------------------------------------------------------------------------------------

def _check_split(split: str) -> str:
    """'train' or 'test' (`checks.check_choice`); a non-string is a TypeError (split=1 is not a typo of a name)."""
    if not isinstance(split, str):
        raise TypeError(f"load_dataset: split must be a string ('train' or 'test'), got {type(split).__name__} "
                        f"{split!r}")
    return check_choice(split, "split", ("train", "test"), "load_dataset")


def _load_digits(split: str) -> ImageSet:
    """scikit-learn's bundled 8x8 digits (values 0..16 scaled to 0..255); fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.floor(d.images * (255.0 / 16.0) + 0.5).astype(np.uint8)[:, None]
    full = ImageSet(images, d.target.astype(np.int64), [str(i) for i in range(10)], name="digits")
    train, test = full.split(0.75, seed=0)
    out = train if split == "train" else test
    out.name = "digits"
    return out


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not; a read-only array.

    Decompressing Fashion-MNIST's training images takes about a second, and experiments load the same files
    for every run, so the decoded arrays of the last few files are kept in memory (keyed by path, size and
    modification time: a replaced file is read again).
    """
    stat = path.stat()
    return _read_idx_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_idx_cached(path: Path, _size: int, _mtime_ns: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def _find_fashion_files(split: str, root: Path | None) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    candidates = []
    if root is not None:
        candidates += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    candidates += [FASHION_MNIST_SYSTEM_DIR, data_root() / "FashionMNIST" / "raw"]
    for folder in candidates:
        for ext in (".gz", ""):
            img = folder / f"{prefix}-images-idx3-ubyte{ext}"
            lab = folder / f"{prefix}-labels-idx1-ubyte{ext}"
            if img.exists() and lab.exists():
                return img, lab
    return None


def _load_fashion_mnist(split: str, root: Path | None, download: bool) -> ImageSet:
    found = _find_fashion_files(split, root)
    if found is None and download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root or data_root()), train=(split == "train"), download=True)
        found = _find_fashion_files(split, root or data_root())
    if found is None:
        raise FileNotFoundError(
            "Fashion-MNIST not found offline. Install Debian's package (`apt-get install dataset-fashion-mnist`, "
            f"files under {FASHION_MNIST_SYSTEM_DIR}), pass download=True to fetch it with torchvision into "
            f"{root or data_root()}, or point root= at a folder holding the four *-idx?-ubyte(.gz) files."
        )
    img_path, lab_path = found
    images = _read_idx(img_path)[:, None].copy()
    labels = _read_idx(lab_path).astype(np.int64)
    return ImageSet(images, labels, FASHION_MNIST_CLASSES, name="fashion-mnist", meta={"source": str(img_path.parent)})


def _load_cifar(name: str, split: str, root: Path | None, download: bool) -> ImageSet:
    """CIFAR-10/100 from the python pickles, downloaded (MD5-checked) or placed by hand."""
    fname, md5, folder, size = CIFAR_ARCHIVES[name]
    base = root or data_root()
    extracted = base / folder
    if not extracted.exists():
        archive = base / fname
        try:
            from torchvision.datasets.utils import check_integrity, download_and_extract_archive
        except ImportError as err:  # pragma: no cover - torchvision is a dependency
            raise ImportError("torchvision is needed to download or verify CIFAR archives") from err
        if archive.exists():
            if not check_integrity(str(archive), md5):
                raise ValueError(f"{archive} is not the original archive (MD5 should be {md5}); delete it and retry")
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(base, filter="data")
        elif download:
            try:
                download_and_extract_archive(CIFAR_URL + fname, str(base), filename=fname, md5=md5)
            except Exception as err:
                raise FileNotFoundError(_cifar_manual_help(name, base, f"download failed: {err}")) from err
        else:
            raise FileNotFoundError(_cifar_manual_help(name, base, "not found offline and download=False"))
    return _read_cifar_pickles(name, split, extracted)


def _cifar_manual_help(name: str, base: Path, why: str) -> str:
    fname, md5, folder, size = CIFAR_ARCHIVES[name]
    return (
        f"{name}: {why}. Download {CIFAR_URL}{fname} (about {size}; MD5 {md5}) by hand or from a "
        f"byte-identical mirror and put it at {base / fname} (or its extracted folder at {base / folder}); "
        "then call load_dataset again. Pass root=... or set UEL_DATA to use another folder."
    )


def _read_cifar_pickles(name: str, split: str, folder: Path) -> ImageSet:
    def unpickle(p: Path) -> dict:
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing from the extracted {name} folder; re-extract the archive")
        with open(p, "rb") as fh:
            return pickle.load(fh, encoding="latin1")

    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        parts = [unpickle(folder / f) for f in files]
        data = np.concatenate([p["data"] for p in parts])
        labels = np.concatenate([np.asarray(p["labels"]) for p in parts])
        classes = CIFAR10_CLASSES
    else:
        part = unpickle(folder / split)
        data, labels = part["data"], np.asarray(part["fine_labels"])
        classes = tuple(unpickle(folder / "meta")["fine_label_names"])
    images = data.reshape(-1, 3, 32, 32).astype(np.uint8)
    return ImageSet(images, labels.astype(np.int64), classes, name=name)


def _load_cifar_fs(split: str, root: Path | None, download: bool) -> ImageSet:
    """CIFAR-FS split `split` ("train" 64, "val" 16 or "test" 20 classes): CIFAR-100's train and test images pooled
    (train first, then test; 600 per class), the split's classes relabelled 0..n-1 in the order of
    `CIFAR_FS_SPLITS[split]` (alphabetical). Reads (or downloads, MD5-checked) the CIFAR-100 archive like
    load_dataset("cifar100"). Raises ValueError when a class name is missing from the archive's fine_label_names."""
    if split not in CIFAR_FS_SPLITS:
        raise ValueError(f"cifar-fs split must be one of {', '.join(CIFAR_FS_SPLITS)}, got {split!r} (CIFAR-FS splits "
                         "by class: 64 train, 16 val, 20 test classes)")
    parts = [_load_cifar("cifar100", s, root, download) for s in ("train", "test")]
    names = parts[0].classes
    wanted = CIFAR_FS_SPLITS[split]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"cifar-fs: classes {missing} are not in the CIFAR-100 archive's fine_label_names "
                         f"({len(names)} names); is it the original cifar-100-python archive?")
    images = torch.cat([p.images for p in parts])
    labels = torch.cat([p.labels for p in parts])
    old = torch.tensor([names.index(c) for c in wanted])
    keep = torch.isin(labels, old)
    remap = torch.full((len(names),), -1, dtype=torch.int64)
    remap[old] = torch.arange(len(wanted))
    return ImageSet(images[keep].clone(), remap[labels[keep]], wanted, name="cifar-fs",
                    meta={"split": split, "cifar100_labels": old.tolist(), "pooled": "cifar100 train + test"})


def _imagefolder_split(path: str, split: str) -> Path:
    """The folder that holds split `split` of "imagefolder:PATH".

    PATH with train/ and test/ sub-folders: PATH/<split>. PATH without them (a flat folder of class sub-folders):
    the whole folder is the training split, and asking for its test split is a ValueError, since those are the
    training images (evaluating on them would report training accuracy as test accuracy). PATH with only one of
    train/ and test/: the other split is a ValueError (never a class named "train" or "test").
    """
    if not path:
        raise ValueError("load_dataset: 'imagefolder:' needs a folder after the colon, e.g. 'imagefolder:~/data/pets'")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"imagefolder: {folder} is not a folder; expected a folder of class sub-folders "
                                "(optionally inside train/ and test/)")
    has = {s: (folder / s).is_dir() for s in ("train", "test")}
    if has[split]:
        return folder / split
    if any(has.values()):
        other = "test" if split == "train" else "train"
        raise ValueError(f"load_dataset: imagefolder:{folder} has a {other}/ split but no {split}/ folder; add "
                         f"{folder / split}/<class>/<image> with the same class sub-folders as {other}/")
    if split == "test":
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise ValueError(
            f"load_dataset: imagefolder:{folder} has no test/ split (its sub-folders {_names(classes)} are the "
            "classes of one set of images), so its 'test' split would be the training images and report training "
            f"accuracy as test accuracy. Provide held-out images: move them to {folder}/train/<class>/ and "
            f"{folder}/test/<class>/ (the same class sub-folders in both), or hold out part of the training images "
            f"explicitly: train_set, test_set = load_dataset('imagefolder:{folder}', 'train').split(0.8, seed=0)"
        )
    return folder


def _load_imagefolder(path: str | Path, root: Path | None, size: tuple[int, int] | None, mode: str) -> ImageSet:
    from PIL import Image

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"imagefolder: {folder} is not a folder; expected a folder of class sub-folders")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"imagefolder: {folder} has no class sub-folders (expected {folder}/<class>/<image>.png)")
    if mode not in ("RGB", "L"):
        raise ValueError(f"imagefolder mode must be 'RGB' or 'L', got {mode!r}")
    images, labels = [], []
    for k, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            with Image.open(f) as im:
                im = im.convert(mode)
                if size is not None:
                    im = im.resize((size[1], size[0]), Image.BILINEAR)  # PIL takes (width, height)
                arr = np.asarray(im, dtype=np.uint8)
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(k)
    if not images:
        raise ValueError(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"imagefolder: images under {folder} have different sizes {sorted(shapes)[:4]}...; "
            "pass size=... to resize them all explicitly"
        )
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), classes, name=f"imagefolder:{folder.name}")


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    size: int | None = None,
    rgb: bool = False,
) -> ImageSet:
    """Load a dataset split as an ImageSet.

    name: "digits" (bundled, offline), "fashion-mnist" (Debian package or torchvision download),
    "cifar10", "cifar100" (download, MD5-checked), "cifar-fs" (CIFAR-100 pooled and split by class; split "train",
    "val" or "test") or "imagefolder:PATH".
    imagefolder:PATH reads PATH/train/<class>/<image> and PATH/test/<class>/<image>; a PATH of class sub-folders
    without train/ and test/ is a training split only ("train" reads all of it; "test" is a ValueError: hold out
    images yourself, e.g. `load_dataset("imagefolder:PATH").split(0.8)`). Classes are the sorted sub-folder names;
    train() checks that the train and test splits have the same ones.
    size: resize every image to size x size, or to (height, width) (explicit; never automatic).
    rgb: grayscale -> 3 channels. download: fetch a missing dataset. root: the data folder (default `data_root()`).

    Raises TypeError for an argument of the wrong type (a non-string name or split, a float size such as 16.5, a
    non-bool download/rgb, a root that is not a path) and ValueError for a bad value (unknown dataset or split,
    size < 1, an imagefolder without the asked split); FileNotFoundError when the data is missing offline.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a string such as 'digits' or 'imagefolder:PATH', got "
                        f"{type(name).__name__} {name!r}")
    if not isinstance(split, str):
        raise TypeError(f"load_dataset: split must be a string ('train' or 'test'; 'val' too for cifar-fs), got "
                        f"{type(split).__name__} {split!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"load_dataset: root must be a folder path (str or pathlib.Path) or None, got "
                        f"{type(root).__name__} {root!r}")
    download = check_bool(download, "download", "load_dataset")
    rgb = check_bool(rgb, "rgb", "load_dataset")
    hw = None if size is None else check_size(size, "size", "load_dataset")
    root_path = Path(root).expanduser() if root is not None else None
    key = name.lower()
    if key not in CIFAR_FS_ALIASES:
        _check_split(split)
    if key in CIFAR_FS_ALIASES:
        ds = _load_cifar_fs(split, root_path, download)
    elif key == "digits":
        ds = _load_digits(split)
    elif key in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        ds = _load_fashion_mnist(split, root_path, download)
    elif key in CIFAR_ARCHIVES:
        ds = _load_cifar(key, split, root_path, download)
    elif key.startswith("imagefolder:"):
        ds = _load_imagefolder(_imagefolder_split(name.split(":", 1)[1], split), root_path, hw, mode="RGB")
        hw = None  # already resized while reading
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    if hw is not None:
        ds = resize(ds, hw)
    if rgb:
        ds = to_rgb(ds)
    return ds


def available_datasets(root: str | os.PathLike | None = None) -> dict[str, str]:
    """For each known dataset: 'offline' if it loads here without a network, else how to get it."""
    base = Path(root).expanduser() if root is not None else data_root()
    out = {"digits": "offline (bundled with scikit-learn)"}
    found = _find_fashion_files("train", base)
    out["fashion-mnist"] = (
        f"offline ({found[0].parent})" if found else
        "missing: apt-get install dataset-fashion-mnist, or load_dataset('fashion-mnist', download=True)"
    )
    for name, (fname, _md5, folder, size) in CIFAR_ARCHIVES.items():
        if (base / folder).exists() or (base / fname).exists():
            out[name] = f"offline ({base})"
        else:
            out[name] = f"missing: load_dataset('{name}', download=True) (about {size}), or put {fname} in {base}"
    out["cifar-fs"] = (out["cifar100"] if out["cifar100"].startswith("offline") else
                       "missing: needs CIFAR-100 (load_dataset('cifar-fs', download=True) fetches it)")
    out["imagefolder:PATH"] = ("a folder with train/<class>/ and test/<class>/ sub-folders (a folder of class "
                               "sub-folders alone is a training split only)")
    return out


def synthetic_dataset(
    n_per_class: int = 50,
    num_classes: int = 10,
    channels: int = 3,
    size: int = 32,
    noise: float = 0.15,
    seed: int = 0,
    name: str = "synthetic",
) -> ImageSet:
    """Small class-structured CIFAR-shaped data for tests: a smooth random template per class plus noise.

    A model can learn it (classes differ), and it needs no network. Not a benchmark of anything.
    Raises TypeError for non-integer counts/size/channels/seed (e.g. 2.5, True), a non-number noise or a non-string
    name; ValueError for n_per_class < 1, num_classes < 1, size < 2, channels not 1 or 3, a negative or non-finite
    noise, or a negative seed.
    """
    who = "synthetic_dataset"
    n_per_class = check_count(n_per_class, "n_per_class", who)
    num_classes = check_count(num_classes, "num_classes", who)
    channels = check_choice(check_count(channels, "channels", who), "channels", (1, 3), who)
    size = check_count(size, "size", who, lo=2)
    noise = check_rate(noise, "noise", who, lo=0.0)
    seed = check_seed(seed, "seed", who)
    if not isinstance(name, str):
        raise TypeError(f"{who}: name must be a string, got {type(name).__name__} {name!r}")
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=gen)
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = templates[labels] + noise * torch.randn(len(labels), channels, size, size, generator=gen)
    perm = torch.randperm(len(labels), generator=gen)
    return ImageSet(quantize(x[perm].clamp(0, 1)), labels[perm], [f"class{k}" for k in range(num_classes)], name=name)
