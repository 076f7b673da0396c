"""`Poison`: a poisoned ImageSet plus the float perturbation and the parameters that made it."""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cache import atomic_write, tensor_fingerprint
from ..data import ImageSet, quantize


def dataset_fingerprint(ds: ImageSet) -> str:
    """Identifies a clean dataset (images and labels) so a poison can refuse to be paired with another."""
    return tensor_fingerprint(ds.images) + tensor_fingerprint(ds.labels)[:8]


@dataclass
class Poison:
    """The output of an attack.

    poisoned: the uint8 ImageSet a victim trains on (clipped to [0,1] and quantised, see `rounding`).
    perturbation: the attack's float δ before clipping and quantisation, for plots and diagnostics:
        shape (N, C, H, W) for sample-wise noise, (K, C, H, W) for class-wise noise, None when the
        attack is not additive (e.g. CUDA's class-wise blur).
    params: every parameter of the attack (with defaults filled in); seed: its seed.
    clean_fingerprint: the fingerprint of the clean training set it was made from.
    """

    attack: str
    poisoned: ImageSet
    perturbation: torch.Tensor | None
    params: dict
    seed: int
    clean_fingerprint: str
    rounding: str = "round"
    info: dict = field(default_factory=dict)  # diagnostics (e.g. surrogate accuracy, iterations, time)

    @property
    def classwise(self) -> bool:
        p = self.perturbation
        return p is not None and p.shape[0] == self.poisoned.num_classes and p.shape[0] != len(self.poisoned)

    def sample_perturbation(self, index: int) -> torch.Tensor | None:
        """The float δ applied to training image `index` (looks up the class for class-wise noise)."""
        if self.perturbation is None:
            return None
        if self.classwise:
            return self.perturbation[int(self.poisoned.labels[index])]
        return self.perturbation[index]

    def effective_perturbation(self, clean: ImageSet) -> torch.Tensor:
        """What the victim really sees: stored poisoned image - clean image, in [0,1] units."""
        self.check_matches(clean)
        return self.poisoned.to_float() - clean.to_float()

    def check_matches(self, clean: ImageSet) -> None:
        """Raise ValueError if `clean` is not the dataset this poison was made from."""
        if clean.shape != self.poisoned.shape or len(clean) != len(self.poisoned):
            raise ValueError(
                f"poison {self.attack!r} was made for {len(self.poisoned)} images of shape {self.poisoned.shape}, "
                f"but the dataset has {len(clean)} of shape {clean.shape}; regenerate it with make_poison(...)"
            )
        if dataset_fingerprint(clean) != self.clean_fingerprint:
            raise ValueError(
                f"poison {self.attack!r} was made from another dataset (fingerprint {self.clean_fingerprint}, "
                f"this one {dataset_fingerprint(clean)}); regenerate it with make_poison(...)"
            )

    # --- storage ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save as one `.npz` (poisoned images, labels, perturbation, JSON parameters); never pickle."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"Poison.save writes .npz files; got {path.name!r}")
        header = {"format": "uel-poison-1", "attack": self.attack, "params": self.params, "seed": self.seed,
                  "clean_fingerprint": self.clean_fingerprint, "rounding": self.rounding, "info": self.info,
                  "classes": list(self.poisoned.classes), "name": self.poisoned.name, "meta": self.poisoned.meta}
        arrays = {"images": self.poisoned.images.numpy(), "labels": self.poisoned.labels.numpy(),
                  "header": np.array(json.dumps(header, default=float))}
        if self.perturbation is not None:
            arrays["perturbation"] = self.perturbation.detach().cpu().float().numpy()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike, clean: ImageSet | None = None) -> Poison:
        """Load a poison; with `clean`, also check that it was made from that dataset."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no poison file at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                images, labels = z["images"], z["labels"]
                pert = torch.from_numpy(z["perturbation"]) if "perturbation" in z.files else None
        except (KeyError, ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable poison .npz file ({err})") from err
        if header.get("format") != "uel-poison-1":
            raise ValueError(f"{path} is not a poison file (format {header.get('format')!r})")
        ds = ImageSet(images, labels, header["classes"], name=header["name"], meta=header.get("meta", {}))
        poison = cls(header["attack"], ds, pert, header["params"], header["seed"], header["clean_fingerprint"],
                     header.get("rounding", "round"), header.get("info", {}))
        if clean is not None:
            poison.check_matches(clean)
        return poison


_CHUNK = 4096  # images per float chunk in poison_from_delta


def poison_from_delta(
    attack: str,
    clean: ImageSet,
    delta: torch.Tensor,
    params: dict,
    seed: int,
    rounding: str = "round",
    info: dict | None = None,
) -> Poison:
    """Build a Poison from an additive float δ: x̃ = quantise(clip(x + δ, 0, 1)).

    δ is (N, C, H, W) sample-wise or (K, C, H, W) class-wise (indexed by label).
    """
    delta = delta.detach().float().cpu()
    n, k = len(clean), clean.num_classes
    if delta.ndim != 4 or tuple(delta.shape[1:]) != clean.shape or delta.shape[0] not in (n, k):
        raise ValueError(
            f"{attack}: perturbation of shape {tuple(delta.shape)} fits neither sample-wise ({n}, *{clean.shape}) "
            f"nor class-wise ({k}, *{clean.shape}) noise for this dataset"
        )
    if not torch.isfinite(delta).all():
        raise ValueError(f"{attack}: the perturbation contains NaN or Inf values")
    classwise = delta.shape[0] != n
    images = torch.empty_like(clean.images)
    # Chunks keep the float temporaries small (the result is elementwise, so the bytes are the same).
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        d = delta[clean.labels[start:stop]] if classwise else delta[start:stop]
        x = clean.images[start:stop].float().div_(255.0).add_(d).clamp_(0.0, 1.0)
        images[start:stop] = quantize(x, rounding)
    _warn_if_unchanged(attack, clean, images, params)
    poisoned = clean.with_images(images, name=f"{clean.name}+{attack}", attack=attack)
    return Poison(attack, poisoned, delta, dict(params), int(seed), dataset_fingerprint(clean), rounding,
                  dict(info or {}))


def _warn_if_unchanged(attack: str, clean: ImageSet, images: torch.Tensor, params: dict) -> None:
    """A poison whose stored bytes equal the clean set's is a silent no-op: say so (e.g. eps*255 < 0.5 rounds
    every change away)."""
    if torch.equal(images, clean.images):
        eps = params.get("eps")
        why = (f"eps = {eps:.4g} is {255 * eps:.2f} grey levels, below the 0.5 that survives rounding to uint8"
               if isinstance(eps, float) and 255 * eps < 0.5 else "every change was clipped or rounded away")
        warnings.warn(f"{attack}: the poisoned images are byte for byte the clean ones ({why}); the poison is a "
                      "no-op. Use a larger eps (e.g. 8/255).", UserWarning, stacklevel=3)


def poison_from_images(
    attack: str, clean: ImageSet, images: torch.Tensor, params: dict, seed: int,
    perturbation: torch.Tensor | None = None, rounding: str = "round", info: dict | None = None,
) -> Poison:
    """Build a Poison from already-quantised uint8 images (non-additive attacks such as CUDA)."""
    _warn_if_unchanged(attack, clean, images, params)
    poisoned = clean.with_images(images, name=f"{clean.name}+{attack}", attack=attack)
    return Poison(attack, poisoned, perturbation, dict(params), int(seed), dataset_fingerprint(clean), rounding,
                  dict(info or {}))


def check_uint8_imageset(ds: ImageSet, attack: str) -> None:
    """Attacks take clean ImageSets (uint8); anything else is a clear TypeError."""
    if not isinstance(ds, ImageSet):
        raise TypeError(
            f"{attack}: expected an ImageSet of uint8 images (load_dataset(...)), got {type(ds).__name__}"
        )


def check_eps(eps: float, norm: str, attack: str, shape: tuple[int, int, int] | None = None) -> float:
    """Validate a perturbation budget in [0,1] pixel units: L∞ in (0, 1], L2 in (0, sqrt(C·H·W)]."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{attack}: eps must be a number, got {type(eps).__name__}")
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"{attack}: eps must be a positive number, got {eps}")
    if norm == "linf" and eps > 1:
        raise ValueError(
            f"{attack}: an L-inf eps of {eps} exceeds the whole [0,1] pixel range; "
            f"budgets are in [0,1] units (8/255 = {8 / 255:.4f}, not 8)"
        )
    if norm == "l2" and shape is not None:
        limit = math.sqrt(math.prod(shape))
        if eps > limit:
            raise ValueError(f"{attack}: an L2 eps of {eps} exceeds the largest possible norm {limit:.1f} "
                             f"for images of shape {shape}")
    return float(eps)
