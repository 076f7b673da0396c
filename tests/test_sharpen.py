"""Sharpening (SSK/RSK) + DCT low-pass (FF): kernels, the matrix DCT, the batched transform, the trainer hook."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.defenses import REGISTRY, apply_defense, get_defense
from uel_helpers.training import Protocol, augment, get_protocol, train
from uel_helpers.transforms import (
    dct2,
    dct_lowpass,
    dct_matrix,
    idct2,
    kept_block,
    random_crop,
    random_cutout,
    random_flip,
    rsk_kernels,
    sharpen,
    sharpen_filter,
    ssk_kernel,
)

NAMES = ("rsk+ff", "ssk+ff", "ff", "rsk", "ssk")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth(n: int = 3, c: int = 3, h: int = 30, w: int = 30, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Images around 0.5 with mild noise: their low-pass stays inside [0, 1], so the final clamp is a no-op."""
    return (0.5 + 0.1 * torch.rand(n, c, h, w, generator=_gen(seed), dtype=torch.float64).sub(0.5)).to(dtype)


# --- DCT --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 8, 30, 32])
def test_dct_matrix_is_orthonormal(n):
    c = dct_matrix(n, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    torch.testing.assert_close(c @ c.T, eye, rtol=0, atol=1e-12)
    torch.testing.assert_close(c.T @ c, eye, rtol=0, atol=1e-12)


def test_dct_matrix_is_cached_per_size_device_dtype():
    assert dct_matrix(30) is dct_matrix(30, "cpu", torch.float32)
    assert dct_matrix(30, dtype=torch.float64) is not dct_matrix(30)
    assert dct_matrix(30).dtype == torch.float32 and dct_matrix(31).shape == (31, 31)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            dct_matrix(bad)


def test_dct_matches_the_cos_sum_formula():
    h, w = 5, 4
    x = torch.rand(h, w, generator=_gen(1), dtype=torch.float64)

    def alpha(k: int, n: int) -> float:
        return math.sqrt((1 if k == 0 else 2) / n)

    direct = torch.zeros(h, w, dtype=torch.float64)
    for k in range(h):
        for q in range(w):
            direct[k, q] = alpha(k, h) * alpha(q, w) * sum(
                float(x[m, j]) * math.cos(math.pi * (2 * m + 1) * k / (2 * h)) * math.cos(math.pi * (2 * j + 1) * q
                                                                                         / (2 * w))
                for m in range(h) for j in range(w))
    torch.testing.assert_close(dct2(x), direct, rtol=0, atol=1e-12)
    torch.testing.assert_close(idct2(direct), x, rtol=0, atol=1e-12)


def test_dct_matches_scipy():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = torch.rand(2, 3, 30, 32, generator=_gen(2), dtype=torch.float64)
    want = scipy_fft.dctn(x.numpy(), type=2, axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(dct2(x).numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(idct2(torch.from_numpy(want)).numpy(), x.numpy(), rtol=0, atol=1e-12)


def test_round_trip_and_100_percent_are_the_identity():
    x = torch.rand(2, 3, 30, 30, generator=_gen(3), dtype=torch.float64)
    torch.testing.assert_close(idct2(dct2(x)), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(dct_lowpass(x, 100), x, rtol=0, atol=1e-12)
    x32 = torch.rand(2, 1, 32, 32, generator=_gen(3))
    torch.testing.assert_close(dct_lowpass(x32, 100.0), x32, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("h", "w", "percent", "kh", "kw"), [
    (30, 30, 30, 9, 9),      # after sharpening a CIFAR image: 81 of 900 coefficients
    (32, 32, 30, 9, 9),      # FF alone on CIFAR: floor(9.6) = 9
    (30, 20, 30.0, 9, 6),
    (28, 28, 50, 14, 14),
    (8, 8, 12.5, 1, 1),
])
def test_lowpass_keeps_exactly_the_floor_block(h, w, percent, kh, kw):
    assert kept_block(h, w, percent) == (kh, kw)
    x = _smooth(2, 3, h, w)
    y = dct_lowpass(x, percent)
    assert y.shape == x.shape and y.dtype == x.dtype
    spec, want = dct2(y), dct2(x)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:kh, :kw] = True
    torch.testing.assert_close(spec[..., mask], want[..., mask], rtol=0, atol=1e-12)  # the block is kept as is
    assert spec[..., ~mask].abs().max() < 1e-12  # everything else is zero
    # computing only the kept block equals the definition: full DCT, mask, full inverse DCT, clamp
    torch.testing.assert_close(y, idct2(dct2(x) * mask).clamp(0, 1), rtol=0, atol=1e-12)


def test_lowpass_clamps_to_unit_range():
    x = (torch.rand(4, 3, 16, 16, generator=_gen(4)) > 0.5).float()  # a hard pattern: the low-pass rings
    assert dct_lowpass(x, 30).min() >= 0 and dct_lowpass(x, 30).max() <= 1
    unclamped = idct2(dct2(x) * (torch.arange(16)[:, None] < 4) * (torch.arange(16) < 4))
    assert unclamped.min() < 0 or unclamped.max() > 1  # so the clamp did something here


# --- kernels and the batched sharpen --------------------------------------------------------------------------


def test_ssk_kernel_is_plus_shaped_and_sums_to_one():
    k = ssk_kernel()
    torch.testing.assert_close(k, torch.tensor([[0, -0.375, 0], [-0.375, 2.5, -0.375], [0, -0.375, 0]]))
    for c in (1.5, 2.5, 3.0, 7.25):
        assert float(ssk_kernel(c, dtype=torch.float64).sum()) == pytest.approx(1.0, abs=1e-15)
    x = torch.full((2, 3, 7, 9), 0.4)
    torch.testing.assert_close(sharpen(x, ssk_kernel()), torch.full((2, 3, 5, 7), 0.4))  # a flat image stays flat


def test_sharpen_equals_a_per_image_conv2d_loop():
    x = torch.rand(5, 3, 12, 10, generator=_gen(5))
    kernels = rsk_kernels(5, generator=_gen(6))
    out = sharpen(x, kernels)
    assert out.shape == (5, 3, 10, 8)
    for i in range(5):
        want = F.conv2d(x[i:i + 1], kernels[i].expand(3, 1, 3, 3), groups=3).clamp(0, 1)
        torch.testing.assert_close(out[i:i + 1], want, rtol=0, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1
    # one (3, 3) kernel is broadcast to every image; 1-channel images work the same
    torch.testing.assert_close(sharpen(x, ssk_kernel()), sharpen(x, ssk_kernel().expand(5, 3, 3)))
    torch.testing.assert_close(sharpen(x[:, :1], kernels), out[:, :1])  # channels are independent
    assert sharpen(x[:0], ssk_kernel()).shape == (0, 3, 10, 8)


def test_sharpen_rejects_bad_shapes():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\(3, 3\) or \(N, 3, 3\) with N = 2"):
        sharpen(x, rsk_kernels(3))
    with pytest.raises(ValueError, match="at least 3x3"):
        sharpen(torch.rand(2, 3, 2, 8), ssk_kernel())
    with pytest.raises(ValueError, match="float tensor"):
        sharpen(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), ssk_kernel())
    with pytest.raises(ValueError, match="float tensor"):
        dct_lowpass(torch.rand(3, 8, 8))


def test_rsk_kernels_differ_and_repeat_with_the_seed():
    a = rsk_kernels(8, generator=_gen(0))
    assert a.shape == (8, 3, 3)
    assert (a[:, [0, 0, 2, 2], [0, 2, 0, 2]] == 0).all()  # plus-shaped: corners are 0
    assert len({tuple(k.flatten().tolist()) for k in a}) == 8  # one kernel per image
    gen = _gen(0)
    first, second = rsk_kernels(8, generator=gen), rsk_kernels(8, generator=gen)
    torch.testing.assert_close(first, a, rtol=0, atol=0)  # same seed, same kernels
    assert not torch.equal(first, second)  # each call (each epoch) draws new ones
    assert rsk_kernels(0).shape == (0, 3, 3)
    torch.testing.assert_close(rsk_kernels(4, std=0.0), ssk_kernel().expand(4, 3, 3))


def test_rsk_statistics():
    k = rsk_kernels(40_000, generator=_gen(7), dtype=torch.float64)
    c = k[:, 1, 1]
    n = -k[:, [0, 1, 1, 2], [1, 0, 2, 1]]  # n1..n4
    assert float(c.mean()) == pytest.approx(2.5, abs=0.003)
    assert float(c.std()) == pytest.approx(0.1, rel=0.03)
    resid = n - ((c - 1) / 4)[:, None]  # n_i ~ N((c-1)/4, 0.1) around each kernel's own centre
    assert resid.mean(0).abs().max() < 0.003
    assert resid.std(0).sub(0.1).abs().max() < 0.003
    assert torch.corrcoef(resid.T).sub(torch.eye(4, dtype=torch.float64)).abs().max() < 0.03  # independent
    assert n.mean(0).sub(0.375).abs().max() < 0.003
    assert n.std(0).sub(math.sqrt(0.1**2 + (0.1 / 4) ** 2)).abs().max() < 0.004
    assert float(k.sum((1, 2)).mean()) == pytest.approx(1.0, abs=0.005)  # taps sum to 1 in expectation only


def test_batched_transform_matches_a_per_image_reference():
    """With identical kernels the batched RSK+FF equals a per-image transcription of the reference
    (`sharpen_image`, then `get_dct_image`, `aseriesof-tubes/RSK@911680e`) to float tolerance."""
    x = torch.rand(6, 3, 32, 32, generator=_gen(8))
    kernels = rsk_kernels(6, generator=_gen(9))
    c30 = dct_matrix(30)
    mask = torch.zeros(30, 30)
    mask[:9, :9] = 1
    for i in range(6):
        s = F.conv2d(x[i], kernels[i].repeat(3, 1, 1, 1), groups=3).clamp(0, 1)  # (3, 30, 30), no padding
        want = (c30.T @ ((c30 @ s @ c30.T) * mask) @ c30).clamp(0, 1)
        got = dct_lowpass(sharpen(x[i:i + 1], kernels[i:i + 1]), 30)[0]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(sharpen_filter(x, "rsk", generator=_gen(9)),
                               dct_lowpass(sharpen(x, kernels), 30), rtol=0, atol=0)
    torch.testing.assert_close(sharpen_filter(x, "ssk", percent=None), sharpen(x, ssk_kernel()))
    torch.testing.assert_close(sharpen_filter(x, "none", percent=30), dct_lowpass(x, 30))


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [0, -1, 101, 100.5, float("nan"), float("inf")])
def test_bad_percent_is_a_value_error(percent):
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"percent must be in \(0, 100\]"):
        dct_lowpass(x, percent)
    with pytest.raises(ValueError, match=r"percent must be in \(0, 100\]"):
        apply_defense("rsk+ff", synthetic_dataset(2, 2, size=8), get_protocol("smoke"), percent=percent)


@pytest.mark.parametrize("percent", [True, "30", None])
def test_non_number_percent_is_a_type_error(percent):
    with pytest.raises(TypeError, match=r"percent must be a real number in \(0, 100\]"):
        dct_lowpass(torch.rand(1, 3, 8, 8), percent)
    with pytest.raises(TypeError, match="percent must be a real number"):
        apply_defense("ff", synthetic_dataset(2, 2, size=8), get_protocol("smoke"), percent=percent)


def test_percent_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError, match=r"keeps no DCT coefficient of a 8x8 image.*percent >= 12\.5"):
        dct_lowpass(torch.rand(1, 1, 8, 8), 10)
    tiny = ImageSet(torch.zeros(4, 3, 4, 4, dtype=torch.uint8), torch.arange(4) % 2, ["a", "b"])
    with pytest.raises(ValueError, match="keeps no DCT coefficient of a 2x2 image"):
        apply_defense("rsk+ff", tiny, get_protocol("smoke"))  # 4x4 sharpened to 2x2, floor(0.6) = 0
    with pytest.raises(ValueError, match="at least 3x3"):
        apply_defense("ssk", ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.arange(2), ["a", "b"]),
                      get_protocol("smoke"))


