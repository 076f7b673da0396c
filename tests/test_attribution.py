"""uel_helpers.attribution: scores, bisection, counterfactual caching, SSL backbone, TRAK wrapper, bad input."""

import math

import pytest
import torch

from uel_helpers import load_dataset
from uel_helpers.attribution import (
    Counterfactual,
    SSLBackbone,
    attribute,
    binary_search_support,
    evaluate_support,
    extract_features,
    knn_accuracy,
    random_attribution,
    ssl_config_for_profile,
    support_table,
    train_ssl,
)
from uel_helpers.attribution.backbone import backbone_path


def _features(n_per_class=30, classes=3, dim=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    centres = torch.randn(classes, dim, generator=gen) * 3
    feats = centres[labels] + torch.randn(len(labels), dim, generator=gen)
    return feats, labels


@pytest.mark.parametrize("method", ["esvm", "l2knn", "cosine"])
def test_label_conditioning_returns_only_same_class_indices(method):
    ftr, ytr = _features()
    fte, yte = _features(n_per_class=2, seed=1)
    att = attribute(ftr, ytr, fte, yte, method, k=30, n_jobs=1)
    for row, t in enumerate(att.test_indices.tolist()):
        assert (ytr[att.indices[row]] == yte[t]).all()
        assert len(set(att.indices[row].tolist())) == 30  # every candidate once
    free = attribute(ftr, ytr, fte, yte, method, k=60, label_conditioning=False, n_jobs=1)
    assert free.indices.shape == (6, 60)


@pytest.mark.parametrize("method", ["esvm", "l2knn"])
def test_planted_duplicate_is_ranked_first(method):
    ftr, ytr = _features(seed=2)
    fte, yte = _features(n_per_class=1, seed=3)
    planted = 17  # a training image of class 0 replaced by an exact copy of test image 0 (class 0)
    assert ytr[planted] == yte[0]
    ftr[planted] = fte[0]
    att = attribute(ftr, ytr, fte, yte, method, k=5, test_indices=[0], n_jobs=1)
    assert att.indices[0, 0] == planted
    assert att.scores[0, 0] >= att.scores[0, 1]


def test_random_attribution_is_same_class_and_seeded():
    _, ytr = _features()
    _, yte = _features(n_per_class=2, seed=1)
    a = random_attribution(ytr, yte, 10, seed=4)
    b = random_attribution(ytr, yte, 10, seed=4)
    assert torch.equal(a.indices, b.indices)
    assert all((ytr[a.indices[r]] == yte[t]).all() for r, t in enumerate(a.test_indices.tolist()))


@pytest.mark.parametrize("true_m", [1, 2, 37, 99, 100, 128])
def test_bisection_finds_the_exact_minimal_m_on_a_monotone_oracle(true_m):
    k = 128
    calls = []

    def flipped(m):
        calls.append(m)
        return m >= true_m

    assert binary_search_support(flipped, k, budget=math.ceil(math.log2(k))) == true_m
    assert calls[0] == k


def test_bisection_returns_minus_one_when_nothing_flips():
    assert binary_search_support(lambda m: False, 64, budget=6) == -1


def test_bisection_with_a_small_budget_is_an_upper_bound():
    found = binary_search_support(lambda m: m >= 37, 128, budget=2)  # resolution 128 / 2**2 = 32
    assert 37 <= found <= 37 + 32


@pytest.fixture(scope="module")
def digits_small():
    tr = load_dataset("digits", "train").take_per_class(12, seed=0)
    te = load_dataset("digits", "test").take_per_class(1, seed=0).subset([0, 1, 2])
    return tr, te


def test_resumed_search_reuses_cached_retrainings(digits_small, tmp_path):
    tr, te = digits_small
    ranked = (tr.labels == te.labels[0]).nonzero().flatten().tolist()
    cf = Counterfactual(tr, te, "smoke", n_models=1, cache_root=str(tmp_path))
    first = cf.support(ranked, 0, "removal", budget=2, method="x")
    assert first.retrainings >= 1
    again = Counterfactual(tr, te, "smoke", n_models=1, cache_root=str(tmp_path))  # a new session, same cache
    second = again.support(ranked, 0, "removal", budget=2, method="x")
    assert second.support == first.support
    assert second.retrainings == 0 and again.retrainings == 0


def test_mislabel_support_uses_a_class_other_than_the_true_one(digits_small, tmp_path):
    tr, te = digits_small
    cf = Counterfactual(tr, te, "smoke", n_models=1, cache_root=str(tmp_path))
    target = cf.flip_class(1)
    assert target != int(te.labels[1]) and 0 <= target < tr.num_classes
    ranked = (tr.labels == te.labels[1]).nonzero().flatten().tolist()
    res = evaluate_support(cf, {"m": _rows(ranked, 3)}, [1], "mislabel", budget=1, quiet=True)
    assert res[0].flip_class == target
    row = support_table(res)[0]
    assert row["kind"] == "mislabel" and row["points"] == 1


def _rows(ranked, n):
    from uel_helpers.attribution import Attribution

    idx = torch.tensor([ranked] * n)
    return Attribution("m", idx, torch.zeros(idx.shape), torch.arange(n), True, 0.0)


_FTR, _YTR = _features()
_FTE, _YTE = _features(n_per_class=2, seed=1)

# (call on (digits train/test pair, cache folder), expected exception, message pattern); one case, one failure
BAD_INPUTS = {
    "test index out of range": (lambda sets, root: attribute(_FTR, _YTR, _FTE, _YTE, "l2knn", k=3, test_indices=[6]),
                                ValueError, "test_indices: .*out of range"),
    "k above the candidates": (lambda sets, root: attribute(_FTR, _YTR, _FTE, _YTE, "l2knn", k=31), ValueError,
                               "k=31 is larger than the candidates: class .* has 30"),
    "feature dimensions differ": (lambda sets, root: attribute(_FTR, _YTR, _FTE[:, :4], _YTE, "esvm", k=3),
                                  ValueError, "dimension 4 but train_features 8"),
    "method='knn'": (lambda sets, root: attribute(_FTR, _YTR, _FTE, _YTE, "knn", k=3), ValueError,
                     "method: expected one of"),
    "vote test_pos out of range": (
        lambda sets, root: Counterfactual(*sets, "smoke", n_models=1, cache_root=str(root)).vote(3), ValueError,
        "test_pos: expected an index into the 3 test images"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_inputs_are_clear_errors(digits_small, tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(digits_small, tmp_path)


def test_ssl_backbone_trains_caches_and_rejects_another_configuration(tmp_path):
    tr = load_dataset("digits", "train").take_per_class(30, seed=0)
    te = load_dataset("digits", "test").take_per_class(10, seed=0)
    cfg = ssl_config_for_profile("smoke").with_(epochs=1, batch_size=32, memory_bank=64)
    bb = train_ssl(tr, cfg, monitor=te, cache_root=tmp_path, quiet=True)
    assert len(bb.history.loss) == 1 and math.isfinite(bb.history.loss[0])
    assert 0 <= bb.history.knn_acc[0] <= 1
    feats = extract_features(bb.encoder, tr)
    assert feats.shape == (len(tr), 64) and feats.dtype == torch.float32
    path = backbone_path(tr, cfg, 0, tmp_path)
    assert path.exists()
    again = train_ssl(tr, cfg, cache_root=tmp_path, quiet=True)  # from the cache: same features
    assert torch.allclose(extract_features(again.encoder, tr), feats, atol=1e-5)
    with pytest.raises(ValueError, match="another configuration .*config.epochs: file 1, asked 2"):
        SSLBackbone.load(path, cfg.with_(epochs=2))
    with pytest.raises(ValueError, match="training images"):
        SSLBackbone.load(path, cfg, train_set=te)
    with pytest.raises(FileNotFoundError):
        SSLBackbone.load(tmp_path / "none.pt")
    with pytest.raises(ValueError, match="memory_bank"):
        train_ssl(tr, cfg.with_(memory_bank=len(tr)), cache_root=tmp_path, quiet=True)
    assert cfg.with_(memory_bank=len(tr)).fitted_to(len(tr)).memory_bank == len(tr) // 2
    assert cfg.fitted_to(len(tr)) == cfg  # a bank already smaller than the set is kept


def test_ssl_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from uel_helpers.attribution import backbone as bb_mod

    tr = load_dataset("digits", "train").take_per_class(20, seed=0)
    cfg = ssl_config_for_profile("smoke").with_(epochs=2, batch_size=32, memory_bank=64)
    full = train_ssl(tr, cfg, cache_root=tmp_path / "a", quiet=True)
    original = bb_mod._TwoViews.__getitem__
    calls = {"n": 0}

    def interrupted(self, i):  # the second epoch dies half-way, as a closed laptop would
        calls["n"] += 1
        if calls["n"] > 1.5 * len(tr):
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(bb_mod._TwoViews, "__getitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_ssl(tr, cfg, cache_root=tmp_path / "b", quiet=True)
    partial = backbone_path(tr, cfg, 0, tmp_path / "b").with_suffix(".partial.pt")
    assert partial.exists()
    calls["n"] = -10**9  # no more interruptions; count what the resumed run augments
    resumed = train_ssl(tr, cfg, cache_root=tmp_path / "b", quiet=True)
    assert calls["n"] + 10**9 == 2 * (len(tr) // 32) * 32 // 2  # one epoch of views, not two
    assert not partial.exists()
    assert resumed.history.loss[0] == full.history.loss[0]
    assert resumed.history.loss[1] == pytest.approx(full.history.loss[1], rel=1e-4)


def test_knn_accuracy_on_separable_features():
    ftr, ytr = _features(dim=16)
    fte, yte = _features(n_per_class=5, dim=16, seed=0)
    assert knn_accuracy(ftr, ytr, fte, yte, k=10, t=0.1) == 1.0


def test_trak_baseline_gives_same_class_top_k(digits_small):
    pytest.importorskip("trak")
    from uel_helpers.attribution import TrakSettings, train_checkpoints, trak_attribution

    tr, te = digits_small
    models = train_checkpoints(tr, "smoke", 1)
    att, scores = trak_attribution(models, tr, te, k=5, settings=TrakSettings(proj_dim=32, checkpoints=1))
    assert scores.shape == (len(tr), len(te))
    assert att.method == "trak" and att.indices.shape == (3, 5)
    assert all((tr.labels[att.indices[r]] == te.labels[r]).all() for r in range(3))
    assert TrakSettings(proj_dim=32, checkpoints=1).is_straw_man
    assert not TrakSettings(proj_dim=20_000, checkpoints=11).is_straw_man


def test_counterfactual_refuses_a_protocol_that_subsamples(digits_small, tmp_path):
    tr = load_dataset("digits", "train")  # 1,347 images; the smoke protocol keeps at most 512
    _, te = digits_small
    with pytest.raises(ValueError, match="subsamples training sets to 512 images, which would hide the removals"):
        Counterfactual(tr, te, "smoke", n_models=1, cache_root=str(tmp_path))


def test_correctly_classified_says_when_too_few(digits_small, tmp_path):
    from uel_helpers.attribution import correctly_classified

    tr, te = digits_small
    cf = Counterfactual(tr, te, "smoke", n_models=1, cache_root=str(tmp_path))
    with pytest.raises(ValueError, match="n=4: only .* of the 3 candidate test images"):
        correctly_classified(cf, 4)


def test_support_table_leaves_the_median_open_for_a_full_k_check_only():
    from uel_helpers.attribution import SupportResult

    rows = [SupportResult("m", "removal", p, 50, s, None, 3, 0.0, budget=b) for p, s, b in
            [(0, 50, 0), (1, -1, 0), (2, 50, 0)]]
    table = support_table(rows)[0]
    assert table["flipped"] == 2 and table["median_support"] is None and table["budget"] == 0
    bisected = support_table([SupportResult("m", "removal", 0, 50, 12, None, 3, 0.0, budget=3),
                              SupportResult("m", "removal", 1, 50, 20, None, 3, 0.0, budget=3)])[0]
    assert bisected["median_support"] == 16
