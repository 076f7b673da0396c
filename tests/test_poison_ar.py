"""AR poisons (Sandoval-Segura et al. 2022): shipped coefficients, the batched recursion against the paper's plain
per-pixel loop (`generate_ar_reference`), the matching-filter property, exact budgets, determinism, guards, the
finder, errors."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import torch

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.poisons import REGISTRY, make_poison
from uel_helpers.poisons import ar as ar_mod
from uel_helpers.poisons.ar import attack as ar_attack
from uel_helpers.poisons.ar import (
    default_l2_eps,
    default_required_response,
    filter_response,
    find_ar_coefficients,
    generate_ar,
    generate_ar_reference,
    matching_filter,
    released_coefficients,
)
from uel_helpers.poisons.ar import generate as ar_generate


def residual_and_cross(delta: torch.Tensor, labels: torch.Tensor, coeffs) -> tuple[torch.Tensor, torch.Tensor]:
    """Own-filter and other-filter responses R(f_j, δ_i), split by whether j is i's class."""
    r = filter_response(matching_filter(coeffs), delta.double())
    own = r[torch.arange(len(labels)), labels]
    mask = torch.ones_like(r, dtype=torch.bool)
    mask[torch.arange(len(labels)), labels] = False
    return own, r[mask]


def small_set(num_classes: int = 4, channels: int = 3, size: int = 32, n_per_class: int = 3) -> ImageSet:
    return synthetic_dataset(n_per_class=n_per_class, num_classes=num_classes, channels=channels, size=size, seed=2)


# --- shipped data ----------------------------------------------------------------------------------

def test_shipped_coefficients_shapes_sums_and_licence():
    for name, k, max_abs in (("cifar10", 10, 0.889), ("cifar100", 100, 1.011)):
        b = released_coefficients(name)
        assert b.shape == (k, 3, 3, 3) and b.dtype == np.float64
        assert np.all(b[:, :, 2, 2] == 0)
        assert np.abs(b.sum((2, 3)) - 1).max() <= 2e-4
        assert abs(np.abs(b).max() - max_abs) < 1e-3
    assert np.abs(released_coefficients("cifar100")).max() < 2  # the fixed process 9, not the 2.35e7 one
    b = released_coefficients("cifar10")
    b[0] = 0
    assert released_coefficients("cifar10")[0].any(), "callers get a copy"
    with pytest.raises(ValueError, match="cifar10"):
        released_coefficients("imagenet")
    folder = resources.files("uel_helpers") / "resources"
    text = (folder / "AR_COEFFICIENTS_LICENSE.txt").read_text()
    assert "Copyright (c) 2022 Pedro Sandoval" in text and "MIT License" in text
    assert "AR coefficients from psandovalsegura/autoregressive-poisoning, Sandoval-Segura et al., NeurIPS 2022" in text
    assert "AR_COEFFICIENTS_LICENSE.txt" in ar_mod.__doc__ and "Pedro Sandoval" in ar_mod.__doc__


# --- the recursion -----------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,size,crop,p", [(3, (32, 32), 4, 2), (1, (9, 13), 3, math.inf), (2, (5, 4), 0, 2)])
def test_batched_generator_equals_per_image_loop(channels, size, crop, p):
    g = torch.Generator().manual_seed(5)
    k = 4
    if channels == 3:
        coeffs = released_coefficients("cifar10")[:k]
    elif channels == 1:
        coeffs = find_ar_coefficients(k, channels=1, seed=1)
    else:  # any (K, C, 3, 3) with a zero bottom-right tap; random taps summing to 1 per channel
        coeffs = torch.randn(k, channels, 3, 3, generator=g, dtype=torch.float64)
        coeffs[:, :, 2, 2] = 0
        coeffs = (coeffs / coeffs.sum((2, 3), keepdim=True)).numpy()
    labels = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    start = torch.randn(len(labels), channels, size[0] + crop, size[1] + crop, generator=g)
    out = generate_ar(coeffs, labels, size, crop=crop, eps=0.7, p=p, start=start, device="cpu",
                      max_growth=float("inf"))  # random taps (not the finder's) diverge: compare them all the same
    ref = torch.stack([generate_ar_reference(coeffs[int(y)], start[i], crop, 0.7, p) for i, y in enumerate(labels)])
    assert out.delta.shape == (len(labels), channels, *size) and out.delta.dtype == torch.float32
    scale = ref.abs().amax((1, 2, 3), keepdim=True)
    assert ((out.delta.double() - ref).abs() / scale).max() < 1e-5


