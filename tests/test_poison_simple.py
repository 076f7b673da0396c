"""Tests for the simple poisons: CUDA, class-/sample-wise random noise, regions-k, LSP and OPS."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.poisons import Poison, make_poison
from uel_helpers.poisons.cuda import cuda, cuda_kernels
from uel_helpers.poisons.lsp import lsp
from uel_helpers.poisons.ops import ops, pixel_search
from uel_helpers.poisons.random_noise import random_noise_classwise, random_noise_samplewise
from uel_helpers.poisons.regions import band_edges, band_index, expand_grid, regions

EPS = 8 / 255
ALL = ["cuda", "random-noise-classwise", "random-noise-samplewise", "regions", "lsp", "ops"]
FUNCS = [cuda, random_noise_classwise, random_noise_samplewise, regions, lsp, ops]


@pytest.fixture(scope="module")
def rgb() -> ImageSet:
    return synthetic_dataset(n_per_class=12, num_classes=10, channels=3, size=32, seed=1)


@pytest.fixture(scope="module")
def gray() -> ImageSet:
    return synthetic_dataset(n_per_class=12, num_classes=10, channels=1, size=28, seed=2)


def _flat_gray(num_classes: int = 4, per_class: int = 5, shape=(3, 32, 32), value: int = 128) -> ImageSet:
    """Constant mid-grey images: no clipping, so the effective δ shows the noise's structure exactly."""
    n = num_classes * per_class
    labels = torch.arange(num_classes).repeat(per_class)
    return ImageSet(torch.full((n, *shape), value, dtype=torch.uint8), labels, [f"c{k}" for k in range(num_classes)])


# --- CUDA (arXiv 2303.04278) ----------------------------------------------------------------------------

# class: (position of the 1.0 tap, kernel rows, sum) of the kernels the reference draws with its defaults
# (seed 0, bp 0.3; `get_filter_unlearnable` in
# vinusankars/Convolution-based-Unlearnability:final_filter_unlearnable.py@ff58b1c)
CUDA_TABLE = {
    0: ((0, 2), [[.1646, .2146, 1], [.1635, .1271, .1938], [.1313, .2675, .2891]], 2.551),
    1: ((0, 0), [[1, .0794, .2323], [.1368, .1705, .0056], [.1853, .1836, .1851]], 2.179),
    2: ((0, 1), [[.0760, 1, .0733], [.0477, .0331, .1969], [.0415, .0590, .1106]], 1.638),
    3: ((0, 2), [[.1527, .2750, 1], [.0249, .0833, .0028], [.2527, .1942, .2524]], 2.238),
    4: ((2, 0), [[.2441, .1190, .2643], [.1744, .2645, .2078], [1, .1504, .2868]], 2.711),
    5: ((0, 2), [[.1308, .2676, 1], [.2112, .0301, .2758], [.2143, .2997, .0448]], 2.474),
    6: ((2, 2), [[.1563, .0163, .0600], [.0056, .2381, .0672], [.1036, .2784, 1]], 1.925),
    7: ((0, 0), [[1, .2643, .2929], [.1853, .1627, .2564], [.2232, .1436, .2031]], 2.732),
    8: ((1, 0), [[.2842, .2193, .0762], [1, .1555, .0077], [.0622, .1274, .1123]], 2.045),
    9: ((1, 1), [[.1657, .1753, .2886], [.0876, 1, .0301], [.0049, .2789, .2010]], 2.232),
}


def test_cuda_kernels_match_reference_table():
    kernels = cuda_kernels(10, seed=0, blur=0.3)
    assert kernels.shape == (10, 3, 3, 3)
    for k, (pos, rows, total) in CUDA_TABLE.items():
        ker = kernels[k, 0]
        np.testing.assert_allclose(np.round(ker, 4), rows, atol=1e-9)
        assert ker[pos] == 1.0 and (ker == 1.0).sum() == 1
        assert round(float(ker.sum()), 3) == total
        assert (kernels[k] == ker).all()  # the same kernel on R, G, B
    assert (cuda_kernels(10, channels=1) == kernels[:, :1]).all()  # grayscale: the channel-0 kernel
    assert (cuda_kernels(12)[:10] == kernels).all()  # more classes extend the same stream
    assert not np.allclose(cuda_kernels(10, seed=1), kernels)