@pytest.mark.parametrize("center", [1, 1.0, 0.5, -2, float("nan")])
def test_center_at_most_one_is_a_value_error(center):
    with pytest.raises(ValueError, match="a kernel centre <= 1 does not sharpen"):
        ssk_kernel(center)
    with pytest.raises(ValueError, match="a kernel centre <= 1 does not sharpen"):
        rsk_kernels(2, center)
    with pytest.raises(ValueError, match="a kernel centre <= 1 does not sharpen"):
        apply_defense("ssk+ff", synthetic_dataset(2, 2, size=8), get_protocol("smoke"), center=center)


# (call, expected exception, message pattern); one case, one failure
OTHER_BAD_KERNEL_ARGUMENTS = {
    "ssk center=True": (lambda: ssk_kernel(True), TypeError, "center must be a real number > 1"),
    "rsk n=-1": (lambda: rsk_kernels(-1), ValueError, "n must be an int >= 0"),
    "rsk std=-0.1": (lambda: rsk_kernels(2, std=-0.1), ValueError, "std must be a real number >= 0"),
    "mode='blur'": (lambda: sharpen_filter(torch.rand(1, 3, 8, 8), "blur"), ValueError, "unknown mode 'blur'"),
    "nothing to do": (lambda: sharpen_filter(torch.rand(1, 3, 8, 8), "none", percent=None), ValueError,
                      "nothing to do"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(OTHER_BAD_KERNEL_ARGUMENTS.values()),
                         ids=list(OTHER_BAD_KERNEL_ARGUMENTS))
def test_other_bad_kernel_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"sharpen": "blur"}, ValueError, "unknown sharpen 'blur'; expected one of"),
    ({"sharpen_center": 1.0}, ValueError, "sharpen_center must be > 1"),
    ({"sharpen_center": 0.5, "sharpen": "rsk"}, ValueError, "sharpen_center must be > 1"),
    ({"lowpass_percent": 101.0}, ValueError, r"lowpass_percent must be in \[0, 100\]"),
    ({"lowpass_percent": -1.0}, ValueError, r"lowpass_percent must be in \[0, 100\]"),
    ({"lowpass_percent": float("nan")}, ValueError, r"lowpass_percent must be in \[0, 100\]"),
    ({"lowpass_percent": True}, TypeError, "lowpass_percent must be a real number"),
    ({"sharpen_center": "2.5"}, TypeError, "sharpen_center must be a real number"),
])
def test_protocol_fields_are_validated(changes, error, message):
    with pytest.raises(error, match=message):
        get_protocol("smoke").with_(**changes)
    with pytest.raises(error, match=message):
        Protocol("x", "smallcnn", 1, 1, 0.1, **changes)


