"""Tests for the orthogonal projection attack (defenses/projection.py) and the affine uint8 code it stores."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import uel_helpers.training as training
from uel_helpers import poisons
from uel_helpers.data import ImageSet, affine_code, decode_affine, decode_images, encode_images, quantize
from uel_helpers.defenses import REGISTRY, apply_defense, get_defense
from uel_helpers.defenses.projection import (
    SAMPLEWISE_ATTACKS,
    fit_linear_weights,
    milestones,
    project,
    project_out,
    projection_basis,
)
from uel_helpers.models import FastNet
from uel_helpers.training import get_protocol, train

K, C, S = 4, 1, 8  # 4 classes of 8x8 gray images: D = 64
D = C * S * S


def _poisoned(per_class: int = 250, eps: float = 32 / 255, classwise: bool = True, seed: int = 0):
    """Uniform random images (they carry no class information) + a ±eps sign perturbation.

    Class-wise: one δ_c per class; sample-wise: one δ_i per image. Images are scaled into [eps, 1 - eps] first,
    so x + δ never needs clipping and the stored δ is exactly the constructed one up to quantisation.
    Returns (ImageSet, δ per class (K, D) or per image (N, D)).
    """
    g = torch.Generator().manual_seed(seed)
    n = K * per_class
    labels = torch.arange(n) % K
    clean = torch.rand(n, C, S, S, generator=g) * (1 - 2 * eps) + eps
    rows = K if classwise else n
    delta = eps * torch.sign(torch.randn(rows, C, S, S, generator=g))
    x = clean + (delta[labels] if classwise else delta)
    ds = ImageSet(quantize(x), labels, [f"c{k}" for k in range(K)], name="syn")
    return ds, delta.reshape(rows, -1).double()


def _outside_fraction(v: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per row of v, the fraction of its squared norm outside span(Q)."""
    return project_out(v, q).pow(2).sum(1) / v.pow(2).sum(1)


# --- the linear algebra --------------------------------------------------------------------------------------

