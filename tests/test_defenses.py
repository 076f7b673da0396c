"""Tests for the defense registry and ISS's squeezes (grayscale, JPEG, BDR): PIL/torchvision-exact, fast."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import RandomPosterize

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.defenses import REGISTRY, Defense, apply_defense, bdr, get_defense, grayscale, jpeg, register
from uel_helpers.defenses.augment import default_cutout_size
from uel_helpers.training import Protocol, get_protocol

PURIFIERS = [name for name, d in REGISTRY.items() if d.kind == "purify"]
PROTOCOL_FIELDS = set(Protocol.__dataclass_fields__)


def _random_set(n: int = 16, channels: int = 3, size: int = 32, seed: int = 0, num_classes: int = 4) -> ImageSet:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.arange(n) % num_classes
    return ImageSet(images, labels, [f"c{k}" for k in range(num_classes)], name="rand")


@pytest.fixture(scope="module")
def rgb() -> ImageSet:
    return _random_set(16, 3, 32, seed=1)


@pytest.fixture(scope="module")
def gray1() -> ImageSet:
    return _random_set(12, 1, 28, seed=2)


def _needs_fields(names) -> None:
    """Every field a training-time defense sets must exist on the trainer's Protocol."""
    missing = sorted(set(names) - PROTOCOL_FIELDS)
    assert not missing, f"uel_helpers.training.Protocol has no field(s) {missing}"


def _pil_roundtrip(img: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)))


# --- registry -----------------------------------------------------------------------------------------

def test_registered_names():
    expected = {"none", "grayscale", "jpeg", "bdr", "iss-gray", "iss-jpeg", "iss-gray-jpeg", "adversarial-training",
                "cutout", "cutmix", "mixup", "early-stopping"}
    assert expected <= set(REGISTRY)


def test_unknown_name_lists_known_ones(rgb):
    with pytest.raises(ValueError, match="unknown defense 'nope'.*bdr.*grayscale.*jpeg"):
        get_defense("nope")
    with pytest.raises(ValueError, match="expected one of"):
        apply_defense("nope", rgb, get_protocol("smoke"))
    with pytest.raises(ValueError, match="unknown defense"):
        get_defense(None)  # type: ignore[arg-type]


def test_every_entry_is_described():
    for name, d in REGISTRY.items():
        assert isinstance(d, Defense) and d.name == name
        assert len(d.description) > 20, name
        assert d.kind in ("purify", "train", "reading", "none")
        assert d.reading in ("final", "peak")
        assert (d.purify is not None) == (d.kind == "purify")
    for name in ("grayscale", "jpeg", "iss-gray", "iss-jpeg", "iss-gray-jpeg"):
        assert "ISS" in get_defense(name).description
    assert get_defense("early-stopping").reading == "peak"
    assert get_defense("early-stopping").kind == "reading"
    assert get_defense("none").kind == "none"


def test_defaults_follow_apbench():
    assert get_defense("jpeg").params == {"quality": 10}
    assert get_defense("iss-gray-jpeg").params == {"quality": 10}
    assert get_defense("bdr").params == {"bits": 2}
    assert get_defense("cutout").protocol_changes == {"cutout": 16}
    assert get_defense("adversarial-training").protocol_changes == {
        "adv_eps": 8 / 255, "adv_steps": 10, "adv_step_size": 2 / 255}


# (call, expected exception, message pattern); one case, one failure
BAD_ENTRIES = {
    "registered twice": (lambda: register("jpeg", "again")(lambda ds: ds), ValueError, "registered twice"),
    "kind='magic'": (lambda: Defense("x", "a description", "magic"), ValueError, "kind"),
    "purify without function": (lambda: Defense("x", "a description", "purify"), ValueError, "purify function"),
    "reading='best'": (lambda: Defense("x", "a description", "none", reading="best"), ValueError, "reading"),
    "protocol changes of kind 'none'": (lambda: Defense("x", "a description", "none", protocol_changes={"cutout": 4}),
                                        ValueError, "only kind 'train'"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_ENTRIES.values()), ids=list(BAD_ENTRIES))
def test_register_twice_and_bad_entries(call, error, match):
    with pytest.raises(error, match=match):
        call()
    assert "x" not in REGISTRY


# --- grayscale -----------------------------------------------------------------------------------------

def test_grayscale_equals_pil_convert_L(rgb):
    out = grayscale(rgb)
    assert out.images.shape == rgb.images.shape and out.images.dtype == torch.uint8
    for i in range(len(rgb)):
        pil = np.asarray(Image.fromarray(rgb.images[i].permute(1, 2, 0).numpy()).convert("L"))
        for c in range(3):
            np.testing.assert_array_equal(out.images[i, c].numpy(), pil)