def test_only_the_first_two_rows_and_columns_of_the_start_signal_matter():
    g = torch.Generator().manual_seed(0)
    coeffs = released_coefficients("cifar10")
    labels = torch.arange(10)
    start = torch.randn(10, 3, 36, 36, generator=g)
    other = start.clone()
    other[:, :, 2:, 2:] = 123.0  # overwritten by the recursion before it is read
    a = generate_ar(coeffs, labels, 32, start=start, device="cpu").delta
    b = generate_ar(coeffs, labels, 32, start=other, device="cpu").delta
    assert torch.equal(a, b)


@pytest.mark.parametrize("name,per_class", [("cifar10", 20), ("cifar100", 2)])
def test_own_matching_filter_residual_is_zero_and_others_respond(name, per_class):
    coeffs = released_coefficients(name)
    labels = torch.arange(len(coeffs)).repeat(per_class)
    out = generate_ar(coeffs, labels, 32, seed=3, device="cpu")
    own, other = residual_and_cross(out.delta, labels, coeffs)
    # every valid 3x3 window of the 32x32 crop was written by the recursion: conv with f_own = 0
    assert own.median() < 1e-3 * other.median()
    assert own.max() < 1e-4 and other.median() > 1.0
    conv = torch.nn.functional.conv2d(out.delta.double(), matching_filter(coeffs))
    own_conv = conv[torch.arange(len(labels)), labels]
    assert own_conv.abs().max() < 1e-5 * out.delta.abs().max()


def test_exact_norms_before_clipping():
    coeffs = released_coefficients("cifar10")
    labels = torch.arange(10).repeat(5)
    for eps in (1.0, 0.25):
        d = generate_ar(coeffs, labels, 32, eps=eps, seed=0, device="cpu").delta
        assert torch.allclose(d.double().flatten(1).norm(dim=1), torch.full((50,), eps, dtype=torch.float64),
                              rtol=0, atol=1e-5)
    d = generate_ar(coeffs, labels, 32, eps=8 / 255, p=math.inf, seed=0, device="cpu").delta
    assert torch.allclose(d.abs().amax((1, 2, 3)).double(), torch.full((50,), 8 / 255, dtype=torch.float64),
                          rtol=0, atol=1e-7)