def test_basis_is_orthonormal_and_spans_the_rows():
    w = torch.randn(5, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = projection_basis(w)
    assert q.shape == (50, 5) and q.dtype == torch.float64
    assert torch.allclose(q.T @ q, torch.eye(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(project_out(w, q), torch.zeros_like(w), atol=1e-10)  # every row lies in span(Q)
    # normalising (or rescaling) the rows does not change the span, hence not the projector
    q2 = projection_basis(w * torch.tensor([[3.0], [0.1], [7.0], [1.0], [0.5]], dtype=torch.float64))
    assert torch.allclose(q @ q.T, q2 @ q2.T, atol=1e-10)


def test_project_out_removes_exactly_the_span():
    g = torch.Generator().manual_seed(1)
    q = projection_basis(torch.randn(3, 40, generator=g))
    x = torch.rand(30, 40, generator=g, dtype=torch.float64)
    xr = project_out(x, q)
    assert torch.allclose(xr @ q, torch.zeros(30, 3, dtype=torch.float64), atol=1e-12)  # X_r Q = 0
    assert torch.allclose(xr + (x @ q) @ q.T, x, atol=1e-12)
    assert torch.allclose(project_out(xr, q), xr, atol=1e-12)  # a projection: idempotent
    assert project_out(x.float(), q).dtype == torch.float32


def test_classwise_perturbations_lie_in_the_span_of_w():
    """The premise of the attack (arXiv 2305.19254 §4.4): the logistic-regression directions capture class-wise δ_c.

    Construction: the clean images are uniform noise independent of the labels, so the only class signal is δ_c.
    The ideal bias-free logistic regression weights lie in span{class means} = span{mean image, δ_c}, which
    contains every class-discriminative direction δ_c - mean_c δ_c. A random K-dimensional subspace would leave
    1 - K/D = 94% of that energy outside; "mostly gone" here means less than 10% is left outside span(Q).
    Batch 32 gives 620 SGD steps, the reference's regime (980 on CIFAR-10), not the 20 of one batch per epoch.
    """
    ds, delta = _poisoned(classwise=True)
    w = fit_linear_weights(ds, batch_size=32, cache=False, quiet=True, device="cpu")
    assert w.shape == (K, D) and w.dtype == torch.float32
    q = projection_basis(w)
    disc = delta - delta.mean(0)
    left = project_out(disc, q).pow(2).sum() / disc.pow(2).sum()
    assert left < 0.10, f"{float(left):.3f} of the class-wise perturbation energy is outside span(W)"
    random_q = projection_basis(torch.randn(K, D, generator=torch.Generator().manual_seed(5)))
    assert _outside_fraction(disc, random_q).mean() > 0.8  # the baseline the criterion is read against


def test_samplewise_perturbations_do_not_lie_in_the_span():
    """Why the attack should fail on sample-wise poisons: a sample-wise δ_i is not confined to K directions,
    span(Q) holds about K/D of its energy.

    Criterion: on average more than 1 - 2K/D (87.5%) of each δ_i stays outside span(Q) (random: 1 - K/D = 93.75%).
    """
    ds, delta = _poisoned(classwise=False)
    q = projection_basis(fit_linear_weights(ds, batch_size=32, cache=False, quiet=True, device="cpu"))
    assert _outside_fraction(delta, q).mean() > 1 - 2 * K / D


def test_milestones_are_half_and_three_quarters():
    assert milestones(20) == (10, 15)
    assert milestones(4) == (2, 3)


# --- the affine uint8 code -----------------------------------------------------------------------------------

def test_affine_code_round_trip_within_half_a_step():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 3, 5, 5, generator=g) * 3.8 - 2.0  # like projected CIFAR: about [-2, 1.8]
    code = affine_code(float(x.min()), float(x.max()))
    assert code["offset"] == pytest.approx(float(x.min())) and code["scale"] == pytest.approx(float(x.max() - x.min()))
    u8 = encode_images(x, code)
    assert u8.dtype == torch.uint8 and int(u8.min()) == 0 and int(u8.max()) == 255
    back = decode_images(u8, {"decode": code})
    step = code["scale"] / 255
    assert float((back - x).abs().max()) <= step / 2 + 1e-5
    # a constant set gets scale 1 and decodes exactly
    const = torch.full((2, 1, 3, 3), -0.25)
    c2 = affine_code(-0.25, -0.25)
    assert c2 == {"scale": 1.0, "offset": -0.25}
    assert torch.equal(decode_images(encode_images(const, c2), {"decode": c2}), const)


def test_decode_without_code_is_the_plain_division():
    u8 = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(decode_images(u8, {}), u8.float().div_(255.0))
    assert torch.equal(decode_images(u8, None), u8.float().div_(255.0))
    assert decode_affine({"attack": "ar"}) == (1.0, 0.0)


@pytest.mark.parametrize("bad", [{"scale": 0.0, "offset": 0.0}, {"scale": -1.0, "offset": 0.0}, {"scale": 1.0},
                                 {"scale": float("nan"), "offset": 0.0}, {"scale": "x", "offset": 0}, [1.0, 0.0]])
def test_bad_codes_are_errors(bad):
    with pytest.raises(ValueError, match="decode"):
        decode_affine({"decode": bad})


def test_encode_refuses_values_outside_the_code():
    with pytest.raises(ValueError, match="outside the code's range"):
        encode_images(torch.tensor([0.0, 2.0]), {"scale": 1.0, "offset": 0.0})
    with pytest.raises(ValueError, match="lo <= hi"):
        affine_code(1.0, 0.0)
    with pytest.raises(TypeError, match="uint8"):
        decode_images(torch.zeros(2, 1, 2, 2), {})


# --- the registered purifier ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small() -> ImageSet:
    ds, _ = _poisoned(per_class=30, eps=16 / 255)
    return ds


def test_project_stores_x_r_exactly_as_an_affine_code(small):
    out = project(small, batch_size=32, quiet=True, device="cpu")
    w = fit_linear_weights(small, batch_size=32, quiet=True, device="cpu")  # the same W, from the cache
    q = projection_basis(w)
    x = small.to_float().reshape(len(small), -1).double()
    xr = project_out(x, q)
    code = out.meta["decode"]
    assert code["offset"] == pytest.approx(float(xr.min()), abs=1e-5)
    assert code["offset"] + code["scale"] == pytest.approx(float(xr.max()), abs=1e-5)
    assert float(xr.min()) < 0  # X_r leaves [0, 1] ... and is not clipped:
    decoded = decode_images(out.images, out.meta).reshape(len(out), -1).double()
    step = code["scale"] / 255
    assert float((decoded - xr).abs().max()) <= step / 2 + 1e-5
    info = out.meta["projection"]
    assert info["quantisation_step"] == pytest.approx(step) and info["rank"] == K
    assert info["sgd_steps"] == 20 * math.ceil(len(small) / 32) and 1 / K < info["linear_train_acc"] <= 1
    assert any("quantisation step" in note for note in info["notes"])
    assert out.name == "syn+projection" and out.meta["defenses"] == ["projection"]
    assert torch.equal(out.labels, small.labels) and out.classes == small.classes
    assert "decode" not in small.meta  # the input is untouched
    assert torch.equal(project(small, batch_size=32, quiet=True, device="cpu", cache=False).images, out.images)


def test_the_code_survives_subsets_copies_and_files(small, tmp_path):
    out = project(small, batch_size=32, quiet=True, device="cpu")
    code = out.meta["decode"]
    assert out.take_per_class(5).meta["decode"] == code
    assert out.subset([0, 3]).meta["decode"] == code
    assert "decode" not in out.with_images(out.images.clone()).meta  # new bytes: a code must be given again
    back = ImageSet.load(out.save(tmp_path / "p.npz"))
    assert back.meta["decode"] == code  # JSON keeps Python floats exactly
    assert torch.equal(decode_images(back.images, back.meta), decode_images(out.images, out.meta))


def test_trainer_decodes_the_code(small, monkeypatch):
    """train() turns the projected uint8 training images into the decoded floats (batches and Normalize stats)."""
    out = project(small, batch_size=32, quiet=True, device="cpu")
    decoded = decode_images(out.images, out.meta)
    seen = []

    def spy(images_u8, meta=None):
        x = decode_images(images_u8, meta)
        seen.append((float(x.min()), float(x.max())))
        return x

    monkeypatch.setattr(training, "decode_images", spy)
    test_set = ImageSet(small.images[:8], small.labels[:8], small.classes)
    _, net = train(out, test_set, get_protocol("smoke", epochs=1, batch_size=40), device="cpu", quiet=True,
                   return_model=True)
    assert seen and min(lo for lo, _ in seen) < 0  # the batches were decoded, not divided by 255
    mean = decoded.double().mean((0, 2, 3))
    std = decoded.double().std((0, 2, 3), unbiased=False)
    assert torch.allclose(net[0].mean.flatten().double(), mean, atol=1e-5)
    assert torch.allclose(net[0].std.flatten().double(), std, atol=1e-5)


def test_trainer_fits_fastnet_whitening_on_decoded_images(monkeypatch):
    ds, _ = _poisoned(per_class=6, eps=16 / 255)
    ds = ImageSet(torch.nn.functional.interpolate(ds.images.float(), size=16).to(torch.uint8).repeat(1, 3, 1, 1),
                  ds.labels, ds.classes, name="syn16")
    out = project(ds, batch_size=8, epochs=2, quiet=True, device="cpu", cache=False)
    got = []
    original = FastNet.fit_whitening

    def spy(self, images, eps=5e-4):
        got.append(images.clone())
        return original(self, images, eps)

    monkeypatch.setattr(FastNet, "fit_whitening", spy)
    train(out, ds, get_protocol("fast", model="fastnet-small", epochs=1, batch_size=12), device="cpu", quiet=True)
    assert len(got) == 1
    expected = decode_images(out.images, out.meta)
    assert float(got[0].min()) < 0 and float(got[0].min()) == pytest.approx(float(expected.min()))


# --- warnings, registry, errors ------------------------------------------------------------------------------

def test_warns_for_samplewise_poisons_only(small):
    assert SAMPLEWISE_ATTACKS <= set(poisons.REGISTRY), "a sample-wise name is not a registered attack"
    for attack in ("em-samplewise", "ar"):
        ds = small.with_images(small.images, attack=attack)
        with pytest.warns(UserWarning, match=f"{attack}.*sample-wise"):
            project(ds, epochs=1, quiet=True, device="cpu", cache=False)
    for attack in ("em-classwise", "ops", "lsp", None):
        ds = small.with_images(small.images, attack=attack)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            project(ds, epochs=1, quiet=True, device="cpu", cache=False)


def test_registered_as_a_purifier(small):
    d = get_defense("projection")
    assert "projection" in REGISTRY and d.kind == "purify" and d.reading == "final"
    assert d.params == {"epochs": 20, "batch_size": 1024, "lr": 0.1, "seed": 0, "device": "auto", "quiet": False,
                        "cache": True}
    proto = get_protocol("smoke")
    out, p = apply_defense("projection", small, proto, epochs=2, quiet=True, device="cpu")
    assert p is proto and "decode" in out.meta and out.meta["projection"]["epochs"] == 2
    with pytest.raises(ValueError, match="has no parameter"):
        apply_defense("projection", small, proto, rank=3)


_TINY = ImageSet(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4), ["a", "b", "c", "d"])

# (call on the `small` set, expected exception, message pattern); one case, one failure
BAD_INPUTS = {
    "project tensor": (lambda ds: project(ds.images), TypeError, "expected an ImageSet"),
    "project epochs=0": (lambda ds: project(ds, epochs=0), ValueError, "epochs must be an integer >= 1"),
    "fit batch_size=2.5": (lambda ds: fit_linear_weights(ds, batch_size=2.5), TypeError,
                           "batch_size must be an integer"),
    "project lr=-0.1": (lambda ds: project(ds, lr=-0.1), ValueError, r"lr must lie in \(0, inf\)"),
    "project K >= D": (lambda ds: project(_TINY), ValueError, "K=4 class directions from D=4"),
    "basis zero row": (lambda ds: projection_basis(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])), ValueError,
                       "zero"),
    "basis 1-D": (lambda ds: projection_basis(torch.ones(3)), ValueError, r"\(K, D\)"),
    "basis K >= D": (lambda ds: projection_basis(torch.randn(4, 3)), ValueError, "1 <= K < D"),
    "basis NaN": (lambda ds: projection_basis(torch.tensor([[float("nan"), 1.0, 0.0]])), ValueError, "NaN"),
    "project_out D mismatch": (lambda ds: project_out(torch.zeros(2, 5), torch.zeros(4, 1)), ValueError, "same D"),
    "project_out uint8": (lambda ds: project_out(torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(4, 1)), TypeError,
                          "float images"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_inputs(small, call, error, match):
    with pytest.raises(error, match=match):
        call(small)