def test_grayscale_equals_pil_on_all_colour_corners_and_edges():
    # every combination of 0, 1, 127, 128, 254, 255 and a few rounding-sensitive values
    vals = torch.tensor([0, 1, 2, 127, 128, 129, 200, 254, 255], dtype=torch.uint8)
    r, g, b = torch.meshgrid(vals, vals, vals, indexing="ij")
    img = torch.stack([r.reshape(-1), g.reshape(-1), b.reshape(-1)]).reshape(3, 27, 27)
    ds = ImageSet(img[None], torch.zeros(1, dtype=torch.int64), ["c"])
    pil = np.asarray(Image.fromarray(img.permute(1, 2, 0).numpy()).convert("L"))
    np.testing.assert_array_equal(grayscale(ds).images[0, 0].numpy(), pil)


def test_grayscale_one_channel_unchanged_with_note(gray1):
    out = grayscale(gray1)
    assert torch.equal(out.images, gray1.images)
    assert "already 1-channel" in out.meta["note"]


def test_grayscale_idempotent(rgb):
    once = grayscale(rgb)
    assert torch.equal(grayscale(once).images, once.images)


# --- JPEG ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quality", [1, 10, 75, 95])
def test_jpeg_equals_pil_roundtrip_rgb(rgb, quality):
    out = jpeg(rgb, quality=quality)
    assert out.images.shape == rgb.images.shape and out.images.dtype == torch.uint8
    for i in range(len(rgb)):
        img = rgb.images[i].permute(1, 2, 0).contiguous().numpy()
        _, dec = _pil_roundtrip(img, quality)
        np.testing.assert_array_equal(out.images[i].permute(1, 2, 0).numpy(), dec)


@pytest.mark.parametrize("quality", [10, 90])
def test_jpeg_equals_pil_roundtrip_grayscale(gray1, quality):
    out = jpeg(gray1, quality=quality)
    assert out.images.shape == gray1.images.shape
    for i in range(len(gray1)):
        img = gray1.images[i, 0].numpy()
        data, dec = _pil_roundtrip(img, quality)  # mode "L": a grayscale JPEG
        assert Image.open(io.BytesIO(data)).mode == "L"
        np.testing.assert_array_equal(out.images[i, 0].numpy(), dec)


def test_jpeg_changes_images_and_is_deterministic(rgb):
    a, b = jpeg(rgb), jpeg(rgb)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, rgb.images)
    assert a.meta["defenses"] == ["jpeg10"] and a.name == "rand+jpeg10"


# --- BDR ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", range(1, 9))
def test_bdr_equals_torchvision_posterize(rgb, bits):
    expected = RandomPosterize(bits=bits, p=1.0)(rgb.images)
    assert torch.equal(bdr(rgb, bits=bits).images, expected)


def test_bdr_all_values_and_idempotent(rgb):
    allv = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    ds = ImageSet(allv, torch.zeros(1, dtype=torch.int64), ["c"])
    assert torch.equal(bdr(ds, bits=2).images.unique(), torch.tensor([0, 64, 128, 192], dtype=torch.uint8))
    assert torch.equal(bdr(ds, bits=8).images, allv)
    once = bdr(rgb)
    assert torch.equal(bdr(once).images, once.images)


# --- shared properties and errors --------------------------------------------------------------------------

@pytest.mark.parametrize("name", PURIFIERS)
@pytest.mark.parametrize("channels", [1, 3])
def test_purifiers_keep_shape_dtype_labels(name, channels, monkeypatch):
    monkeypatch.setenv("UEL_PROFILE", "smoke")  # learned purifiers (D-VAE) train for seconds only
    ds = synthetic_dataset(n_per_class=3, num_classes=4, channels=channels, size=16, seed=3, name="syn")
    ds.meta["attack"] = "ar"
    out, _ = apply_defense(name, ds, get_protocol("smoke"))
    assert out.images.shape == ds.images.shape and out.images.dtype == torch.uint8
    assert torch.equal(out.labels, ds.labels) and out.classes == ds.classes
    assert out.meta["attack"] == "ar" and out.meta["defenses"]
    assert out.name.startswith("syn+")
    assert ds.meta.get("defenses") is None  # the input is not modified


def test_gray_jpeg_is_gray_then_jpeg(rgb):
    out, _ = apply_defense("iss-gray-jpeg", rgb, get_protocol("smoke"))
    assert torch.equal(out.images, jpeg(grayscale(rgb)).images)
    assert out.meta["defenses"] == ["gray", "jpeg10"]
    assert torch.equal(apply_defense("iss-gray", rgb, get_protocol("smoke"))[0].images, grayscale(rgb).images)
    assert torch.equal(apply_defense("iss-jpeg", rgb, get_protocol("smoke"), quality=30)[0].images,
                       jpeg(rgb, quality=30).images)


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_jpeg_bad_quality_value(rgb, quality):
    with pytest.raises(ValueError, match=r"quality must be an integer in \[1, 100\]"):
        jpeg(rgb, quality=quality)