# --- registry ------------------------------------------------------------------------------------------------


def test_registered_as_train_defenses_with_their_parameters():
    assert set(NAMES) <= set(REGISTRY)
    for name in NAMES:
        d = get_defense(name)
        assert d.kind == "train" and d.reading == "final", name
        assert "test set is never touched" in d.description, name
    assert get_defense("rsk+ff").params == {"center": 2.5, "percent": 30.0}
    assert get_defense("ssk+ff").params == {"center": 2.5, "percent": 30.0}
    assert get_defense("ff").params == {"percent": 30.0}
    assert get_defense("rsk").params == {"center": 2.5} and get_defense("ssk").params == {"center": 2.5}
    for name in ("rsk", "ssk"):
        assert "crashes" in get_defense(name).description and "ToTensor" in get_defense(name).description


@pytest.mark.parametrize(("name", "fields"), [
    ("rsk+ff", {"sharpen": "rsk", "sharpen_center": 2.5, "lowpass_percent": 30.0, "whiten": False}),
    ("ssk+ff", {"sharpen": "ssk", "sharpen_center": 2.5, "lowpass_percent": 30.0, "whiten": False}),
    ("ff", {"sharpen": "none", "lowpass_percent": 30.0, "whiten": False}),
    ("rsk", {"sharpen": "rsk", "sharpen_center": 2.5, "lowpass_percent": 0.0}),
    ("ssk", {"sharpen": "ssk", "sharpen_center": 2.5, "lowpass_percent": 0.0}),
])
def test_apply_defense_sets_the_protocol_fields(name, fields):
    ds = synthetic_dataset(4, 2, size=32)
    proto = get_protocol("smoke")
    out, p = apply_defense(name, ds, proto)
    assert out is ds  # the training set is not purified: the trainer transforms every batch
    assert {k: getattr(p, k) for k in fields} == fields
    assert get_defense(name).protocol_changes == fields
    assert p.with_(sharpen="none", sharpen_center=2.5, lowpass_percent=0.0, whiten=proto.whiten) == proto
    assert {k: p.to_dict()[k] for k in fields} == fields  # flows into History configs and cache keys


