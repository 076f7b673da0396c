"""`Poison`: a poisoned ImageSet plus the float perturbation and the parameters that made it."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..cache import atomic_write, tensor_fingerprint
from ..checks import check_number
from ..data import ImageSet, quantize

FORMAT = "uel-poison-2"  # v2: `classwise` stated in the header, members declared, arrays stored uncompressed


def dataset_fingerprint(ds: ImageSet) -> str:
    """Identifies a clean dataset (images and labels) so a poison can refuse to be paired with another."""
    return tensor_fingerprint(ds.images) + tensor_fingerprint(ds.labels)[:8]


class Poison:
    """The output of an attack.

    poisoned: the uint8 ImageSet a victim trains on (clipped to [0,1] and quantised, see `rounding`).
    perturbation: the attack's float32 δ before clipping and quantisation, for plots and diagnostics:
        (N, C, H, W) for sample-wise noise, (K, C, H, W) for class-wise noise (image i gets δ[label_i]),
        None when the attack is not additive (CUDA's class-wise blur, OPS's pixel replacement: their
        `info` holds what the attack is). Attacks whose δ is cheap to rebuild (LSP's patch grid, a δ
        recomputed from the seed after a cache load) give it lazily: built on first access, then kept.
    classwise: stated by the attack (never inferred from shapes: a set with one image per class has
        N == K). params: every parameter of the attack (defaults filled in); seed: its seed.
    clean_fingerprint: the fingerprint of the clean training set it was made from.
    """

    def __init__(self, attack: str, poisoned: ImageSet, perturbation: torch.Tensor | None, params: dict, seed: int,
                 clean_fingerprint: str, rounding: str = "round", info: dict | None = None, *, classwise: bool,
                 make_perturbation: Callable[[], torch.Tensor] | None = None) -> None:
        if not isinstance(classwise, bool):
            raise TypeError(f"{attack}: classwise must be True or False (stated by the attack), got {classwise!r}")
        if perturbation is not None and make_perturbation is not None:
            raise ValueError(f"{attack}: give the perturbation or a function that makes it, not both")
        self.attack = attack
        self.poisoned = poisoned
        self.params = params
        self.seed = seed
        self.clean_fingerprint = clean_fingerprint
        self.rounding = rounding
        self.info = dict(info or {})  # diagnostics (e.g. surrogate accuracy, iterations, time)
        self.classwise = classwise
        self._perturbation = perturbation
        self._make_perturbation = make_perturbation

    def __repr__(self) -> str:
        kind = "class-wise" if self.classwise else "sample-wise"
        return (f"Poison({self.attack!r}, {len(self.poisoned)} images of {self.poisoned.shape}, {kind}, "
                f"seed={self.seed}, params={self.params})")

    @property
    def has_perturbation(self) -> bool:
        """Whether the attack is additive (has a float δ), without building a lazy δ."""
        return self._perturbation is not None or self._make_perturbation is not None

    @property
    def perturbation(self) -> torch.Tensor | None:
        """The float32 δ (see the class docstring); a lazy δ is built here on first access and then kept."""
        if self._perturbation is None and self._make_perturbation is not None:
            self._perturbation = self._make_perturbation()
            self._make_perturbation = None
        return self._perturbation

    def sample_perturbation(self, index: int) -> torch.Tensor | None:
        """The float δ applied to training image `index` (looks up the class for class-wise noise)."""
        delta = self.perturbation
        if delta is None:
            return None
        return delta[int(self.poisoned.labels[index])] if self.classwise else delta[index]

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
    def save(self, path: str | os.PathLike, with_perturbation: bool = True) -> Path:
        """Save as one uncompressed `.npz` (uint8 images, labels, float32 δ, JSON header); never pickle.

        with_perturbation=False leaves δ out (the cache does so where it is cheap to recompute from the seed;
        `load(..., recompute=...)` then rebuilds it on access). The arrays are stored uncompressed: noise does
        not deflate, and zlib on it cost 8x the attack itself (issue 16, item 11).
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"Poison.save writes .npz files; got {path.name!r}")
        arrays = {"images": self.poisoned.images.numpy(), "labels": self.poisoned.labels.numpy()}
        if with_perturbation and self.perturbation is not None:
            arrays["perturbation"] = self.perturbation.detach().cpu().float().numpy()
        header = {"format": FORMAT, "attack": self.attack, "params": self.params, "seed": self.seed,
                  "clean_fingerprint": self.clean_fingerprint, "rounding": self.rounding, "info": self.info,
                  "classwise": self.classwise, "additive": self.has_perturbation,
                  "members": sorted([*arrays, "header"]),
                  "classes": list(self.poisoned.classes), "name": self.poisoned.name, "meta": self.poisoned.meta}
        arrays["header"] = np.array(json.dumps(header, default=float))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike, clean: ImageSet | None = None,
             recompute: Callable[[], Poison] | None = None) -> Poison:
        """Load a poison; with `clean`, also check that it was made from that dataset.

        Every member the header declares must be there and nothing else (a damaged member name is corruption,
        not a poison without δ). A file saved without its δ needs `recompute` (a call that rebuilds the same
        poison, e.g. the attack with the same seed); δ is then rebuilt on first access, and the rebuilt images
        must equal the stored ones byte for byte. Raises FileNotFoundError, or ValueError for anything else.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no poison file at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("format") != FORMAT:
                    raise ValueError(f"format {header.get('format')!r}, expected {FORMAT!r} (an older cache entry "
                                     "or another kind of file)")
                if sorted(z.files) != header["members"]:
                    raise ValueError(f"members {sorted(z.files)} differ from the declared {header['members']}")
                images, labels = z["images"], z["labels"]
                pert = torch.from_numpy(z["perturbation"]) if "perturbation" in z.files else None
        except (KeyError, ValueError, OSError, EOFError, TypeError) as err:
            raise ValueError(f"{path} is not a readable poison .npz file ({err})") from err
        ds = ImageSet(images, labels, header["classes"], name=header["name"], meta=header.get("meta", {}))
        make = None
        if pert is None and header["additive"]:
            if recompute is None:
                raise ValueError(f"{path} was saved without its perturbation; load it with recompute=... "
                                 "(make_poison does this for you)")
            make = _checked_recompute(recompute, ds, header["attack"])
        poison = cls(header["attack"], ds, pert, header["params"], header["seed"], header["clean_fingerprint"],
                     header["rounding"], header["info"], classwise=header["classwise"], make_perturbation=make)
        if clean is not None:
            poison.check_matches(clean)
        return poison


def _checked_recompute(recompute: Callable[[], Poison], stored: ImageSet, attack: str) -> Callable[[], torch.Tensor]:
    def make() -> torch.Tensor:
        again = recompute()
        if not torch.equal(again.poisoned.images, stored.images):
            raise RuntimeError(f"{attack}: recomputing the perturbation from the seed gave other images than the "
                               "cached ones (a non-deterministic attack?); clear the cache entry and rebuild")
        return again.perturbation
    return make


_CHUNK_BYTES = 16 * 2**20  # float32 bytes per chunk in poison_from_delta


def poison_from_delta(
    attack: str,
    clean: ImageSet,
    delta: torch.Tensor | Callable[[int, int], torch.Tensor],
    params: dict,
    seed: int,
    rounding: str = "round",
    info: dict | None = None,
    *,
    classwise: bool,
) -> Poison:
    """Build a Poison from an additive float δ: x̃ = quantise(clip(x + δ, 0, 1)).

    delta: float (K, C, H, W) with classwise=True (image i gets δ[label_i]) or (N, C, H, W) with
    classwise=False; or, sample-wise only, a function rows(start, stop) -> δ[start:stop] that builds δ in
    chunks from a compact form (LSP's patch grid), so poisoning needs memory of the order of the data, and
    the Poison builds the dense δ only when asked. classwise is stated by the attack, never guessed.
    Raises ValueError for a δ of the wrong shape or with NaN/inf values.
    """
    n, k = len(clean), clean.num_classes
    if callable(delta):
        if classwise:
            raise ValueError(f"{attack}: a chunked δ is sample-wise; pass a class-wise δ as a (K, C, H, W) tensor")
        rows = delta
    else:
        delta = delta.detach().float().cpu()
        expected = (k if classwise else n, *clean.shape)
        if tuple(delta.shape) != expected:
            kind = "class-wise (K" if classwise else "sample-wise (N"
            raise ValueError(f"{attack}: a {kind}, C, H, W) perturbation for this dataset has shape {expected}, "
                             f"got {tuple(delta.shape)}")

        def rows(start: int, stop: int) -> torch.Tensor:
            return delta[clean.labels[start:stop]] if classwise else delta[start:stop]
    images = torch.empty_like(clean.images)
    # Chunks of ~16 MB of float keep the temporaries small at any N and image size (the result is elementwise,
    # so the bytes are the same as in one pass).
    chunk = max(1, _CHUNK_BYTES // (4 * math.prod(clean.shape)))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d = rows(start, stop)
        if not torch.isfinite(d).all():
            raise ValueError(f"{attack}: the perturbation contains NaN or Inf values (images {start}..{stop - 1})")
        x = clean.images[start:stop].float().div_(255.0).add_(d).clamp_(0.0, 1.0)
        images[start:stop] = quantize(x, rounding)
    _warn_if_unchanged(attack, clean, images, params)
    poisoned = clean.with_images(images, name=f"{clean.name}+{attack}", attack=attack)
    dense, make = (None, (lambda: rows(0, n).contiguous())) if callable(delta) else (delta, None)
    return Poison(attack, poisoned, dense, dict(params), int(seed), dataset_fingerprint(clean), rounding,
                  dict(info or {}), classwise=classwise, make_perturbation=make)


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
    perturbation: torch.Tensor | None = None, rounding: str = "round", info: dict | None = None, *,
    classwise: bool,
) -> Poison:
    """Build a Poison from already-quantised uint8 images (non-additive attacks such as CUDA and OPS, whose
    `info` says what the attack is); `classwise` is stated by the attack."""
    _warn_if_unchanged(attack, clean, images, params)
    poisoned = clean.with_images(images, name=f"{clean.name}+{attack}", attack=attack)
    return Poison(attack, poisoned, perturbation, dict(params), int(seed), dataset_fingerprint(clean), rounding,
                  dict(info or {}), classwise=classwise)


def check_uint8_imageset(ds: ImageSet, attack: str) -> None:
    """Attacks take clean, non-empty ImageSets (uint8): TypeError for anything else, ValueError when empty."""
    if not isinstance(ds, ImageSet):
        raise TypeError(
            f"{attack}: expected an ImageSet of uint8 images (load_dataset(...)), got {type(ds).__name__}"
        )
    if len(ds) == 0:
        raise ValueError(f"{attack}: the training set (train_set) is empty; there is nothing to poison")


def check_eps(eps: float, norm: str, attack: str, shape: tuple[int, int, int] | None = None) -> float:
    """Validate a perturbation budget in [0,1] pixel units: L∞ in (0, 1], L2 in (0, sqrt(C·H·W)]."""
    eps = check_number(eps, "eps", attack)  # numpy scalars are numbers; bools, NaN and inf are not
    if eps <= 0:
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