def test_same_bytes_whatever_the_chunking_or_threads(monkeypatch):
    coeffs = released_coefficients("cifar10")
    labels = torch.arange(600) % 10
    base = generate_ar(coeffs, labels, 32, seed=7, device="cpu")
    again = generate_ar(coeffs, labels, 32, seed=7, device="cpu")
    assert torch.equal(base.delta, again.delta) and torch.equal(base.raw_l2, again.raw_l2)
    assert not torch.equal(base.delta, generate_ar(coeffs, labels, 32, seed=8, device="cpu").delta)
    monkeypatch.setattr(ar_generate, "_CPU_FIELD_FLOATS", 1)  # chunks of DRAW_BLOCK images, several workers
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        chunked = generate_ar(coeffs, labels, 32, seed=7, device="cpu")
        torch.set_num_threads(1)
        single = generate_ar(coeffs, labels, 32, seed=7, device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert torch.equal(base.delta, chunked.delta) and torch.equal(base.delta, single.delta)


def test_diverging_process_is_refused_naming_the_class():
    broken = released_coefficients("cifar100")
    broken[9, 1, 0, 0] = 2.35e7  # the old CIFAR-100 process 9
    labels = torch.arange(100)
    with pytest.raises(ValueError, match=r"class 9\b.*diverges"):
        generate_ar(broken, labels, 32, seed=0, device="cpu")
    ds = small_set(num_classes=10)
    with pytest.raises(ValueError, match=r"class 9 \('class9'\)"):
        REGISTRY["ar"].fn(ds, seed=0, coefficients=broken, quiet=True)
    # an explosion without overflow: released processes on a CIFAR field stay far below the 1e3 limit
    with pytest.raises(ValueError, match="raw L2 norm"):
        generate_ar(released_coefficients("cifar10"), torch.arange(10), 32, seed=0, max_raw_norm=1.0)


# --- matching filter helpers --------------------------------------------------------------------------

def test_matching_filter_and_response_shapes():
    b = released_coefficients("cifar10")
    f = matching_filter(b[0])
    assert f.shape == (1, 3, 3, 3) and f[0, :, 2, 2].eq(-1).all()
    assert torch.allclose(f.sum((2, 3)), torch.zeros(1, 3, dtype=torch.float64), atol=2e-4)
    assert b[0, 0, 2, 2] == 0, "the input is not modified"
    fs = matching_filter(b)
    s = torch.randn(5, 3, 8, 8)
    assert filter_response(fs, s).shape == (5, 10)
    assert filter_response(fs, s[0]).shape == (10,)
    assert filter_response(fs[0], s).shape == (5,)
    assert filter_response(fs[0], s[0]).ndim == 0
    assert (filter_response(fs, s) >= 0).all()


# --- the finder -------------------------------------------------------------------------------------------

def test_finder_small_case_gives_valid_separable_processes():
    c = find_ar_coefficients(3, channels=1, seed=0)
    assert c.shape == (3, 1, 3, 3) and c.dtype == np.float64
    assert np.all(c[:, :, 2, 2] == 0) and np.abs(c.sum((2, 3)) - 1).max() < 1e-9
    assert np.array_equal(c, find_ar_coefficients(3, channels=1, seed=0)), "deterministic given the seed"
    assert np.array_equal(find_ar_coefficients(2, channels=1, seed=0), c[:2]), "accepted one after another"
    assert not np.array_equal(c, find_ar_coefficients(3, channels=1, seed=1))
    labels = torch.arange(3).repeat_interleave(60)
    out = generate_ar(c, labels, 32, seed=4, device="cpu")  # found processes pass the divergence guard
    assert torch.isfinite(out.raw_l2).all()
    # acceptance rule 2: the finder rejects a process if any of 3 raw norms exceeds 50
    assert (out.raw_l2.view(3, 60).median(1).values <= 50).all()
    own, other = residual_and_cross(out.delta, labels, c)
    assert own.median() < 1e-3 * other.median()
    # acceptance rule 4 (one pattern, filters accepted earlier): typical responses are of its order
    need = default_required_response(3, channels=1, image_size=32)
    r = filter_response(matching_filter(c), out.delta.double())
    for k in range(1, 3):
        for j in range(k):
            assert r[labels == k, j].median() > 0.4 * need


def test_finder_gives_up_clearly():
    with pytest.raises(ValueError, match="found only"):
        find_ar_coefficients(3, channels=1, required_response=1e9, max_tries=300)
    with pytest.raises(ValueError, match="num_classes"):
        find_ar_coefficients(0)


# --- the registered attacks -------------------------------------------------------------------------------

def test_ar_attack_budgets_and_quantisation():
    ds = small_set()
    p = REGISTRY["ar"].fn(ds, seed=0, quiet=True)
    assert p.poisoned.images.dtype == torch.uint8 and p.perturbation.shape == (len(ds), 3, 32, 32)
    assert torch.allclose(p.perturbation.double().flatten(1).norm(dim=1), torch.ones(len(ds), dtype=torch.float64),
                          atol=1e-5)
    expected = torch.floor((ds.to_float() + p.perturbation).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    assert torch.equal(p.poisoned.images, expected)
    assert p.params["eps"] == 1.0 and p.info["coefficients"] == "cifar10" and p.info["raw_l2_max"] < 1e3
    assert p.info["delta_linf_median"] == pytest.approx(float(p.perturbation.abs().amax((1, 2, 3)).median()))
    # own/other diagnostic: the generated δ answers ~0 to its own filter; clipping + quantisation spoil that a little
    assert p.info["own_other_ratio_delta"] < 1e-3 < p.info["own_other_ratio_stored"] < 1
    q = REGISTRY["ar-linf"].fn(ds, seed=0, quiet=True, rounding="truncate")
    assert torch.allclose(q.perturbation.abs().amax((1, 2, 3)), torch.full((len(ds),), 8 / 255), atol=1e-7)
    effective = (q.poisoned.images.float() - ds.images.float()).abs().max() / 255
    assert effective <= 8 / 255 + 1 / 255 + 1e-6 and q.rounding == "truncate"


def test_auto_coefficients_and_default_eps_for_other_shapes():
    ds = small_set(num_classes=12, size=16, n_per_class=1)
    p = REGISTRY["ar"].fn(ds, seed=0, quiet=True)
    assert p.info["coefficients"] == "cifar100" and p.info["generated_size"] == [20, 20]
    assert p.params["eps"] == pytest.approx(math.sqrt(3 * 16 * 16 / 3072))
    assert default_l2_eps((3, 32, 32)) == 1.0 and default_l2_eps((3, 96, 96)) == pytest.approx(3.0)
    gray = small_set(num_classes=3, channels=1, size=28, n_per_class=2)
    g = REGISTRY["ar"].fn(gray, seed=0, coefficients="find", quiet=True)
    assert g.params["eps"] == pytest.approx(math.sqrt(784 / 3072))
    assert g.info["coefficients"] == "find" and np.asarray(g.info["found_coefficients"]).shape == (3, 1, 3, 3)
    explicit = REGISTRY["ar"].fn(ds, seed=0, quiet=True, coefficients=released_coefficients("cifar100")[:12])
    assert torch.equal(explicit.perturbation, p.perturbation)


def test_errors_say_how_to_fix():
    gray = small_set(channels=1)
    with pytest.raises(ValueError, match=r"coefficients='find'.*rgb=True"):
        REGISTRY["ar"].fn(gray, seed=0, quiet=True)
    with pytest.raises(ValueError, match="find_ar_coefficients"):
        REGISTRY["ar"].fn(small_set(num_classes=11, n_per_class=1), seed=0, coefficients="cifar10", quiet=True)
    with pytest.raises(ValueError, match="at most 100 classes.*find"):
        REGISTRY["ar"].fn(small_set(num_classes=101, size=4, n_per_class=1), seed=0, quiet=True)
    ds = small_set()
    with pytest.raises(ValueError, match="positive"):
        REGISTRY["ar"].fn(ds, seed=0, eps=-1.0, quiet=True)
    with pytest.raises(ValueError, match="exceeds"):
        REGISTRY["ar"].fn(ds, seed=0, eps=100.0, quiet=True)
    with pytest.raises(ValueError, match="8/255"):
        REGISTRY["ar-linf"].fn(ds, seed=0, eps=8, quiet=True)
    with pytest.raises(TypeError, match="ImageSet"):
        REGISTRY["ar"].fn(ds.images, seed=0, quiet=True)
    with pytest.raises(ValueError, match=r"\(K, C, 3, 3\)"):
        REGISTRY["ar"].fn(ds, seed=0, coefficients=np.zeros((4, 3, 2, 2)), quiet=True)
    with pytest.raises(ValueError, match="channel"):
        REGISTRY["ar"].fn(ds, seed=0, coefficients=find_ar_coefficients(4, channels=1), quiet=True)
    with pytest.raises(ValueError, match="bottom-right"):
        REGISTRY["ar"].fn(ds, seed=0, coefficients=np.ones((4, 3, 3, 3)), quiet=True)
    with pytest.raises(ValueError, match="at least one per class"):
        REGISTRY["ar"].fn(ds, seed=0, coefficients=released_coefficients("cifar10")[:2], quiet=True)
    with pytest.raises(ValueError, match="coefficients must be one of"):
        REGISTRY["ar"].fn(ds, seed=0, coefficients="imagenet", quiet=True)
    with pytest.raises(ValueError, match="rounding"):
        REGISTRY["ar"].fn(ds, seed=0, rounding="floor", quiet=True)
    with pytest.raises(ValueError, match="crop"):
        REGISTRY["ar"].fn(ds, seed=0, crop=-1, quiet=True)


def test_make_poison_runs_and_caches(monkeypatch):
    ds = small_set(num_classes=3, n_per_class=4)
    first = make_poison("ar", ds, seed=1, device="cpu", quiet=True)
    assert first.attack == "ar" and first.poisoned.images.dtype == torch.uint8
    assert not torch.equal(first.poisoned.images, ds.images)

    def boom(*args, **kwargs):
        raise AssertionError("the second call must load the cached poison")

    monkeypatch.setattr(ar_attack, "generate_ar", boom)
    second = make_poison("ar", ds, seed=1, device="cpu", quiet=True)
    assert torch.equal(second.poisoned.images, first.poisoned.images)
    with pytest.raises(AssertionError, match="cached"):
        make_poison("ar", ds, seed=2, device="cpu", quiet=True)
    tensor_coeffs = torch.from_numpy(released_coefficients("cifar10")[:3])
    monkeypatch.undo()
    # the cache keeps AR's images, not its δ: δ is rebuilt from the seed on first access (recompute_delta)
    assert torch.equal(second.perturbation, first.perturbation)
    p = make_poison("ar-linf", ds, seed=1, device="cpu", quiet=True, coefficients=tensor_coeffs)
    assert p.params["coefficients"] == tensor_coeffs.tolist()
