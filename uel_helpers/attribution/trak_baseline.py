"""TRAK (MadryLab's `traker` package) as a baseline on the same evaluation (Park et al. 2023, arXiv 2303.14186;
traker 0.3.2 = MadryLab/trak@35f8446).

TRAK scores every training image for every target with gradients of M trained checkpoints, randomly projected to
`proj_dim`; we convert its (N_train, T) scores to the same class-conditioned top-k lists as ESVM and l2knn. The
maintainers' fair setting is proj_dim 20,000 and more than 10 checkpoints (MadryLab/trak#22); anything smaller is a
straw man, and `TrakSettings.is_straw_man` says so. The CPU `BasicProjector` is used (the fast_jl CUDA projector
returns zeros or errors on some CUDA versions: trak#81/#82).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data import ImageSet, check_imageset, check_same_classes
from ..progress import progress
from ..training import Protocol, get_protocol, train
from .scores import Attribution, from_score_matrix

FAIR_PROJ_DIM = 20_000   # MadryLab/trak#22: the TRAK paper's CIFAR-10 setting
FAIR_CHECKPOINTS = 10    # "... only after using >10 checkpoints"


def _traker():
    try:
        from trak import TRAKer
        from trak.projectors import BasicProjector, ProjectionType
    except ImportError as err:
        raise ImportError("the TRAK baseline needs MadryLab's `traker` package: pip install "
                          "'uel_helpers[attribution]' (or pip install traker)") from err
    return TRAKer, BasicProjector, ProjectionType


@dataclass(frozen=True)
class TrakSettings:
    proj_dim: int = 2048      # traker's default; the paper's CIFAR-10 setting is 20,000
    checkpoints: int = 3      # traker's quickstart; the maintainers need > 10 to match datamodels
    batch_size: int = 64

    @property
    def is_straw_man(self) -> bool:
        return self.proj_dim < FAIR_PROJ_DIM or self.checkpoints <= FAIR_CHECKPOINTS

    def describe(self) -> str:
        note = (f" (below the maintainers' fair setting: proj_dim {FAIR_PROJ_DIM:,}, > {FAIR_CHECKPOINTS} "
                f"checkpoints; MadryLab/trak#22: a straw man)") if self.is_straw_man else ""
        return f"TRAK, proj_dim {self.proj_dim}, {self.checkpoints} checkpoints{note}"


def train_checkpoints(train_set: ImageSet, protocol: Protocol | str, n: int, device="auto", quiet: bool = True,
                      first_seed: int = 100) -> list[torch.nn.Module]:
    """n independently trained models (seeds first_seed.. ) to featurize with TRAK.

    Raises TypeError when train_set is not an ImageSet, ValueError when it is empty."""
    check_imageset(train_set, "train_set", "train_checkpoints")
    models = []
    for s in progress(range(first_seed, first_seed + n), desc="TRAK checkpoints", quiet=quiet):
        _, model = train(train_set, train_set.subset(range(min(len(train_set), 10))), get_protocol(protocol), seed=s,
                         device=device, quiet=True, return_model=True)
        models.append(model.eval())
    return models


def _batches(data: ImageSet, size: int, device):
    for start in range(0, len(data), size):
        x = data.images[start:start + size].to(device).float().div(255.0)
        yield x, data.labels[start:start + size].to(device)


def trak_attribution(models: Sequence[torch.nn.Module], train_set: ImageSet, test_set: ImageSet, k: int,
                     settings: TrakSettings | None = None, label_conditioning: bool = True,
                     test_indices: Sequence[int] | None = None, device: str = "cpu", quiet: bool = True
                     ) -> tuple[Attribution, torch.Tensor]:
    """TRAK scores of `models` (trained checkpoints taking [0,1] images) converted to top-k lists.

    Returns (Attribution named "trak", the raw (N_train, T) score matrix). test_indices: which images of
    `test_set` to score (default all). Raises TypeError when a set is not an ImageSet; ValueError for an empty set or
    sets with different classes (names and order: label conditioning compares test labels with training labels).
    """
    check_imageset(train_set, "train_set", "trak_attribution")
    check_imageset(test_set, "test_set", "trak_attribution")
    check_same_classes(train_set, test_set, "trak_attribution")
    settings = settings or TrakSettings()
    if len(models) < 1:
        raise ValueError("models: TRAK needs at least one trained checkpoint")
    TRAKer, BasicProjector, ProjectionType = _traker()
    idx = list(range(len(test_set))) if test_indices is None else [int(i) for i in test_indices]
    targets = test_set.subset(idx)
    t0 = time.perf_counter()
    model = models[0]
    grad_dim = sum(p.numel() for p in model.parameters())
    # traker 0.3.2: a BasicProjector of a single block (proj_dim <= block_size) frees its matrix after
    # finalize_features and then fails to score (AttributeError 'proj_matrix'); two or more blocks regenerate it.
    block = min(100, max(1, settings.proj_dim // 2))
    projector = BasicProjector(grad_dim=grad_dim, proj_dim=settings.proj_dim, seed=0, block_size=block,
                               proj_type=ProjectionType.rademacher, device=torch.device(device))
    with tempfile.TemporaryDirectory(prefix="uel-trak-") as save_dir:
        traker = TRAKer(model=model, task="image_classification", train_set_size=len(train_set), save_dir=save_dir,
                        device=device, projector=projector, proj_dim=settings.proj_dim, use_half_precision=False,
                        logging_level=logging.WARNING)
        for mid, ckpt in enumerate(progress(models, desc="TRAK featurize", quiet=quiet)):
            traker.load_checkpoint(ckpt.state_dict(), model_id=mid)
            for x, y in _batches(train_set, settings.batch_size, device):
                traker.featurize(batch=(x, y), num_samples=len(x))
        traker.finalize_features()
        for mid, ckpt in enumerate(models):
            traker.start_scoring_checkpoint(exp_name="uel", checkpoint=ckpt.state_dict(), model_id=mid,
                                            num_targets=len(targets))
            for x, y in _batches(targets, settings.batch_size, device):
                traker.score(batch=(x, y), num_samples=len(x))
        scores = torch.as_tensor(traker.finalize_scores(exp_name="uel")).float()
    att = from_score_matrix(scores, train_set.labels, test_set.labels, k, "trak", label_conditioning, idx,
                            time.perf_counter() - t0)
    return att, scores