@pytest.mark.parametrize("quality", [10.0, "10", True, None])
def test_jpeg_bad_quality_type(rgb, quality):
    with pytest.raises(TypeError, match="quality must be an int"):
        jpeg(rgb, quality=quality)


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bdr_bad_bits_value(rgb, bits):
    with pytest.raises(ValueError, match=r"bits must be an integer in \[1, 8\]"):
        bdr(rgb, bits=bits)


@pytest.mark.parametrize("bits", [2.0, "2", False])
def test_bdr_bad_bits_type(rgb, bits):
    with pytest.raises(TypeError, match="bits must be an int"):
        bdr(rgb, bits=bits)


@pytest.mark.parametrize("fn", [grayscale, jpeg, bdr])
def test_non_imageset_is_type_error(rgb, fn):
    with pytest.raises(TypeError, match="expected an ImageSet"):
        fn(rgb.images)
    with pytest.raises(TypeError, match="expected an ImageSet"):
        apply_defense("jpeg", rgb.images, get_protocol("smoke"))


def test_apply_defense_bad_arguments(rgb):
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['bits'\]; it takes \['quality'\]"):
        apply_defense("jpeg", rgb, get_protocol("smoke"), bits=3)
    with pytest.raises(ValueError, match="has no parameter"):
        apply_defense("grayscale", rgb, get_protocol("smoke"), quality=10)
    with pytest.raises(TypeError, match="Protocol"):
        apply_defense("jpeg", rgb, "smoke")
    with pytest.raises(ValueError, match="quality must be"):
        apply_defense("jpeg", rgb, get_protocol("smoke"), quality=0)


# --- apply_defense: protocol changes -----------------------------------------------------------------------

def test_purify_and_reading_defenses_keep_the_protocol(rgb, monkeypatch):
    monkeypatch.setenv("UEL_PROFILE", "smoke")  # learned purifiers (D-VAE) train for seconds only
    proto = get_protocol("smoke")
    for name in ("none", "early-stopping", *PURIFIERS):
        out, p = apply_defense(name, rgb, proto)
        assert p is proto, name
    out, _ = apply_defense("none", rgb, proto)
    assert out is rgb
    out, _ = apply_defense("early-stopping", rgb, proto)
    assert out is rgb


def test_train_defense_keys_are_protocol_fields():
    for name, d in REGISTRY.items():
        if d.kind == "train":
            _needs_fields(d.protocol_changes)
            assert set(d.protocol_changes) <= PROTOCOL_FIELDS, name


def test_cutout_changes(rgb, gray1):
    proto = get_protocol("smoke")
    out, p = apply_defense("cutout", rgb, proto)
    assert out is rgb and p.cutout == 16 and p.with_(cutout=proto.cutout) == proto
    assert apply_defense("cutout", gray1, proto)[1].cutout == 14
    assert apply_defense("cutout", rgb, proto, size=8)[1].cutout == 8
    digits_like = _random_set(4, 1, 8)
    assert default_cutout_size(digits_like) == 4
    assert default_cutout_size(_random_set(4, 1, 7)) == 4
    with pytest.raises(ValueError, match=r"size must be an integer in \[1, 32\]"):
        apply_defense("cutout", rgb, proto, size=33)
    with pytest.raises(TypeError, match="size must be an int"):
        apply_defense("cutout", rgb, proto, size=16.0)


@pytest.mark.parametrize("name,mix", [("cutmix", "cutmix"), ("mixup", "mixup")])
def test_mix_changes(rgb, name, mix):
    _needs_fields(["mix"])
    proto = get_protocol("smoke")
    out, p = apply_defense(name, rgb, proto)
    assert out is rgb and p.mix == mix and p.with_(mix=proto.mix) == proto


def test_adversarial_training_changes(rgb):
    _needs_fields(["adv_eps", "adv_steps", "adv_step_size"])
    proto = get_protocol("smoke")
    _, p = apply_defense("adversarial-training", rgb, proto)
    assert (p.adv_eps, p.adv_steps, p.adv_step_size) == (8 / 255, 10, 2 / 255)
    _, p = apply_defense("adversarial-training", rgb, proto, eps=4 / 255)
    assert p.adv_eps == 4 / 255 and p.adv_steps == 10
    for bad in (0, 2.0, float("nan")):
        with pytest.raises(ValueError, match=r"eps must (lie in \(0, 1\]|be a finite number)"):
            apply_defense("adversarial-training", rgb, proto, eps=bad)
    with pytest.raises(TypeError, match="eps must be a number"):
        apply_defense("adversarial-training", rgb, proto, eps="8/255")
    with pytest.raises(ValueError, match="steps must be"):
        apply_defense("adversarial-training", rgb, proto, steps=0)


def test_missing_protocol_field_is_a_clear_error(rgb):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class OldProtocol:
        cutout: int = 0

        def with_(self, **changes):
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match=r"needs Protocol field\(s\) \['mix'\]"):
        apply_defense("mixup", rgb, OldProtocol())