def _cuda_reference_loop(ds: ImageSet, seed: int, blur: float, mix: float) -> tuple[np.ndarray, np.ndarray]:
    """A literal, per-image transcription of the reference's `get_filter_unlearnable`
    (`vinusankars/Convolution-based-Unlearnability:final_filter_unlearnable.py@ff58b1c`), on numpy's *global*
    legacy RNG."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        weights = []
        for _ in range(ds.num_classes):
            w = np.random.uniform(0, blur, size=(3, 1, 3, 3))
            r = np.random.randint(3)
            s = np.random.randint(3)
            w[0, 0, r, s] = 1.0
            w[1] = w[0]
            w[2] = w[0]
            weights.append(torch.from_numpy(w).float())
        out, draws = [], []
        for i in range(len(ds)):
            x = ds.images[i].float() / 255  # ToTensor
            u = np.random.random()
            draws.append(u)
            if u < mix:
                z = F.conv2d(x[None], weights[int(ds.labels[i])], padding=1, groups=3)[0]
                z = z / z.max()
            else:
                z = x
            out.append(np.clip(z.numpy() * 255, 0, 255).astype(np.uint8))
    finally:
        np.random.set_state(state)
    return np.stack(out), np.array(draws)


def test_cuda_matches_per_image_reference_and_stream_order(rgb):
    # Verifies the RNG stream: 29 draws per class (27 uniform, 2 randint) first, then one random() per
    # image in dataset order; a wrong order or count would change both the kernels and which images
    # mix = 0.5 selects.
    ref, draws = _cuda_reference_loop(rgb, seed=3, blur=0.3, mix=0.5)
    p = cuda(rgb, seed=3, mix=0.5)
    assert p.info["poisoned"] == int((draws < 0.5).sum())
    got = p.poisoned.images.numpy()
    changed = (got != rgb.images.numpy()).reshape(len(rgb), -1).any(1)
    assert (changed == (draws < 0.5)).all()
    # batched vs per-image float32 convolution may differ in the last bit; allow a rare ±1
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_cuda_mix_normalisation_and_no_perturbation(rgb, gray):
    full = cuda(rgb, seed=0)
    assert full.perturbation is None and full.rounding == "truncate"
    assert (full.poisoned.images.reshape(len(rgb), -1).amax(1) == 255).all()  # z / max(z) per image
    assert full.info["poisoned"] == len(rgb)
    # the per-image draw is consumed also at mix = 1: images chosen at mix < 1 are the mix = 1 images
    part = cuda(rgb, seed=0, mix=0.4)
    chosen = (part.poisoned.images != rgb.images).reshape(len(rgb), -1).any(1)
    assert 0 < int(chosen.sum()) < len(rgb)  # some untouched
    assert (part.poisoned.images[chosen] == full.poisoned.images[chosen]).all()
    assert (part.poisoned.images[~chosen] == rgb.images[~chosen]).all()
    with pytest.warns(UserWarning, match="no-op"):  # mix 0 keeps every byte: said, not silent
        assert (cuda(rgb, seed=0, mix=0.0).poisoned.images == rgb.images).all()
    g = cuda(gray, seed=0)
    assert g.poisoned.images.shape == gray.images.shape
    assert (g.poisoned.images.reshape(len(gray), -1).amax(1) == 255).all()
    assert (cuda(rgb, seed=0).poisoned.images == full.poisoned.images).all()  # deterministic
    assert not (cuda(rgb, seed=1).poisoned.images == full.poisoned.images).all()


def test_cuda_edge_cases():
    black = ImageSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    with pytest.warns(UserWarning, match="no-op"):
        assert (cuda(black).poisoned.images == 0).all()  # 0 / 0 avoided: a black image stays black
    with pytest.raises(ValueError):
        cuda(black, mix=1.5)
    with pytest.raises(ValueError):
        cuda(black, blur=-0.1)
    with pytest.raises(ValueError):
        cuda(black, seed=-1)


# --- random noise (cwrandom, psandovalsegura/unlearnable@9e384e6) ------------------------------------

def test_random_noise_classwise_structure_budget_and_determinism(rgb):
    flat = _flat_gray()
    p = random_noise_classwise(flat, seed=0)
    assert p.perturbation.shape == (4, 3, 32, 32) and p.classwise
    assert p.perturbation.abs().max() <= EPS
    eff = p.effective_perturbation(flat)
    for k in range(4):
        same = eff[flat.labels == k]
        assert (same == same[0]).all()  # one pattern per class
    assert not torch.equal(eff[flat.labels == 0][0], eff[flat.labels == 1][0])
    q = random_noise_classwise(rgb, seed=0)
    assert q.effective_perturbation(rgb).abs().max() <= EPS + 0.5 / 255 + 1e-6
    assert torch.equal(q.poisoned.images, random_noise_classwise(rgb, seed=0).poisoned.images)
    assert not torch.equal(q.poisoned.images, random_noise_classwise(rgb, seed=1).poisoned.images)


def test_random_noise_samplewise(rgb, gray):
    p = random_noise_samplewise(rgb, seed=0)
    assert p.perturbation.shape == (len(rgb), 3, 32, 32) and not p.classwise
    assert p.effective_perturbation(rgb).abs().max() <= EPS + 0.5 / 255 + 1e-6
    d = p.perturbation[rgb.labels == 0]
    assert not torch.equal(d[0], d[1])  # independent per image
    assert p.perturbation.abs().max() > 0.9 * EPS  # fills the ball
    t = random_noise_samplewise(gray, seed=0, eps=4 / 255, rounding="truncate")
    assert t.rounding == "truncate" and t.effective_perturbation(gray).abs().max() <= 4.5 / 255 + 1e-6


# --- regions-k (hala64/udp@a693e3c region_poison) ----------------------------------------------------

def test_band_edges():
    assert band_edges(32, 4) == [0, 8, 16, 24, 32]
    assert np.diff(band_edges(28, 8)).tolist() == [3, 4, 3, 4, 3, 4, 3, 4]
    assert np.diff(band_edges(28, 4)).tolist() == [7, 7, 7, 7]
    with pytest.raises(ValueError):
        band_edges(3, 4)
    blocks = torch.randn(2, 3, 4, 4)
    for h, w in ((32, 32), (28, 30)):  # the broadcast fast path and the uneven-band path agree with a gather
        gathered = blocks[..., band_index(h, 4), :][..., band_index(w, 4)]
        assert torch.equal(expand_grid(blocks, h, w), gathered)


@pytest.mark.parametrize("k", [4, 16, 64])
def test_regions_blocks_are_classwise_sign_patterns(k, rgb):
    g = math.isqrt(k)
    p = regions(rgb, k=k, seed=0)
    delta = p.perturbation
    assert delta.shape == (10, 3, 32, 32) and p.classwise
    assert torch.allclose(delta.abs(), torch.full_like(delta, EPS))  # every entry is ±eps
    side = 32 // g
    blocks = delta.reshape(10, 3, g, side, g, side)
    assert (blocks == blocks[:, :, :, :1, :, :1]).all()  # constant on each square region
    # udp's definition: eps · sign(randn(K, g, g, C)) from a generator seeded with `seed`
    r = EPS * torch.randn(10, g, g, 3, generator=torch.Generator().manual_seed(0)).sign()
    assert torch.allclose(blocks[:, :, :, 0, :, 0], r.permute(0, 3, 1, 2))
    assert p.effective_perturbation(rgb).abs().max() <= EPS + 0.5 / 255 + 1e-6


def test_regions_uneven_grid_on_28x28(gray):
    p = regions(gray, k=64, seed=0)
    delta = p.perturbation[:, 0]  # (K, 28, 28)
    edges = band_edges(28, 8)
    for a in range(8):
        for b in range(8):
            block = delta[:, edges[a]:edges[a + 1], edges[b]:edges[b + 1]]
            assert (block == block[:, :1, :1]).all()
    assert torch.equal(p.poisoned.images, regions(gray, k=64, seed=0).poisoned.images)
    assert not torch.equal(p.poisoned.images, regions(gray, k=64, seed=1).poisoned.images)


def test_regions_bad_k(rgb):
    for bad in (5, 8, 0, -4):
        with pytest.raises(ValueError, match="k must be"):
            regions(rgb, k=bad)
    with pytest.raises(ValueError, match="does not fit"):
        regions(rgb, k=33 * 33)


# --- LSP (lafeat/apbench:attack/lsp_poisons.py@9a6fb91) ---------------------------------------------

def test_lsp_norm_blocks_and_truncation(rgb, gray):
    p = lsp(rgb, seed=0)
    assert p.params["eps"] == pytest.approx(1.304, abs=1e-3) and p.rounding == "truncate"
    norms = p.perturbation.flatten(1).double().norm(dim=1)
    np.testing.assert_allclose(norms.numpy(), 6 / 255 * math.sqrt(3072), rtol=1e-5)  # exact before clipping
    blocks = p.perturbation.reshape(len(rgb), 3, 4, 8, 4, 8)
    assert (blocks == blocks[:, :, :, :1, :, :1]).all()  # 8×8 patches
    expected = torch.floor((rgb.to_float() + p.perturbation).clamp(0, 1) * 255).to(torch.uint8)
    assert torch.equal(p.poisoned.images, expected)  # truncation, the reference's rule
    assert torch.equal(lsp(rgb, seed=0, patch=8).perturbation, p.perturbation)  # patch = H // 4
    assert torch.equal(lsp(rgb, seed=0).poisoned.images, p.poisoned.images)
    assert not torch.equal(lsp(rgb, seed=1).perturbation, p.perturbation)
    g = lsp(gray, seed=0)
    assert g.perturbation.shape == (len(gray), 1, 28, 28) and g.info["grid"] == [4, 4]
    np.testing.assert_allclose(g.perturbation.flatten(1).double().norm(dim=1).numpy(), 6 / 255 * 28, rtol=1e-5)
    gb = g.perturbation.reshape(len(gray), 1, 4, 7, 4, 7)
    assert (gb == gb[:, :, :, :1, :, :1]).all()  # 7×7 patches


def test_lsp_is_linearly_separable_and_uses_first_samples_of_each_label(rgb):
    from sklearn.datasets import make_classification
    from sklearn.svm import LinearSVC

    p = lsp(rgb, seed=0)
    flat = p.perturbation.flatten(1).numpy()
    clf = LinearSVC(C=10.0, max_iter=5000).fit(flat, rgb.labels.numpy())
    assert clf.score(flat, rgb.labels.numpy()) == 1.0
    x, y = make_classification(n_samples=len(rgb), n_features=48, n_informative=48, n_redundant=0, n_repeated=0,
                               n_classes=10, n_clusters_per_class=1, class_sep=10.0, flip_y=0.0, random_state=0)
    k = 3
    second = int(np.flatnonzero(rgb.labels.numpy() == k)[1])  # class k's second image ← 2nd sample of label k
    s = x[np.flatnonzero(y == k)[1]].reshape(4, 4, 3).transpose(2, 0, 1)  # channels-last features
    s = np.repeat(np.repeat(s, 8, axis=1), 8, axis=2)
    s = s / np.linalg.norm(s) * p.params["eps"]
    np.testing.assert_allclose(p.perturbation[second].numpy(), s, rtol=1e-5, atol=1e-7)


def test_lsp_bad_input_and_unbalanced_classes(rgb):
    with pytest.raises(ValueError, match="patch"):
        lsp(rgb, patch=5)
    with pytest.raises(ValueError):
        lsp(rgb, eps=0.0)
    with pytest.raises(ValueError):
        lsp(rgb, eps=100.0)  # more than sqrt(3072)
    uneven = rgb.subset(np.flatnonzero(rgb.labels.numpy() != 0).tolist() + [int(np.flatnonzero(rgb.labels == 0)[0])])
    p = lsp(uneven, seed=0)
    assert p.perturbation.shape == (len(uneven), 3, 32, 32)


# --- OPS (lafeat/apbench:attack/ops_poisons.py@9a6fb91) ---------------------------------------------

def _ops_reference(images: np.ndarray, labels: np.ndarray, num_classes: int) -> list[tuple[tuple, tuple]]:
    """A literal loop over classes, positions and colours with numpy mean/std (APBench's `pixel_search`)."""
    x = images.transpose(0, 2, 3, 1).astype(np.float64) / 255  # (N, H, W, C) like APBench
    _, h, w, c = x.shape
    chosen: list[tuple[tuple, tuple]] = []
    for k in range(num_classes):
        xk = x[labels == k]
        best, best_score = None, -1.0
        for r, col in itertools.product(range(h), range(w)):
            for v in itertools.product((0, 1), repeat=c):
                if ((r, col), v) in chosen:
                    continue
                d = np.abs(np.array(v) - xk[:, r, col, :])
                score = d.mean() / d.std()
                if score > best_score:
                    best, best_score = ((r, col), v), score
        chosen.append(best)
    return chosen


def test_ops_matches_literal_search():
    ds = synthetic_dataset(n_per_class=6, num_classes=4, channels=3, size=6, noise=0.3, seed=5)
    found = pixel_search(ds.images, ds.labels, 4, seed=None)  # first-pair ties, as the loop
    ref = _ops_reference(ds.images.numpy(), ds.labels.numpy(), 4)
    for k, ((r, c), v) in enumerate(ref):
        assert tuple(found["pixels"][k]) == (r, c) and tuple(found["colours"][k]) == v


@pytest.mark.parametrize("channels,size,classes", [(3, 32, 10), (1, 28, 10), (1, 28, 100)])
def test_ops_one_classwise_pixel_per_image(channels, size, classes):
    ds = synthetic_dataset(n_per_class=3, num_classes=classes, channels=channels, size=size, seed=7)
    p = ops(ds)
    # OPS replaces a pixel: no dense δ is stored, the class-wise pixel table in `info` is the attack
    assert p.rounding == "truncate" and p.perturbation is None and not p.has_perturbation and p.classwise
    changed = (p.poisoned.images != ds.images).any(1)  # (N, H, W): pixels that changed
    assert (changed.flatten(1).sum(1) <= 1).all()  # L0 <= 1 pixel (0 if it already had that colour)
    pairs = {(tuple(px), tuple(cl)) for px, cl in zip(p.info["pixels"], p.info["colours"], strict=True)}
    assert len(pairs) == classes  # distinct across classes
    for i in range(len(ds)):
        k = int(ds.labels[i])
        (r, c), colour = p.info["pixels"][k], p.info["colours"][k]
        assert p.poisoned.images[i, :, r, c].tolist() == [255 * v for v in colour]  # class-wise pixel, 0 or 255
    effective = p.effective_perturbation(ds)
    assert torch.allclose(ds.to_float() + effective, p.poisoned.to_float(), atol=1e-6)
    assert (effective != 0).any(1).flatten(1).sum(1).max() <= 1


def test_ops_degenerate_and_too_many_classes(tmp_path):
    flat = _flat_gray(num_classes=3, per_class=2, shape=(1, 4, 4), value=0)
    found = pixel_search(flat.images, flat.labels, 3, seed=None)  # white anywhere scores +inf: first wins
    assert found["pixels"].tolist() == [[0, 0], [0, 1], [0, 2]] and found["colours"].tolist() == [[1], [1], [1]]
    p = ops(flat, seed=0)  # seeded ties: distinct white pixels, the same ones for the same seed
    assert p.info["colours"] == [[1], [1], [1]] and len({tuple(px) for px in p.info["pixels"]}) == 3
    assert ops(flat, seed=0).info == p.info
    assert p.info["scores"] == [math.inf] * 3
    back = Poison.load(p.save(tmp_path / "ops.npz"), clean=flat)  # inf survives the JSON header
    assert back.info == p.info and back.perturbation is None and back.classwise
    assert torch.equal(back.poisoned.images, p.poisoned.images)
    spread = [ops(_flat_gray(num_classes=3, per_class=2, shape=(1, 16, 16), value=0), seed=s).info["pixels"]
              for s in range(4)]
    assert any(px != [[0, 0], [0, 1], [0, 2]] for px in spread)  # not the top-left corner every time
    tiny = _flat_gray(num_classes=9, per_class=1, shape=(1, 2, 2))
    with pytest.raises(ValueError, match="distinct"):
        ops(tiny)  # 9 classes, 2×2 pixels × 2 colours = 8 pairs


# --- registry, determinism, bad input ----------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_make_poison_integration_and_cache(name, gray):
    p = make_poison(name, gray, seed=0, device="cpu")
    assert isinstance(p, Poison) and p.attack == name and p.poisoned.images.dtype == torch.uint8
    assert p.poisoned.images.shape == gray.images.shape and torch.equal(p.poisoned.labels, gray.labels)
    again = make_poison(name, gray, seed=0, device="cpu")  # from the cache
    assert torch.equal(again.poisoned.images, p.poisoned.images)
    assert again.info.keys() == p.info.keys()


@pytest.mark.parametrize("fn", FUNCS)
def test_non_imageset_input_is_a_type_error(fn, rgb):
    with pytest.raises(TypeError, match="ImageSet"):
        fn(rgb.images)


@pytest.mark.parametrize("fn", [random_noise_classwise, random_noise_samplewise, regions])
@pytest.mark.parametrize("eps", [0.0, -0.1, 1.5, 8])
def test_bad_linf_eps(fn, eps, rgb):
    with pytest.raises(ValueError, match="eps"):
        fn(rgb, eps=eps)


@pytest.mark.parametrize("fn", FUNCS)
def test_keyword_only_and_rounding_checked(fn, rgb):
    with pytest.raises(TypeError):
        fn(rgb, 0)  # every parameter but the data is keyword-only
    if fn is not ops:
        with pytest.raises(ValueError, match="rounding"):
            fn(rgb, rounding="nearest")


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
@pytest.mark.parametrize("fn", FUNCS)
def test_shapes_with_100_classes(fn, channels, size):
    ds = synthetic_dataset(n_per_class=2, num_classes=100, channels=channels, size=size, seed=3)
    p = fn(ds, seed=0)
    assert p.poisoned.images.shape == ds.images.shape and p.poisoned.images.dtype == torch.uint8
    if p.perturbation is not None:
        assert p.perturbation.shape[1:] == ds.images.shape[1:]
        assert p.perturbation.shape[0] in (100, len(ds))
    assert torch.equal(fn(ds, seed=0).poisoned.images, p.poisoned.images)  # deterministic


def test_a_budget_below_one_grey_level_warns_that_the_poison_is_a_no_op():
    ds = synthetic_dataset(n_per_class=2, num_classes=3, channels=1, size=8, seed=0)
    with pytest.warns(UserWarning, match="no-op"):
        p = make_poison("random-noise-samplewise", ds, eps=0.49 / 255, cache=False)
    assert torch.equal(p.poisoned.images, ds.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_poison("random-noise-samplewise", ds, eps=8 / 255, cache=False)
