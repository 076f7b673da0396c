"""Feature-space attribution: rank training images for each test image (Singla et al. 2023, arXiv
2311.03386; vasusingla/simple-data-attribution@d2016b4 `features_to_topk_matrix.py`).

`l2knn`: raw Euclidean distance (no normalisation), closest first, as the reference. `esvm`: one exemplar SVM per test
image, `LinearSVC(class_weight="balanced", C=0.1, max_iter=10000, tol=1e-6)` fit on [test feature; candidates] with
labels [1, 0, ..., 0]; candidates ranked by decision value, highest first. `cosine` is a labelled variant, not the
paper's. With label conditioning (the default) the candidates are the training images of the test image's true
class. Scores are rankings only (the reference keeps no magnitudes): the output is the top-k training indices per
test image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import check_count

METHODS = ("esvm", "l2knn", "cosine")
ESVM_C = 0.1  # features_to_topk_matrix.py: LinearSVC(class_weight="balanced", C=0.1, max_iter=10000, tol=1e-6)


@dataclass
class Attribution:
    """Top-k attributed training images per test image.

    indices: int64 (T, k), indices into the training set, most attributed first.
    scores: float32 (T, k), higher = more attributed (minus the distance for l2knn; SVM decision value for esvm).
    test_indices: int64 (T,), the test images' indices in the test set they came from.
    """

    method: str
    indices: torch.Tensor
    scores: torch.Tensor
    test_indices: torch.Tensor
    label_conditioning: bool
    seconds: float

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def top(self, test_index: int, m: int | None = None) -> list[int]:
        """The first `m` (default k) attributed training indices of the test image `test_index` (a test-set index)."""
        rows = (self.test_indices == int(test_index)).nonzero().flatten()
        if len(rows) == 0:
            raise ValueError(f"test_index {test_index} was not attributed by {self.method!r}; attributed: "
                             f"{self.test_indices.tolist()[:20]}")
        return self.indices[int(rows[0]), : (m or self.k)].tolist()


def _as_features(x, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 2 or not t.dtype.is_floating_point:
        raise ValueError(f"{what}: expected a float matrix (N, D), got {tuple(t.shape)} {t.dtype}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what}: contains NaN or inf")
    return t.float().cpu()


def _as_labels(y, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if t.dtype.is_floating_point or t.ndim != 1 or len(t) != n:
        raise ValueError(f"{what}: expected {n} integer labels (1-D), got {tuple(t.shape)} {t.dtype}")
    return t.long().cpu()


def check_inputs(train_features, train_labels, test_features, test_labels, test_indices=None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated (train_features, train_labels, test_features, test_labels, test_indices): clear ValueErrors for
    mismatched feature dimensions, label counts and test indices out of range."""
    tr = _as_features(train_features, "train_features")
    te = _as_features(test_features, "test_features")
    if tr.shape[1] != te.shape[1]:
        raise ValueError(f"test_features have dimension {te.shape[1]} but train_features {tr.shape[1]}: features "
                         f"must come from the same backbone")
    ytr = _as_labels(train_labels, tr.shape[0], "train_labels")
    yte = _as_labels(test_labels, te.shape[0], "test_labels")
    if test_indices is None:
        idx = torch.arange(te.shape[0])
    else:
        idx = torch.as_tensor(np.asarray(test_indices), dtype=torch.int64).reshape(-1)
        bad = idx[(idx < 0) | (idx >= te.shape[0])]
        if len(bad):
            raise ValueError(f"test_indices: {bad.tolist()[:5]} out of range for {te.shape[0]} test images "
                             f"(valid: 0..{te.shape[0] - 1})")
    return tr, ytr, te, yte, idx


def candidates_for(label: int, train_labels: torch.Tensor, k: int, label_conditioning: bool) -> torch.Tensor:
    """Training indices a test image of class `label` may be attributed to; ValueError when fewer than k."""
    cand = (train_labels == label).nonzero().flatten() if label_conditioning else torch.arange(len(train_labels))
    if k > len(cand):
        where = f"class {label} has {len(cand)} training images" if label_conditioning else \
            f"the training set has {len(cand)} images"
        raise ValueError(f"k={k} is larger than the candidates: {where}; use k <= {len(cand)}"
                         + (" or label_conditioning=False" if label_conditioning else ""))
    return cand


def _esvm_scores(test_feature: np.ndarray, cand_features: np.ndarray, C: float) -> np.ndarray:
    """Decision values of an exemplar SVM (the test image the single positive) on the candidates."""
    from sklearn.svm import LinearSVC

    x = np.concatenate([test_feature[None], cand_features])
    y = np.zeros(len(x), dtype=np.int64)
    y[0] = 1
    svm = LinearSVC(class_weight="balanced", C=C, max_iter=10000, tol=1e-6)
    svm.fit(x, y)
    return svm.decision_function(cand_features)