def test_apply_defense_passes_parameters():
    ds = synthetic_dataset(4, 2, size=32)
    _, p = apply_defense("rsk+ff", ds, get_protocol("smoke"), center=3, percent=50)
    assert (p.sharpen, p.sharpen_center, p.lowpass_percent) == ("rsk", 3.0, 50.0)
    assert isinstance(p.sharpen_center, float) and isinstance(p.lowpass_percent, float)
    _, p = apply_defense("ff", ds, get_protocol("smoke").with_(sharpen="ssk"), percent=20)
    assert (p.sharpen, p.lowpass_percent) == ("none", 20.0)  # FF alone, whatever the protocol had


# --- the trainer hook ----------------------------------------------------------------------------------------


def _old_augment(x: torch.Tensor, protocol: Protocol, gen: torch.Generator) -> torch.Tensor:
    """`augment` as it was before sharpening existed: crop, flip, cutout."""
    x = random_crop(x, protocol.crop_padding, gen)
    if protocol.flip:
        x = random_flip(x, gen)
    if protocol.cutout:
        x = random_cutout(x, protocol.cutout, gen)
    return x


@pytest.mark.parametrize("changes", [{}, {"crop_padding": 4, "cutout": 8}, {"crop_padding": 0, "flip": False}])
def test_default_augment_is_unchanged(changes):
    proto = get_protocol("smoke").with_(**changes)
    x = torch.rand(8, 3, 16, 16, generator=_gen(10))
    assert (proto.sharpen, proto.lowpass_percent) == ("none", 0.0)
    torch.testing.assert_close(augment(x, proto, _gen(11)), _old_augment(x, proto, _gen(11)), rtol=0, atol=0)


