"""AutoProtoNet's human-in-the-loop prototype refinement: move one class's prototype along the straight path towards
a better exemplar's embedding, decode the path, and let a person pick the point that looks right.

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929, its case study. Upstream code psandovalsegura/AdversarialQuerying@9992e0e:
`Paper - Case Study.ipynb` (a 5-way 1-shot task of the authors' phone photos, stored outputs: 80% -> 98% on 50
queries once the frying-pan prototype is moved to alpha = 0.7) with `vis_prototypes.py` (`show_interpolation`,
`logits_using_prototypes`). No gradient step is involved. Our task is an offline stand-in (one class's support image
occluded or shifted), not the paper's photos.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageSet
from .decoding import decode_embeddings, decode_prototypes, embed_images
from .episodes import EpisodeSampler, _check_set
from .model import AutoProtoNet, protonet_logits
from .trained import TrainedProtoNet, _model_of

PAPER_ALPHAS = tuple(i / 10 for i in range(10))  # the case study's path: alpha = i / 10, i = 0..9 (alpha = 1 not shown)


def _check_alpha(alpha: float, what: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1] (0 = the old prototype, 1 = the exemplar), got {alpha!r}")
    return float(alpha)


def interpolate(c: torch.Tensor, e: torch.Tensor, alphas: Sequence[float] = PAPER_ALPHAS) -> torch.Tensor:
    """The path p(alpha) = c + alpha * (e - c) from prototype c (D,) towards exemplar embedding e (D,) (the case study's
    `show_interpolation`; the paper uses alpha = i/10, i = 0..9). Returns (len(alphas), D); alpha = 0 gives c, alpha = 1
    gives e exactly. Raises ValueError for shapes that differ or alphas outside [0, 1]."""
    c, e = torch.as_tensor(c).float(), torch.as_tensor(e).float()
    if c.ndim != 1 or c.shape != e.shape:
        raise ValueError(f"interpolate: c and e must be two embeddings (D,) of the same size, got {tuple(c.shape)} "
                         f"and {tuple(e.shape)}")
    a = torch.tensor([_check_alpha(x, "alphas[i]") for x in alphas], dtype=c.dtype)[:, None]
    return torch.where(a == 1.0, e, c + a * (e - c))  # alpha = 1 is e bit for bit


def refine(prototypes: torch.Tensor, k: int, alpha: float, e: torch.Tensor) -> torch.Tensor:
    """A copy of prototypes (N, D) with row k replaced by c_k + alpha * (e - c_k) (the case study's last step: the
    person's choice). Raises ValueError for k outside 0..N-1, alpha outside [0, 1] or e of the wrong size."""
    p = torch.as_tensor(prototypes).float()
    if p.ndim != 2:
        raise ValueError(f"refine: prototypes must be (N, D), got {tuple(p.shape)}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < p.shape[0]:
        raise ValueError(f"refine: k must be a class index in 0..{p.shape[0] - 1}, got {k!r}")
    out = p.clone()
    out[k] = interpolate(p[k], e, [_check_alpha(alpha)])[0]
    return out


def prototype_accuracy(prototypes: torch.Tensor, query_embeddings: torch.Tensor, query_labels: torch.Tensor) -> float:
    """Accuracy in [0, 1] of nearest-prototype classification, logits -||q - c||^2 / d without scale (as the case
    study's `logits_using_prototypes`). prototypes (N, D), query_embeddings (Q, D), query_labels (Q,)."""
    logits = protonet_logits(query_embeddings.float(), prototypes.float())
    return float((logits.argmax(-1) == torch.as_tensor(query_labels)).float().mean())


# --- the case study, rebuilt: a task with a poor exemplar, and the path towards a better one --------------

CORRUPTIONS = ("occlude", "shift")


def _corrupt(x: torch.Tensor, how: str) -> torch.Tensor:
    """uint8 image (C, H, W) -> a poor exemplar: `occlude` blacks out the centred square of side 5/8 of the image;
    `shift` translates it by half its width (zero fill), so most of the object leaves the frame."""
    c, h, w = x.shape
    out = x.clone()
    if how == "occlude":
        sh, sw = (5 * h + 7) // 8, (5 * w + 7) // 8
        top, left = (h - sh) // 2, (w - sw) // 2
        out[:, top:top + sh, left:left + sw] = 0
    elif how == "shift":
        d = w // 2
        out = torch.zeros_like(x)
        out[:, :, d:] = x[:, :, :w - d]
    else:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {how!r}")
    return out


@dataclass
class RefinementTask:
    """A way-way shot-shot task with held-out queries and spare exemplars per class; one class's support is poor.

    support uint8 (way, shot, C, H, W) (the bad class's images corrupted), clean_support the same uncorrupted,
    query uint8 (way * query, C, H, W) with query_labels (way * query,) in 0..way-1, exemplars uint8
    (way, n_exemplars, C, H, W) other images of each class (candidates for x_new), bad_class the poor class's position,
    classes its names, dataset_labels the dataset labels of the positions."""

    support: torch.Tensor
    clean_support: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    exemplars: torch.Tensor
    bad_class: int
    classes: tuple[str, ...]
    dataset_labels: tuple[int, ...]
    corruption: str

    @property
    def way(self) -> int:
        return int(self.support.shape[0])

    @property
    def support_labels(self) -> torch.Tensor:
        return torch.arange(self.way).repeat_interleave(self.support.shape[1])


def make_refinement_task(ds: ImageSet, way: int = 5, shot: int = 1, query: int = 15, n_exemplars: int = 3,
                         bad_class: int = 0, corruption: str = "occlude", seed: int = 0) -> RefinementTask:
    """Draw a task from `ds` (its classes should be novel to the model): `way` random classes, `shot` support, `query`
    held-out queries and `n_exemplars` spare images per class, all distinct; the support of class position `bad_class`
    is corrupted (`occlude` or `shift`, see `_corrupt`). This is our offline stand-in for the paper's phone-photo task
    (see this module's docstring), not that task. Raises ValueError for bad_class outside 0..way-1, an unknown
    corruption, or too few classes / images (from `EpisodeSampler`)."""
    _check_set(ds, "make_refinement_task: ds")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    if isinstance(bad_class, bool) or not isinstance(bad_class, numbers.Integral) or not 0 <= bad_class < way:
        raise ValueError(f"bad_class must be a class position in 0..{way - 1}, got {bad_class!r}")
    ep = EpisodeSampler(ds.labels, way, shot + n_exemplars, query, seed=seed).sample(1)
    sup_idx = ep.support[0, :, :shot]
    ex_idx = ep.support[0, :, shot:]
    q_idx = ep.query[0].reshape(-1)
    clean = ds.images[sup_idx]                                      # (way, shot, C, H, W)
    support = clean.clone()
    for j in range(shot):
        support[bad_class, j] = _corrupt(clean[bad_class, j], corruption)
    labels = ep.classes[0].tolist()
    return RefinementTask(support, clean, ds.images[q_idx], torch.arange(way).repeat_interleave(query),
                          ds.images[ex_idx], int(bad_class), tuple(ds.classes[k] for k in labels), tuple(labels),
                          corruption)


@dataclass
class RefinementPath:
    """Everything the α-path figures and the explorer show, precomputed: prototypes (way, D), decoded prototypes
    (way, C, H, W), exemplar embedding e (D,) and its decoding (C, H, W), the path's alphas (A,), embeddings
    (A, D), decoded images (A, C, H, W), and the held-out query accuracy (A,) with the class's prototype at each
    alpha (a diagnostic of ours: it uses the held-out queries, so it is not a rule for choosing alpha)."""

    k: int
    prototypes: torch.Tensor
    decoded_prototypes: torch.Tensor
    exemplar: torch.Tensor
    decoded_exemplar: torch.Tensor
    alphas: np.ndarray
    path: torch.Tensor
    decoded_path: torch.Tensor
    accuracy: np.ndarray
    query_embeddings: torch.Tensor
    query_labels: torch.Tensor

    def accuracy_at(self, alpha: float) -> float:
        """Held-out accuracy with prototype k refined to `alpha` (any alpha in [0, 1], not only the path's)."""
        return prototype_accuracy(refine(self.prototypes, self.k, alpha, self.exemplar), self.query_embeddings,
                                  self.query_labels)


def refinement_path(model: AutoProtoNet | TrainedProtoNet, task: RefinementTask, k: int | None = None,
                    exemplar: int = 0, alphas: Sequence[float] = (*PAPER_ALPHAS, 1.0),
                    device: str | torch.device | None = "cpu") -> RefinementPath:
    """Decode the α path of class k (default: the task's bad class) towards its spare exemplar `exemplar` and measure
    the held-out accuracy at every alpha (the case study's steps, plus our diagnostic curve). Default alphas: the
    paper's 0, 0.1, ..., 0.9 and 1 (e itself, which the paper does not offer). Raises ValueError for k or exemplar out
    of range or a model without a decoder."""
    m = _model_of(model)
    k = task.bad_class if k is None else k
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < task.way:
        raise ValueError(f"k must be a class position in 0..{task.way - 1}, got {k!r}")
    n_ex = task.exemplars.shape[1]
    if isinstance(exemplar, bool) or not isinstance(exemplar, numbers.Integral) or not 0 <= exemplar < n_ex:
        raise ValueError(f"exemplar must be in 0..{n_ex - 1} (the task's spare images of the class), got {exemplar!r}")
    c, h, w = task.support.shape[2:]
    protos, decoded = decode_prototypes(m, task.support.reshape(-1, c, h, w), task.support_labels, task.way, device)
    e = embed_images(m, task.exemplars[k, exemplar][None], device=device)[0]
    q_emb = embed_images(m, task.query, device=device)
    a = np.asarray([_check_alpha(x, "alphas[i]") for x in alphas], dtype=np.float64)
    path = interpolate(protos[k], e, a.tolist())
    decoded_path = decode_embeddings(m, torch.cat([path, e[None]]), device=device)
    acc = np.array([prototype_accuracy(refine(protos, k, float(x), e), q_emb, task.query_labels) for x in a])
    return RefinementPath(int(k), protos, decoded, e, decoded_path[-1], a, path, decoded_path[:-1], acc, q_emb,
                          task.query_labels)
