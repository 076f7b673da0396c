"""The trainer: protocols, schedules, augmentation, determinism, History."""

from __future__ import annotations

import math

import pytest
import torch

from uel_helpers.data import synthetic_dataset
from uel_helpers.training import (
    PROTOCOLS,
    History,
    Protocol,
    augment,
    channel_stats,
    evaluate,
    get_protocol,
    lr_multiplier,
    protocol_for_profile,
    random_crop,
    random_cutout,
    random_flip,
    train,
)


def test_named_protocols_exist_and_paper_recipe_is_the_ar_papers():
    assert {"paper-resnet18", "quick", "smoke", "fast"} <= set(PROTOCOLS)
    p = PROTOCOLS["paper-resnet18"]
    assert (p.model, p.epochs, p.batch_size, p.lr, p.momentum, p.weight_decay) == ("resnet18", 100, 128, 0.1, 0.9, 5e-4)
    assert (p.schedule, p.step_size, p.gamma, p.crop_padding, p.flip) == ("step", 50, 0.1, 4, True)


def test_protocol_errors():
    with pytest.raises(ValueError, match="unknown protocol 'slow'"):
        get_protocol("slow")
    with pytest.raises(ValueError, match="unknown model"):
        Protocol("x", "vgg", 1, 1, 0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        Protocol("x", "smallcnn", 1, 1, 0.1, schedule="exp")
    with pytest.raises(ValueError, match="unknown protocol fields"):
        get_protocol("quick", epoch=3)
    assert get_protocol("quick", epochs=2).epochs == 2


def test_profile_selects_protocol(monkeypatch):
    assert protocol_for_profile("smoke").name == "smoke"
    assert protocol_for_profile("paper").name == "paper-resnet18"
    monkeypatch.setenv("UEL_PROFILE", "smoke")
    assert get_protocol().name == "smoke"
    monkeypatch.setenv("UEL_PROFILE", "huge")
    with pytest.raises(ValueError, match="UEL_PROFILE"):
        get_protocol()


def test_schedules():
    step = get_protocol("paper-resnet18")
    assert lr_multiplier(step, 0, 10) == 1.0 and lr_multiplier(step, 49 * 10 + 9, 10) == 1.0
    assert math.isclose(lr_multiplier(step, 50 * 10, 10), 0.1)
    multi = step.with_(schedule="multistep", milestones=(2, 4), gamma=0.5)
    assert [lr_multiplier(multi, e * 10, 10) for e in (0, 2, 4)] == [1.0, 0.5, 0.25]
    cos = step.with_(schedule="cosine", epochs=4)
    assert lr_multiplier(cos, 0, 10) == 1.0 and math.isclose(lr_multiplier(cos, 20, 10), 0.5)
    one = step.with_(schedule="onecycle", epochs=10)
    vals = [lr_multiplier(one, s, 10) for s in range(100)]
    assert math.isclose(vals[0], 0.2) and max(vals) == 1.0 and math.isclose(vals[-1], 0.07, abs_tol=0.01)


def test_fit_schedule_warms_up_holds_and_anneals_after_the_fit():
    fit = Protocol("f", "smallcnn", epochs=10, batch_size=1, lr=0.1, schedule="fit", fit_acc=0.99, fit_extra=3,
                   lr_start=0.2, lr_end=0.0)
    assert math.isclose(lr_multiplier(fit, 0, 10), 0.2) and math.isclose(lr_multiplier(fit, 5, 10), 0.6)
    # not fitted: a plateau until the cap forces the anneal 3 epochs before the end
    assert [lr_multiplier(fit, e * 10, 10) for e in (1, 6)] == [1.0, 1.0]
    assert lr_multiplier(fit, 7 * 10, 10) == 1.0 and math.isclose(lr_multiplier(fit, 7 * 10 + 15, 10), 0.5)
    assert lr_multiplier(fit, 99, 10) < 0.05
    # fitted at step 20 (end of epoch 2): the anneal starts there and ends 3 epochs later
    assert lr_multiplier(fit, 20, 10, fit_step=20) == 1.0 and math.isclose(lr_multiplier(fit, 35, 10, 20), 0.5)
    assert lr_multiplier(fit, 50, 10, fit_step=20) == 0.0
    with pytest.raises(ValueError, match="fit_acc"):
        fit.with_(fit_acc=0.0)
    with pytest.raises(ValueError, match="fit_extra"):
        fit.with_(fit_extra=0)
    short = fit.with_(epochs=2)  # shorter than fit_extra: warm up, then anneal over the one epoch left
    assert lr_multiplier(short, 10, 10) == 1.0 and math.isclose(lr_multiplier(short, 15, 10), 0.5)


def test_fit_schedule_stops_fit_extra_epochs_after_the_training_set_is_fitted():
    ds = synthetic_dataset(n_per_class=10, num_classes=4, channels=1, size=8, seed=0)
    proto = Protocol("f", "smallcnn", epochs=30, batch_size=20, lr=0.05, schedule="fit", fit_acc=0.9, fit_extra=2,
                     crop_padding=0, flip=False, lr_end=0.0)
    hist = train(ds, ds, proto, seed=0, device="cpu", quiet=True)
    assert 1 <= hist.fit_epoch < 28, hist.train_acc  # separable templates: fitted well before the cap
    assert hist.train_acc[hist.fit_epoch - 1] >= 0.9 > max(hist.train_acc[:hist.fit_epoch - 1], default=0.0)
    assert hist.epochs == hist.fit_epoch + 2
    assert History.from_dict(hist.to_dict()).fit_epoch == hist.fit_epoch
    never = train(ds, ds, proto.with_(fit_acc=1.0, epochs=3, fit_extra=1), seed=0, device="cpu", quiet=True)
    assert never.epochs == 3 and never.fit_epoch in (0, 1, 2, 3)


def test_augmentations_shapes_and_content():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    crop = random_crop(x, 2, gen)
    assert crop.shape == x.shape
    # every crop is a shifted window of the zero-padded image
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        assert any(torch.equal(crop[i], padded[i, :, dy:dy + 8, dx:dx + 8]) for dy in range(5) for dx in range(5))
    flip = random_flip(x, gen)
    assert all(torch.equal(flip[i], x[i]) or torch.equal(flip[i], x[i].flip(2)) for i in range(16))
    cut = random_cutout(torch.ones(16, 1, 8, 8), 4, gen)
    zeros = (cut == 0).sum((1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 16).all()
    assert augment(x, get_protocol("smoke").with_(crop_padding=0, flip=False), gen) is x


def test_channel_stats():
    x = (torch.rand(50, 3, 8, 8) * 255).to(torch.uint8)
    mean, std = channel_stats(x)
    ref = x.double().div(255)
    assert torch.allclose(mean.double(), ref.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(std.double(), ref.std((0, 2, 3), unbiased=False), atol=1e-5)


def test_history_peak_and_roundtrip(tmp_path):
    h = History(train_loss=[2, 1, 0.5], train_acc=[.1, .5, .9], test_acc=[0.3, 0.6, 0.5], epoch_time=[1, 1, 1])
    assert (h.final_acc, h.peak_acc, h.peak_epoch, h.epochs) == (0.5, 0.6, 2, 3)
    h.save(tmp_path / "h.json")
    import json

    assert History.from_dict(json.loads((tmp_path / "h.json").read_text())).test_acc == h.test_acc


def test_train_learns_and_is_deterministic():
    # same seed -> same class templates; train and test differ only in their noise
    train_set = synthetic_dataset(n_per_class=20, num_classes=10, size=16, seed=1)
    test_set = synthetic_dataset(n_per_class=10, num_classes=10, size=16, seed=1)
    proto = get_protocol("smoke").with_(epochs=8, lr=0.05, batch_size=32)
    h1 = train(train_set, test_set, proto, seed=0, device="cpu", quiet=True)
    h2 = train(train_set, test_set, proto, seed=0, device="cpu", quiet=True)
    assert h1.test_acc == h2.test_acc and h1.train_loss == h2.train_loss
    assert len(h1.test_acc) == 8 and h1.wall_time > 0
    assert h1.train_loss[-1] < h1.train_loss[0]
    assert h1.peak_acc > 0.6  # chance is 0.1; the classes are separable templates


def test_train_fastnet_with_whitening_and_return_model(tiny_rgb):
    proto = get_protocol("fast").with_(model="fastnet-small", epochs=1, batch_size=50)
    assert proto.whiten
    hist, model = train(tiny_rgb, tiny_rgb, proto, quiet=True, device="cpu", return_model=True)
    assert hist.epochs == 1 and 0 <= hist.final_acc <= 1
    assert evaluate(model, tiny_rgb, "cpu") == pytest.approx(hist.final_acc)


def test_train_rejects_mismatched_sets(tiny_rgb):
    other = synthetic_dataset(n_per_class=2, num_classes=10, channels=1, size=32)
    with pytest.raises(ValueError, match="must match"):
        train(tiny_rgb, other, "smoke", quiet=True)
    with pytest.raises(TypeError, match="ImageSets"):
        train(tiny_rgb.images, tiny_rgb, "smoke", quiet=True)


@pytest.mark.parametrize("field,value,error", [
    ("lr", float("nan"), ValueError), ("lr", float("inf"), ValueError), ("weight_decay", float("nan"), ValueError),
    ("epochs", 2.5, TypeError), ("batch_size", 16.5, TypeError), ("fit_acc", float("nan"), ValueError),
])
def test_protocol_rejects_non_finite_and_non_integer_fields(field, value, error):
    with pytest.raises(error, match=field):
        get_protocol("smoke", **{field: value})


def test_training_stops_on_a_non_finite_loss():
    ds = synthetic_dataset(n_per_class=4, num_classes=2, channels=1, size=8, seed=0)
    with pytest.raises(FloatingPointError, match="training loss"):
        train(ds, ds, get_protocol("smoke", lr=1e30, epochs=3, batch_size=8), device="cpu", quiet=True)