def attribute(train_features, train_labels, test_features, test_labels, method: str = "esvm", k: int = 1280,
              label_conditioning: bool = True, test_indices: Sequence[int] | None = None, n_jobs: int = -1,
              C: float = ESVM_C) -> Attribution:
    """Top-k training images for each test image by `method` ("esvm", "l2knn" or the variant "cosine").

    train_features: float (N, D); train_labels: int (N,); test_features: float (T, D); test_labels: int (T,), the
    test images' true labels (label conditioning uses them, as the reference). test_indices: which test images to
    attribute (default all). k: paper 1280 (`features_to_topk_matrix.py`). ESVM fits run in parallel over test
    images (joblib, `n_jobs`); each is independent.
    Raises ValueError for an unknown method, mismatched feature dimensions, test indices out of range, or k larger
    than the candidates (a class's training images, with label conditioning).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    k = check_count(k, "k", "attribute")
    tr, ytr, te, yte, idx = check_inputs(train_features, train_labels, test_features, test_labels, test_indices)
    for t in idx.tolist():
        candidates_for(int(yte[t]), ytr, k, label_conditioning)
    t0 = time.perf_counter()
    out_idx = torch.zeros(len(idx), k, dtype=torch.int64)
    out_score = torch.zeros(len(idx), k, dtype=torch.float32)
    if method == "esvm":
        from joblib import Parallel, delayed

        cands = [candidates_for(int(yte[t]), ytr, k, label_conditioning) for t in idx.tolist()]
        tr_np, te_np = tr.numpy(), te.numpy()
        all_scores = Parallel(n_jobs=n_jobs)(delayed(_esvm_scores)(te_np[t], tr_np[c.numpy()], C)
                                             for t, c in zip(idx.tolist(), cands, strict=True))
        for row, (c, s) in enumerate(zip(cands, all_scores, strict=True)):
            s = torch.as_tensor(s, dtype=torch.float32)
            top = torch.argsort(-s, stable=True)[:k]
            out_idx[row], out_score[row] = c[top], s[top]
    else:
        # One distance matrix per class (or one for all, without conditioning), in chunks of test images: a
        # thousand test images against 50,000 candidates is a few matrix products, not a thousand small ones.
        groups = [int(y) for y in yte[idx].unique()] if label_conditioning else [None]
        for label in groups:
            rows = torch.arange(len(idx)) if label is None else (yte[idx] == label).nonzero().flatten()
            c = candidates_for(int(yte[idx[rows[0]]]), ytr, k, label_conditioning)
            cand = tr[c]
            if method == "cosine":
                cand = torch.nn.functional.normalize(cand, dim=1)
            for chunk in rows.split(256):
                q = te[idx[chunk]]
                if method == "l2knn":
                    s = -torch.cdist(q, cand)  # raw Euclidean, as the reference
                else:
                    s = torch.nn.functional.normalize(q, dim=1) @ cand.t()
                top = torch.argsort(-s, dim=1, stable=True)[:, :k]
                out_idx[chunk], out_score[chunk] = c[top], torch.gather(s, 1, top)
    return Attribution(method, out_idx, out_score, idx, label_conditioning, time.perf_counter() - t0)


def random_attribution(train_labels, test_labels, k: int, label_conditioning: bool = True,
                       test_indices: Sequence[int] | None = None, seed: int = 0) -> Attribution:
    """The floor: k random training images (of the test image's class with label conditioning), in random order."""
    ytr = _as_labels(train_labels, len(train_labels), "train_labels")
    yte = _as_labels(test_labels, len(test_labels), "test_labels")
    _, _, _, _, idx = check_inputs(torch.zeros(len(ytr), 1), ytr, torch.zeros(len(yte), 1), yte, test_indices)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in idx.tolist():
        c = candidates_for(int(yte[t]), ytr, k, label_conditioning)
        rows.append(c[torch.randperm(len(c), generator=gen)[:k]])
    ind = torch.stack(rows) if rows else torch.zeros(0, k, dtype=torch.int64)
    return Attribution("random", ind, torch.zeros(ind.shape), idx, label_conditioning, 0.0)


def from_score_matrix(scores, train_labels, test_labels, k: int, method: str, label_conditioning: bool = True,
                      test_indices: Sequence[int] | None = None, seconds: float = 0.0) -> Attribution:
    """Top-k from a (N_train, T) score matrix, higher = more attributed (e.g. TRAK's), candidates as in `attribute`;
    row j of `scores`' transpose belongs to `test_indices[j]`."""
    s_all = torch.as_tensor(np.asarray(scores), dtype=torch.float32)
    ytr = _as_labels(train_labels, len(train_labels), "train_labels")
    yte = _as_labels(test_labels, len(test_labels), "test_labels")
    _, _, _, _, idx = check_inputs(torch.zeros(len(ytr), 1), ytr, torch.zeros(len(yte), 1), yte, test_indices)
    if s_all.shape != (len(ytr), len(idx)):
        raise ValueError(f"scores: expected shape (N_train, T) = {(len(ytr), len(idx))}, got {tuple(s_all.shape)}")
    out_idx = torch.zeros(len(idx), k, dtype=torch.int64)
    out_score = torch.zeros(len(idx), k)
    for row, t in enumerate(idx.tolist()):
        c = candidates_for(int(yte[t]), ytr, k, label_conditioning)
        s = s_all[c, row]
        top = torch.argsort(-s, stable=True)[:k]
        out_idx[row], out_score[row] = c[top], s[top]
    return Attribution(method, out_idx, out_score, idx, label_conditioning, seconds)
