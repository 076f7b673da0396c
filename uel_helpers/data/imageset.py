"""`ImageSet`: uint8 images (N, C, H, W), int64 labels and class names — every dataset, clean or poisoned.

Also the checks every function that takes a set uses (`check_imageset`, `check_same_classes`), rounding floats
to bytes (`quantize`) and the affine uint8 codes of images outside [0, 1] (`affine_code`, `encode_images`,
`decode_images`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import (
    check_choice,
    check_count,
    check_finite_tensor,
    check_number,
    check_rate,
    check_seed,
)


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