def test_sharpened_crop_equals_the_reference_geometry():
    """Sharpen 32->30, filter, then RandomCrop(32, padding=4) of the 30x30 image: 38x38 padded, 7 offsets."""
    x = torch.rand(16, 3, 32, 32, generator=_gen(12))
    proto = get_protocol("smoke").with_(sharpen="rsk", lowpass_percent=30.0, crop_padding=4, flip=False)
    got = augment(x, proto, _gen(13))
    gen = _gen(13)  # the same stream: the kernels first, then the crop offsets
    small = dct_lowpass(sharpen(x, rsk_kernels(16, generator=gen)), 30)
    assert small.shape == (16, 3, 30, 30)
    dy, dx = torch.randint(0, 7, (16,), generator=gen), torch.randint(0, 7, (16,), generator=gen)
    padded = F.pad(small, (4, 4, 4, 4))
    want = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(16)])
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # at least one black row (top or bottom) and one black column (left or right) in every image, as the reference
    flipped = augment(x, proto.with_(flip=True), _gen(14))
    for img in (got, flipped):
        rows = (img[:, :, 0, :] == 0).flatten(1).all(1) | (img[:, :, -1, :] == 0).flatten(1).all(1)
        cols = (img[:, :, :, 0] == 0).flatten(1).all(1) | (img[:, :, :, -1] == 0).flatten(1).all(1)
        assert rows.all() and cols.all()


def test_crop_padding_0_and_1_and_ff_alone():
    x = torch.rand(4, 1, 12, 12, generator=_gen(15))
    base = get_protocol("smoke").with_(flip=False, sharpen="ssk")
    framed = F.pad(sharpen(x, ssk_kernel()), (1, 1, 1, 1))
    for pad in (0, 1):  # nothing to draw: the sharpened image in a 1-pixel black frame
        torch.testing.assert_close(augment(x, base.with_(crop_padding=pad), _gen(0)), framed, rtol=0, atol=0)
    ff = get_protocol("smoke").with_(flip=False, crop_padding=0, lowpass_percent=50.0)
    torch.testing.assert_close(augment(x, ff, _gen(0)), dct_lowpass(x, 50), rtol=0, atol=0)  # full size


def test_rsk_augment_is_redrawn_per_call_and_repeats_with_the_seed():
    x = torch.rand(4, 3, 10, 10, generator=_gen(16))
    proto = get_protocol("smoke").with_(sharpen="rsk", crop_padding=0, flip=False)
    gen = _gen(1)
    a, b = augment(x, proto, gen), augment(x, proto, gen)
    assert not torch.equal(a, b)
    torch.testing.assert_close(augment(x, proto, _gen(1)), a, rtol=0, atol=0)


@pytest.fixture(scope="module")
def tiny_16px():
    return (synthetic_dataset(n_per_class=10, num_classes=4, size=16, seed=1),
            synthetic_dataset(n_per_class=5, num_classes=4, size=16, seed=1))


@pytest.mark.parametrize("name", NAMES)
def test_train_runs_with_each_defense(tiny_16px, name):
    train_set, test_set = tiny_16px
    data, proto = apply_defense(name, train_set, get_protocol("smoke").with_(epochs=1, batch_size=20))
    h = train(data, test_set, proto, seed=0, device="cpu", quiet=True)
    assert h.epochs == 1 and 0 <= h.test_acc[0] <= 1 and math.isfinite(h.train_loss[0])
    assert h.config["protocol"]["sharpen"] == proto.sharpen
    assert h.config["protocol"]["lowpass_percent"] == proto.lowpass_percent


def test_lowpass_with_a_whitened_judge_warns(tiny_16px):
    """A low-pass with FastNet's whitening on breaks the judge (module docstring): the trainer says so."""
    train_set, test_set = tiny_16px
    whitened = get_protocol("fast").with_(model="fastnet-small", epochs=1, batch_size=20, max_test=20)
    with pytest.warns(UserWarning, match="Set whiten=False"):
        train(train_set, test_set, whitened.with_(lowpass_percent=50.0), seed=0, device="cpu", quiet=True)
    _, defended = apply_defense("rsk+ff", train_set, whitened)
    assert defended.whiten is False and defended.model == "fastnet-small"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(train_set, test_set, defended, seed=0, device="cpu", quiet=True)
